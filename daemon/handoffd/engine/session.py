"""Opening the onnxruntime session: execution providers, session options, graph facts.

Providers are always passed explicitly. ``auto`` expands to the accelerators this onnxruntime
build has, in the order TensorRT, CUDA, OpenVINO, QNN, CoreML, DirectML, and CPU always ends the
list. A requested provider this build lacks is skipped with a warning; one that fails to
initialise is dropped and the session is opened again with the rest (warning logged). The
provider that actually runs is ``session.get_providers()[0]``.
"""

from __future__ import annotations

import contextlib
import functools
import io
import mmap
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from handoffd.errors import ModelError
from handoffd.logsetup import get_logger

log = get_logger(__name__)

CPU = "CPUExecutionProvider"
AUTO_ORDER = (
    "TensorrtExecutionProvider",
    "CUDAExecutionProvider",
    "OpenVINOExecutionProvider",
    "QNNExecutionProvider",
    "CoreMLExecutionProvider",
    "DmlExecutionProvider",
)

_NUMPY_TYPES: dict[str, type[np.generic]] = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(bool)": np.bool_,
}


@dataclass(frozen=True, slots=True)
class ProviderChoice:
    """Providers to try in order, and those requested that this build does not have."""

    providers: tuple[str, ...]
    unavailable: tuple[str, ...]


def resolve_providers(requested: Sequence[str], available: Iterable[str]) -> ProviderChoice:
    """Expand ``auto``, drop providers this build lacks, end with CPU, keep the order."""
    have = set(available)
    chosen: list[str] = []
    missing: list[str] = []
    for name in requested:
        candidates = [p for p in AUTO_ORDER if p in have] if name == "auto" else [name]
        for provider in candidates:
            if provider == CPU or provider in chosen:
                continue
            if provider in have:
                chosen.append(provider)
            elif name != "auto":
                missing.append(provider)
    chosen.append(CPU)
    return ProviderChoice(tuple(chosen), tuple(missing))


def session_options(intra_op_threads: int) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.inter_op_num_threads = 1
    if intra_op_threads > 0:
        options.intra_op_num_threads = intra_op_threads
    # Idle intra-op threads sleep instead of busy-waiting between operators, as
    # onnxruntime-genai's generator does: on a CPU shared with other work (an edge device's
    # apps, other requests' Python work) spinning threads starve the thread they wait for;
    # measured on 2 busy cores, a decode step took 72 ms spinning and 40 ms without.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    options.log_severity_level = 3  # errors only: onnxruntime's warnings go to our log instead
    return options


def open_session(
    onnx_path: Path, requested: Sequence[str], intra_op_threads: int
) -> ort.InferenceSession:
    """An InferenceSession on the first provider in ``requested`` that initialises."""
    choice = resolve_providers(requested, ort.get_available_providers())
    for provider in choice.unavailable:
        log.warning("engine.provider_unavailable", provider=provider,
                    available=ort.get_available_providers())
    providers = list(choice.providers)
    if _CUDA_PROVIDERS.intersection(providers):
        _preload_cuda_libraries()
    while True:
        try:
            session = ort.InferenceSession(
                str(onnx_path), sess_options=session_options(intra_op_threads), providers=providers
            )
        except Exception as exc:  # onnxruntime raises its own Fail/RuntimeException types
            if len(providers) == 1:
                raise ModelError(
                    f"{onnx_path}: onnxruntime cannot load the model ({exc}); re-export it with "
                    "`handoffctl model build-default` or `optimum-cli export onnx ...`"
                ) from exc
            log.warning("engine.provider_failed", provider=providers[0], error=str(exc)[:300])
            providers = providers[1:]
            continue
        running = session.get_providers()[0]
        if running != providers[0]:
            log.warning("engine.provider_fallback", requested=providers[0], running=running)
        return session


_CUDA_PROVIDERS = frozenset({"CUDAExecutionProvider", "TensorrtExecutionProvider"})


@functools.cache
def _preload_cuda_libraries() -> None:
    """Load the CUDA and cuDNN libraries that ``pip install onnxruntime-gpu[cuda,cudnn]`` put next
    to onnxruntime (``onnxruntime.preload_dlls``). onnxruntime's CUDA provider does not look there
    by itself: without this it finds them only on ``LD_LIBRARY_PATH`` or in a system CUDA, and
    otherwise falls back to the CPU (checked on an H100 with onnxruntime-gpu 1.31, CUDA 13)."""
    preload = getattr(ort, "preload_dlls", None)
    if preload is None:
        return
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):  # it prints its failures; stdout is our log
            preload()
    except Exception as exc:  # a missing folder raises; the session then reports what is missing
        log.warning("engine.cuda_preload_failed", error=str(exc)[:300])
        return
    if "Failed" in printed.getvalue():
        log.warning("engine.cuda_preload_incomplete", detail=printed.getvalue().strip()[:500])


#: where a provider wants its tensors: KV caches live there so that nothing crosses per step
_DEVICE_OF_PROVIDER = {
    "CUDAExecutionProvider": "cuda",
    "TensorrtExecutionProvider": "cuda",
    "DmlExecutionProvider": "dml",
}


def kv_device(session: ort.InferenceSession) -> str:
    """The onnxruntime device type (``cpu``, ``cuda``, ``dml``) the running provider computes on."""
    return _DEVICE_OF_PROVIDER.get(session.get_providers()[0], "cpu")


def gqa_kv_device(session: ort.InferenceSession, kv_dtype: np.dtype[Any]) -> str:
    """Where a GroupQueryAttention graph's KV cache must live: with the attention kernels.

    onnxruntime's CUDA GroupQueryAttention exists for float16 and bfloat16 only (checked on an
    H100 with onnxruntime-gpu 1.31: "CUDA kernel not found in registries" for a float32 graph).
    The attention of a float32 graph then runs on the CPU while the rest runs on the GPU; KV bound
    in device memory would be copied per run, and the past/present buffer would no longer be
    shared, so decoding reads a stale cache. Such a graph keeps its KV in host memory.
    """
    device = kv_device(session)
    if device == "cuda" and kv_dtype == np.float32:
        return "cpu"
    return device


def numpy_type(ort_type: str, where: str) -> type[np.generic]:
    try:
        return _NUMPY_TYPES[ort_type]
    except KeyError:
        raise ModelError(f"{where}: unsupported tensor type {ort_type}") from None


def scan_ops(onnx_path: Path, op_types: Iterable[str]) -> frozenset[str]:
    """Which of ``op_types`` the graph file mentions (a byte search of the protobuf: op types are
    stored as plain strings; external weight data is not searched)."""
    found: set[str] = set()
    with onnx_path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
        for op in op_types:
            if data.find(op.encode()) != -1:
                found.add(op)
    return frozenset(found)


def matmul_nbits_bits(onnx_path: Path) -> int | None:
    """The ``bits`` attribute of the graph's MatMulNBits nodes (first one found), if any."""
    needle = b"\n\x04bits\x18"  # AttributeProto: name="bits" then the int field (3, varint)
    with onnx_path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
        at = data.find(needle)
        if at == -1:
            return None
        value = data[at + len(needle)]
    return int(value) if 0 < value < 64 else None
