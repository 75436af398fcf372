"""Execution provider choice: explicit, ordered, CPU last, unknown ones skipped."""

from __future__ import annotations

from handoffd.engine.session import CPU, resolve_providers

ALL = [
    "CPUExecutionProvider",
    "CUDAExecutionProvider",
    "TensorrtExecutionProvider",
    "OpenVINOExecutionProvider",
    "AzureExecutionProvider",
]


def test_auto_expands_to_accelerators_in_preference_order() -> None:
    """auto = TensorRT, CUDA, OpenVINO, ... as available, then CPU; others (Azure) left out."""
    choice = resolve_providers(["auto"], ALL)
    assert choice.providers == (
        "TensorrtExecutionProvider",
        "CUDAExecutionProvider",
        "OpenVINOExecutionProvider",
        CPU,
    )
    assert choice.unavailable == ()


def test_auto_on_a_cpu_only_build_is_cpu() -> None:
    """A CPU-only onnxruntime gives exactly the CPU provider."""
    assert resolve_providers(["auto"], ["CPUExecutionProvider"]).providers == (CPU,)


def test_explicit_order_is_kept_and_missing_ones_reported() -> None:
    """Requested providers keep their order; ones this build lacks are reported, not used."""
    choice = resolve_providers(
        ["OpenVINOExecutionProvider", "QNNExecutionProvider", "CUDAExecutionProvider"], ALL
    )
    assert choice.providers == ("OpenVINOExecutionProvider", "CUDAExecutionProvider", CPU)
    assert choice.unavailable == ("QNNExecutionProvider",)


def test_cpu_always_last_and_never_twice() -> None:
    """CPU ends the list once, even when requested first or together with auto."""
    choice = resolve_providers([CPU, "auto", "CUDAExecutionProvider"], ALL)
    assert choice.providers[-1] == CPU
    assert choice.providers.count(CPU) == 1
    assert choice.providers.count("CUDAExecutionProvider") == 1
