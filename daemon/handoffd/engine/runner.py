"""What the engine worker needs from a graph, whatever its KV layout.

A runner owns the KV cache of ``max_batch`` slots. A request holds one slot from admission to
its end: its prompt goes in by :meth:`GraphRunner.prefill` in chunks, then each decode step feeds
one token per running slot through :meth:`GraphRunner.decode`, batched in one session run.
Runners are used by one thread only (the engine worker) and are not thread-safe.

Two implementations: :class:`handoffd.engine.kv_shared.SharedKvRunner` (GroupQueryAttention
graphs, past and present bound to one preallocated max-length buffer) and
:class:`handoffd.engine.kv_concat.ConcatKvRunner` (graphs that concatenate past and new KV
themselves, such as Optimum exports).
"""

from __future__ import annotations

import ctypes
import mmap
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]


class GraphRunner(Protocol):
    #: slots that can decode together in one run
    max_batch: int
    #: tokens one slot can hold (prompt + generated)
    capacity: int
    #: KV bytes one token of one slot occupies (all layers, keys and values)
    bytes_per_token: int

    def prefill(self, slot: int, token_ids: Sequence[int], start: int) -> FloatArray:
        """Append ``token_ids`` to ``slot`` (which holds ``start`` tokens); float32 logits of the
        last position, shape ``[vocab]``."""
        ...

    def decode(self, slots: Sequence[int], tokens: Sequence[int]) -> FloatArray:
        """Append one token to each of ``slots`` in one run; float32 logits ``[len(slots), vocab]``
        in the order of ``slots`` (possibly a view that the next call overwrites)."""
        ...

    def release(self, slot: int) -> None:
        """Forget what ``slot`` holds; it may be given to another request."""
        ...

    @property
    def can_copy_kv(self) -> bool:
        """Whether :meth:`export_kv` and :meth:`import_kv` work (host KV that can be copied)."""
        ...

    def export_kv(self, slot: int, count: int) -> list[npt.NDArray[Any]]:
        """Copies of the first ``count`` tokens' KV of ``slot``: per layer keys then values,
        each ``[kv_heads, count, head_size]``."""
        ...

    def import_kv(self, slot: int, kv: Sequence[npt.NDArray[Any]]) -> None:
        """Put ``kv`` (shaped as :meth:`export_kv` returns it) at the start of the empty
        ``slot``, which then holds that many tokens."""
        ...


def lazy_zeros(shape: tuple[int, ...], dtype: np.dtype[Any]) -> npt.NDArray[Any]:
    """A zero-filled array whose memory is committed page by page as it is written.

    ``numpy.zeros`` of a large size also gets zero pages lazily, but numpy asks the kernel for
    transparent huge pages (``MADV_HUGEPAGE``) on large allocations, and then the first write
    into each 2 MiB region commits all of it: a KV buffer of 8k positions would be committed in
    full by the first few tokens. This maps anonymous memory and asks for no huge pages.
    """
    size = max(1, int(np.prod(shape)) * dtype.itemsize)
    memory = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    if hasattr(mmap, "MADV_NOHUGEPAGE"):
        memory.madvise(mmap.MADV_NOHUGEPAGE)
    return np.frombuffer(memory, dtype=dtype).reshape(shape)


def forget_pages(array: npt.NDArray[Any], offset: int, length: int) -> None:
    """Give the pages of ``array``'s bytes ``[offset, offset + length)`` back to the OS
    (``MADV_DONTNEED``; they read as zeros afterwards). Only for :func:`lazy_zeros` arrays."""
    memory: Any = array
    while memory is not None and not isinstance(memory, mmap.mmap):
        memory = getattr(memory, "base", None) if not isinstance(memory, memoryview) else memory.obj
    if memory is None or not hasattr(mmap, "MADV_DONTNEED"):
        return
    page = mmap.PAGESIZE
    start = -(-offset // page) * page
    end = min((offset + length) // page * page, len(memory))
    if end > start:
        memory.madvise(mmap.MADV_DONTNEED, start, end - start)


def last_row(pointer: int, rows: int, width: int, dtype: np.dtype[np.generic]) -> FloatArray:
    """A float32 copy of the last ``width`` elements of a ``[rows, width]`` host buffer at
    ``pointer`` (only that row is read, not the whole buffer)."""
    size = width * dtype.itemsize
    raw = memoryview((ctypes.c_char * size).from_address(pointer + (rows - 1) * size)).cast("B")
    row: FloatArray = np.frombuffer(raw, dtype=dtype).astype(np.float32)
    return row
