"""What differs on an accelerator, emulated on the CPU (both were seen on an H100, onnxruntime-gpu
1.31, with ``bench/providers.py``; this machine has no GPU):

* a host input bound to a session that computes on a device is copied to the device when it is
  bound (``IOBinding::BindInput``), not when the graph runs, so a runner that writes a bound host
  buffer after binding it feeds the previous step's tokens;
* GroupQueryAttention has CUDA kernels for float16/bfloat16 only: a float32 graph's attention runs
  on the CPU, so its shared KV buffer must stay in host memory.
"""

from __future__ import annotations

import ctypes
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from handoffd.engine.folder import read_model_folder
from handoffd.engine.kv_shared import SharedKvRunner
from handoffd.engine.session import gqa_kv_device, session_options

_HOST_INPUTS = {"input_ids", "position_ids", "attention_mask"}


class _CopyAtBind:
    """An IOBinding that snapshots host inputs when they are bound, as a device session does."""

    def __init__(self, io: Any) -> None:
        self.io = io
        self._snapshots: list[np.ndarray[Any, Any]] = []

    def bind_input(
        self, name: str, device: str, device_id: int, dtype: Any, shape: list[int], pointer: int
    ) -> None:
        if name in _HOST_INPUTS:
            size = int(np.prod(shape)) * np.dtype(dtype).itemsize
            snapshot = np.frombuffer(ctypes.string_at(pointer, size), dtype=dtype).copy()
            self._snapshots.append(snapshot)
            pointer = snapshot.ctypes.data
        self.io.bind_input(name, device, device_id, dtype, shape, pointer)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.io, name)


class _DeviceLikeSession:
    def __init__(self, session: ort.InferenceSession) -> None:
        self._session = session

    def io_binding(self) -> _CopyAtBind:
        return _CopyAtBind(self._session.io_binding())

    def run_with_iobinding(self, io: _CopyAtBind) -> None:
        self._session.run_with_iobinding(io.io)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)


def _greedy(runner: SharedKvRunner, prompts: list[list[int]], steps: int) -> list[list[int]]:
    """Prefill each prompt into its own slot, then decode all slots together ``steps`` times."""
    slots = list(range(len(prompts)))
    tokens = [int(np.argmax(runner.prefill(s, p, 0))) for s, p in zip(slots, prompts, strict=True)]
    out = [[t] for t in tokens]
    for _ in range(steps):
        logits = runner.decode(slots, tokens)
        tokens = [int(np.argmax(row)) for row in logits]
        for seq, token in zip(out, tokens, strict=True):
            seq.append(token)
    return out


def test_decode_binds_host_inputs_after_writing_them(tiny_genai_model: Path) -> None:
    """Greedy decoding through a copy-at-bind session equals decoding through the plain one."""
    spec = read_model_folder(tiny_genai_model)
    prompts = [[5, 17, 99, 3, 42], [7, 8, 100, 12, 1, 9, 30]]

    def run(wrap: bool) -> list[list[int]]:
        session = ort.InferenceSession(
            str(spec.onnx_path), session_options(1), providers=["CPUExecutionProvider"]
        )
        graph: Any = _DeviceLikeSession(session) if wrap else session
        return _greedy(SharedKvRunner(graph, spec, max_batch=2, capacity=64), prompts, 12)

    assert run(wrap=True) == run(wrap=False)


class _FakeSession:
    def __init__(self, provider: str) -> None:
        self._providers = [provider, "CPUExecutionProvider"]

    def get_providers(self) -> list[str]:
        return self._providers


def test_float32_attention_keeps_its_kv_on_the_host() -> None:
    """A float32 GQA graph on CUDA keeps host KV; float16 uses the device; CPU stays CPU."""
    cuda: Any = _FakeSession("CUDAExecutionProvider")
    cpu: Any = _FakeSession("CPUExecutionProvider")
    assert gqa_kv_device(cuda, np.dtype(np.float32)) == "cpu"
    assert gqa_kv_device(cuda, np.dtype(np.float16)) == "cuda"
    assert gqa_kv_device(cpu, np.dtype(np.float16)) == "cpu"
