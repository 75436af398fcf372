"""KV cache for graphs that concatenate past and new keys themselves (Optimum exports).

Such a graph takes ``past_key_values.N.*`` of shape ``[batch, heads, past, head_size]`` and returns
``present.N.*`` one position longer; the presents of one run are bound, as onnxruntime values
that never leave onnxruntime's memory, as the pasts of the next (IOBinding: no numpy round trip,
no Python-side concatenation; the graph's own Concat is the only copy).

Batching rows of different lengths uses left padding: the batch's past is as long as its longest
row, shorter rows are padded on the left with zeros that ``attention_mask`` hides, and each row's
``position_ids`` are its real positions. A prompt is prefilled on its own (batch 1, its own past);
when the set of decoding slots changes, the batch past is rebuilt from each row's real positions
(one copy per membership change, not per step). A graph without a ``position_ids`` input derives
positions from the past length, so padding would shift them: such graphs run one slot at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from handoffd.engine.folder import ModelSpec
from handoffd.engine.runner import FloatArray, last_row
from handoffd.engine.session import kv_device, numpy_type
from handoffd.errors import ModelError

_CPU = "cpu"

KvList = list[Any]  # OrtValues, keys and values of every layer interleaved


class ConcatKvRunner:
    """Runs a past-concatenating graph over up to ``max_batch`` slots."""

    def __init__(self, session: Any, spec: ModelSpec, *, max_batch: int, capacity: int) -> None:
        inputs = {i.name: i for i in session.get_inputs()}
        outputs = {o.name: o for o in session.get_outputs()}
        where = str(spec.onnx_path)
        layers = range(spec.num_layers)
        self._past = [n for i in layers for n in (spec.past_key_name % i, spec.past_value_name % i)]
        self._present = [
            n for i in layers for n in (spec.present_key_name % i, spec.present_value_name % i)
        ]
        wanted = {"input_ids", "attention_mask", *self._past}
        missing = sorted(wanted - set(inputs)) + sorted({"logits", *self._present} - set(outputs))
        if missing:
            raise ModelError(
                f"{where}: graph lacks {', '.join(missing[:4])}; export it with "
                "`optimum-cli export onnx --task text-generation-with-past`"
            )
        extra = sorted(set(inputs) - wanted - {"position_ids", "use_cache_branch"})
        if extra:
            raise ModelError(f"{where}: graph has inputs the engine cannot feed: {extra}")
        self._session = session
        self._device = kv_device(session)
        self._has_positions = "position_ids" in inputs
        self._has_branch = "use_cache_branch" in inputs
        self._kv_dtype = np.dtype(numpy_type(inputs[self._past[0]].type, where))
        self._mask_dtype = np.dtype(numpy_type(inputs["attention_mask"].type, where))
        self._logits_dtype = np.dtype(numpy_type(outputs["logits"].type, where))
        self._heads = spec.num_kv_heads
        self._head_size = spec.head_size
        self._vocab = spec.vocab_size
        self.capacity = capacity
        self.max_batch = max_batch if self._has_positions else 1
        self.bytes_per_token = 2 * spec.num_layers * self._heads * spec.head_size * (
            self._kv_dtype.itemsize
        )
        self._empty = np.zeros((1, self._heads, 0, self._head_size), dtype=self._kv_dtype)
        #: KV of slots that are prefilling or waiting to join the batch (batch 1, no padding)
        self._private: dict[int, KvList] = {}
        self._lengths: dict[int, int] = {}
        #: the decoding batch: its slots in row order, its past and its padding mask
        self._rows: list[int] = []
        self._batch_kv: KvList = []
        self._valid = np.zeros((0, 0), dtype=self._mask_dtype)

    def length(self, slot: int) -> int:
        return self._lengths.get(slot, 0)

    def _run(
        self, ids: npt.NDArray[np.int64], mask: npt.NDArray[Any],
        positions: npt.NDArray[np.int64], past: KvList | None,
    ) -> tuple[Any, KvList]:
        io = self._session.io_binding()
        io.bind_output("logits", _CPU)
        for name in self._present:
            io.bind_output(name, self._device)  # presents stay where they are computed
        io.bind_cpu_input("input_ids", ids)
        io.bind_cpu_input("attention_mask", mask)
        if self._has_positions:
            io.bind_cpu_input("position_ids", positions)
        if self._has_branch:
            io.bind_cpu_input("use_cache_branch", np.array([past is not None], dtype=np.bool_))
        for index, name in enumerate(self._past):
            if past is None:
                io.bind_cpu_input(name, np.repeat(self._empty, ids.shape[0], axis=0))
            else:
                io.bind_ortvalue_input(name, past[index])
        self._session.run_with_iobinding(io)
        values = io.get_outputs()
        return values[0], list(values[1:])

    def prefill(self, slot: int, token_ids: Sequence[int], start: int) -> FloatArray:
        if start != self._lengths.get(slot, 0):
            raise ValueError(f"slot {slot} holds {self.length(slot)} tokens, not {start}")
        count = len(token_ids)
        total = start + count
        if count == 0 or total > self.capacity:
            raise ValueError(f"cannot prefill {count} tokens after {start} (capacity "
                             f"{self.capacity})")
        ids = np.asarray(token_ids, dtype=np.int64).reshape(1, count)
        mask = np.ones((1, total), dtype=self._mask_dtype)
        positions = np.arange(start, total, dtype=np.int64).reshape(1, count)
        logits, present = self._run(ids, mask, positions, self._private.get(slot))
        self._private[slot] = present
        self._lengths[slot] = total
        # [1, count, vocab], or [1, 1, vocab] from a graph built with a pruned LM head
        return last_row(logits.data_ptr(), logits.shape()[1], self._vocab, self._logits_dtype)

    def decode(self, slots: Sequence[int], tokens: Sequence[int]) -> FloatArray:
        if list(slots) != self._rows:
            self._regroup(list(slots))
        count = len(slots)
        ids = np.asarray(tokens, dtype=np.int64).reshape(count, 1)
        lengths = np.array([self._lengths[s] for s in slots], dtype=np.int64)
        mask = np.concatenate([self._valid, np.ones((count, 1), dtype=self._mask_dtype)], axis=1)
        positions = lengths.reshape(count, 1)
        logits, present = self._run(ids, mask, positions, self._batch_kv)
        self._batch_kv = present
        self._valid = mask
        for slot in slots:
            self._lengths[slot] += 1
        out = np.empty((count, self._vocab), dtype=np.float32)
        pointer, row_bytes = logits.data_ptr(), self._vocab * self._logits_dtype.itemsize
        for row in range(count):
            out[row] = last_row(pointer + row * row_bytes, 1, self._vocab, self._logits_dtype)
        return out

    def _regroup(self, slots: list[int]) -> None:
        """Rebuild the batch past for ``slots`` from each row's real positions."""
        per_slot: dict[int, list[npt.NDArray[Any]]] = {}
        if self._rows:
            width = self._valid.shape[1]
            arrays = [value.numpy() for value in self._batch_kv]
            for row, slot in enumerate(self._rows):
                if slot >= 0 and slot in slots:
                    keep = self._lengths[slot]
                    per_slot[slot] = [a[row : row + 1, :, width - keep :, :] for a in arrays]
        for slot in slots:
            if slot not in per_slot:
                private = self._private.pop(slot, None)
                if private is None:
                    raise ValueError(f"slot {slot} was never prefilled")
                per_slot[slot] = [value.numpy() for value in private]
        longest = max(self._lengths[s] for s in slots)
        batch = []
        for layer_index in range(len(self._past)):
            rows = []
            for slot in slots:
                arr = per_slot[slot][layer_index]
                pad = longest - arr.shape[2]
                if pad:
                    arr = np.concatenate(
                        [np.zeros((1, self._heads, pad, self._head_size), self._kv_dtype), arr],
                        axis=2,
                    )
                rows.append(arr)
            stacked = np.ascontiguousarray(np.concatenate(rows, axis=0))
            batch.append(ort.OrtValue.ortvalue_from_numpy(stacked, self._device, 0))
        valid = np.zeros((len(slots), longest), dtype=self._mask_dtype)
        for row, slot in enumerate(slots):
            valid[row, longest - self._lengths[slot] :] = 1
        self._rows = slots
        self._batch_kv = batch
        self._valid = valid

    @property
    def can_copy_kv(self) -> bool:
        """No: KV lives in per-run OrtValues (left-padded once batched)."""
        return False

    def export_kv(self, slot: int, count: int) -> list[npt.NDArray[Any]]:
        raise NotImplementedError("ConcatKvRunner does not copy KV out")

    def import_kv(self, slot: int, kv: Sequence[npt.NDArray[Any]]) -> None:
        raise NotImplementedError("ConcatKvRunner does not copy KV in")

    def release(self, slot: int) -> None:
        self._private.pop(slot, None)
        self._lengths.pop(slot, None)
        if slot in self._rows:
            # its row stays in the batch past until the next decode regroups without it; mark it
            # so that a new request given the same slot number is not mistaken for it
            self._rows[self._rows.index(slot)] = -1
