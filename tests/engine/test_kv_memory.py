"""KV buffers commit memory only where tokens are written, and give it back when asked."""

from __future__ import annotations

import ctypes
import mmap

import numpy as np
import pytest
from handoffd.engine.runner import forget_pages, lazy_zeros

libc = ctypes.CDLL(None, use_errno=True)


def _resident_bytes(array: np.ndarray) -> int:
    page = mmap.PAGESIZE
    start = array.ctypes.data // page * page
    length = array.ctypes.data + array.nbytes - start
    pages = -(-length // page)
    vector = (ctypes.c_ubyte * pages)()
    if libc.mincore(ctypes.c_void_p(start), ctypes.c_size_t(length), vector) != 0:
        pytest.skip("mincore is not available here")
    return sum(v & 1 for v in vector) * page


def test_writes_commit_only_their_pages() -> None:
    """Writing the first positions of each 2 MiB head block commits a few pages, not the blocks
    (no transparent huge pages, unlike numpy.zeros)."""
    kv = lazy_zeros((2, 3, 8192, 64), np.dtype(np.float32))  # 2 slots x 3 heads x 2 MiB
    kv[:, :, :16, :] = 1.0
    assert _resident_bytes(kv) <= 2 * 3 * 2 * mmap.PAGESIZE  # measured before reading it all
    assert float(kv[:, :, :16, :].sum()) == 2 * 3 * 16 * 64


def test_forget_pages_zeroes_and_frees_only_that_range() -> None:
    """Forgotten pages read as zeros and leave the other slot's data alone."""
    kv = lazy_zeros((2, 1, 4096, 64), np.dtype(np.float32))
    kv[:, :, :1024, :] = 3.0
    row_bytes = kv[0].nbytes
    before = _resident_bytes(kv)
    forget_pages(kv, 0, row_bytes)
    assert _resident_bytes(kv) <= before - row_bytes // 4 + mmap.PAGESIZE
    assert not kv[0, 0, :1024].any()
    assert float(kv[1, 0, :1024].min()) == 3.0
