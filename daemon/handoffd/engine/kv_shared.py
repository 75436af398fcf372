"""KV cache for GroupQueryAttention graphs: past and present share one max-length buffer.

This is how onnxruntime-genai runs its builder's graphs (``past_present_share_buffer``): each
layer's keys and values live in one preallocated ``[max_batch, kv_heads, capacity, head_size]``
array that is bound as both ``past_key_values.N`` and ``present.N``; GroupQueryAttention writes the
new positions in place at ``seqlens_k`` (the graph computes ``seqlens_k = sum(attention_mask) - 1``
per row and ``total_sequence_length`` from the mask's width). Nothing is copied or concatenated
per step. On CPU the buffers are anonymous memory mapped without transparent huge pages
(:func:`handoffd.engine.runner.lazy_zeros`), so memory is committed only for the 4 KiB pages a
slot actually writes; on CUDA/TensorRT/DirectML they are device memory, committed in full (the
engine sizes ``max_batch`` to the KV budget there), and only ids, mask and logits cross per step
(except float32 graphs on CUDA, whose attention runs on the CPU: see
:func:`handoffd.engine.session.gqa_kv_device`).

A decode step runs rows ``0..hi`` (``hi`` = highest running slot + 1) of the buffer in one batch:
the mask of row ``r`` has ``length[r] + 1`` ones (right padding), so each row attends and writes
only its own positions. A row inside that range that is not decoding (free, or halfway through
its prompt) is fed a dummy token at position ``length[r]``, which its next real write overwrites.
A prompt is prefilled one slot at a time (batch 1, past bound to that slot's rows), in chunks:
GroupQueryAttention takes a chunk after earlier ones as a "subsequent prompt".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from handoffd.engine.folder import ModelSpec
from handoffd.engine.runner import FloatArray, forget_pages, last_row, lazy_zeros
from handoffd.engine.session import gqa_kv_device, numpy_type
from handoffd.errors import ModelError

_CPU = "cpu"
#: a released slot that held at least this much KV gives its pages back to the OS
_FORGET_BYTES = 16 << 20


class SharedKvRunner:
    """Runs a GQA graph over ``max_batch`` slots of ``capacity`` tokens."""

    def __init__(self, session: Any, spec: ModelSpec, *, max_batch: int, capacity: int) -> None:
        inputs = {i.name: i for i in session.get_inputs()}
        outputs = {o.name: o for o in session.get_outputs()}
        where = str(spec.onnx_path)
        layers = range(spec.num_layers)
        self._past = [(spec.past_key_name % i, spec.past_value_name % i) for i in layers]
        self._present = [(spec.present_key_name % i, spec.present_value_name % i) for i in layers]
        wanted = {"input_ids", "attention_mask", *(n for pair in self._past for n in pair)}
        missing = sorted(wanted - set(inputs)) + sorted(
            {"logits", *(n for pair in self._present for n in pair)} - set(outputs)
        )
        if missing:
            raise ModelError(f"{where}: graph lacks {', '.join(missing[:4])}; rebuild the model")
        extra = sorted(set(inputs) - wanted - {"position_ids"})
        if extra:
            raise ModelError(f"{where}: graph has inputs the engine cannot feed: {extra}")
        self._session = session
        self._has_positions = "position_ids" in inputs
        self._kv_dtype = np.dtype(numpy_type(inputs[self._past[0][0]].type, where))
        self._mask_dtype = np.dtype(numpy_type(inputs["attention_mask"].type, where))
        self._logits_dtype = np.dtype(numpy_type(outputs["logits"].type, where))
        self.max_batch = max_batch
        self.capacity = capacity
        self._kv_shape = (spec.num_kv_heads, capacity, spec.head_size)
        shape = (max_batch, *self._kv_shape)
        self._device = gqa_kv_device(session, self._kv_dtype)
        self._kv_memory = [self._allocate(shape) for _ in range(2 * spec.num_layers)]
        self._keys = [self._pointer(m) for m in self._kv_memory[0::2]]
        self._values = [self._pointer(m) for m in self._kv_memory[1::2]]
        self._row_bytes = spec.num_kv_heads * capacity * spec.head_size * self._kv_dtype.itemsize
        self.bytes_per_token = (
            2 * spec.num_layers * spec.num_kv_heads * spec.head_size * self._kv_dtype.itemsize
        )
        self._vocab = spec.vocab_size
        self._lengths = np.zeros(max_batch, dtype=np.int64)
        self._ones = np.ones(capacity, dtype=self._mask_dtype)
        self._positions = np.arange(capacity, dtype=np.int64)
        self._ids = np.zeros((max_batch, 1), dtype=np.int64)
        self._step_positions = np.zeros((max_batch, 1), dtype=np.int64)
        self._logits = np.zeros((max_batch, 1, self._vocab), dtype=self._logits_dtype)
        self._decode_io = session.io_binding()
        self._decode_rows = 0
        self._mask_keepalive: npt.NDArray[Any] | None = None

    def _allocate(self, shape: tuple[int, ...]) -> Any:
        """One layer's K or V buffer: lazily committed host memory on CPU, device memory on an
        accelerator (uninitialised: every position is written before it is attended to)."""
        if self._device == _CPU:
            return lazy_zeros(shape, self._kv_dtype)
        return ort.OrtValue.ortvalue_from_shape_and_type(shape, self._kv_dtype, self._device, 0)

    @staticmethod
    def _pointer(memory: Any) -> int:
        return int(memory.ctypes.data) if isinstance(memory, np.ndarray) else int(memory.data_ptr())

    def length(self, slot: int) -> int:
        return int(self._lengths[slot])

    def _bind_kv(self, io: Any, first_row: int, rows: int) -> None:
        shape = [rows, *self._kv_shape]
        offset = first_row * self._row_bytes
        for (past_k, past_v), (pres_k, pres_v), keys, values in zip(
            self._past, self._present, self._keys, self._values, strict=True
        ):
            k_ptr, v_ptr, device = keys + offset, values + offset, self._device
            io.bind_input(past_k, device, 0, self._kv_dtype, shape, k_ptr)
            io.bind_input(past_v, device, 0, self._kv_dtype, shape, v_ptr)
            io.bind_output(pres_k, device, 0, self._kv_dtype, shape, k_ptr)
            io.bind_output(pres_v, device, 0, self._kv_dtype, shape, v_ptr)

    def prefill(self, slot: int, token_ids: Sequence[int], start: int) -> FloatArray:
        if start != self._lengths[slot]:
            raise ValueError(f"slot {slot} holds {self._lengths[slot]} tokens, not {start}")
        count = len(token_ids)
        total = start + count
        if count == 0 or total > self.capacity:
            raise ValueError(f"cannot prefill {count} tokens after {start} (capacity "
                             f"{self.capacity})")
        ids = np.asarray(token_ids, dtype=np.int64).reshape(1, count)
        io = self._session.io_binding()
        io.bind_output("logits", _CPU)
        io.bind_input("input_ids", _CPU, 0, np.int64, [1, count], ids.ctypes.data)
        io.bind_input(
            "attention_mask", _CPU, 0, self._mask_dtype, [1, total], self._ones.ctypes.data
        )
        positions = None
        if self._has_positions:
            positions = np.ascontiguousarray(self._positions[start:total].reshape(1, count))
            io.bind_input("position_ids", _CPU, 0, np.int64, [1, count], positions.ctypes.data)
        self._bind_kv(io, slot, 1)
        self._session.run_with_iobinding(io)
        logits = io.get_outputs()[0]
        self._lengths[slot] = total
        # [1, count, vocab], or [1, 1, vocab] from a graph built with a pruned LM head
        return last_row(logits.data_ptr(), logits.shape()[1], self._vocab, self._logits_dtype)

    def decode(self, slots: Sequence[int], tokens: Sequence[int]) -> FloatArray:
        rows = max(slots) + 1
        io = self._decode_io
        if rows != self._decode_rows:
            self._bind_kv(io, 0, rows)
            io.bind_output(
                "logits", _CPU, 0, self._logits_dtype, [rows, 1, self._vocab],
                self._logits.ctypes.data,
            )
            self._decode_rows = rows
        index = np.asarray(slots, dtype=np.intp)
        self._ids[:rows, 0] = 0
        self._ids[index, 0] = tokens
        lengths = self._lengths[:rows]
        # Host inputs are bound after they are written, every step: a session on an accelerator
        # copies a host input to the device when it is bound, not when the graph runs.
        io.bind_input("input_ids", _CPU, 0, np.int64, [rows, 1], self._ids.ctypes.data)
        if self._has_positions:
            self._step_positions[:rows, 0] = lengths
            io.bind_input(
                "position_ids", _CPU, 0, np.int64, [rows, 1], self._step_positions.ctypes.data
            )
        width = int(lengths.max()) + 1
        if rows == 1:
            io.bind_input(
                "attention_mask", _CPU, 0, self._mask_dtype, [1, width], self._ones.ctypes.data
            )
        else:
            mask = (self._positions[:width] <= lengths[:, None]).astype(self._mask_dtype)
            self._mask_keepalive = mask
            io.bind_input(
                "attention_mask", _CPU, 0, self._mask_dtype, [rows, width], mask.ctypes.data
            )
        self._session.run_with_iobinding(io)
        self._lengths[index] += 1
        if self._logits_dtype == np.float32 and len(slots) == rows and list(slots) == list(
            range(rows)
        ):
            view: FloatArray = self._logits[:rows, 0, :]  # no copy; valid until the next decode
            return view
        return self._logits[index, 0, :].astype(np.float32, copy=False)

    def release(self, slot: int) -> None:
        held = int(self._lengths[slot]) * self.bytes_per_token
        self._lengths[slot] = 0
        if held >= _FORGET_BYTES and self._device == _CPU:
            # a long conversation committed many pages: hand them back rather than keep them
            for memory in self._kv_memory:
                forget_pages(memory, slot * self._row_bytes, self._row_bytes)

    @property
    def can_copy_kv(self) -> bool:
        return self._device == _CPU

    def export_kv(self, slot: int, count: int) -> list[npt.NDArray[Any]]:
        if not self.can_copy_kv or count > self._lengths[slot]:
            raise ValueError(f"cannot export {count} tokens of slot {slot}")
        return [memory[slot, :, :count, :].copy() for memory in self._kv_memory]

    def import_kv(self, slot: int, kv: Sequence[npt.NDArray[Any]]) -> None:
        count = kv[0].shape[1]
        if not self.can_copy_kv or self._lengths[slot] or count > self.capacity:
            raise ValueError(f"cannot import {count} tokens into slot {slot}")
        for memory, layer in zip(self._kv_memory, kv, strict=True):
            memory[slot, :, :count, :] = layer
        self._lengths[slot] = count

    def resident_bytes(self) -> int:
        """KV bytes currently holding tokens (for stats and tests)."""
        return int(self._lengths.sum()) * self.bytes_per_token
