"""A minimal PNG reader (8-bit RGB/RGBA, not interlaced) to count colours in screenshots."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def _unfilter_slow(kind: int, line: bytearray, prev: bytes, bpp: int) -> None:
    for i in range(len(line)):
        left = line[i - bpp] if i >= bpp else 0
        up = prev[i]
        if kind == 3:
            line[i] = (line[i] + ((left + up) >> 1)) & 0xFF
        else:
            corner = prev[i - bpp] if i >= bpp else 0
            line[i] = (line[i] + _paeth(left, up, corner)) & 0xFF


def read_rgb(path: Path) -> np.ndarray:
    """The image as a (height, width, 3) uint8 array."""
    data = path.read_bytes()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path} is not a PNG")
    pos, idat = 8, bytearray()
    width = height = depth = colour = interlace = 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        chunk = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", chunk)
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    if depth != 8 or colour not in (2, 6) or interlace:
        raise ValueError(f"unsupported PNG: depth {depth}, colour type {colour}")
    bpp = 3 if colour == 2 else 4
    stride = width * bpp
    raw = np.frombuffer(zlib.decompress(bytes(idat)), dtype=np.uint8).reshape(height, stride + 1)
    out = np.zeros((height, stride), dtype=np.uint8)
    prev = np.zeros(stride, dtype=np.uint8)
    for y in range(height):
        filter_type = int(raw[y, 0])
        line = raw[y, 1:]
        if filter_type == 0:
            row = line.copy()
        elif filter_type == 1:  # Sub: running sum per channel
            row = (
                (np.cumsum(line.reshape(width, bpp), axis=0, dtype=np.uint32) & 0xFF)
                .astype(np.uint8)
                .reshape(stride)
            )
        elif filter_type == 2:  # Up
            row = line + prev  # uint8 arithmetic wraps modulo 256
        else:
            buf = bytearray(line.tobytes())
            _unfilter_slow(filter_type, buf, prev.tobytes(), bpp)
            row = np.frombuffer(bytes(buf), dtype=np.uint8)
        out[y] = row
        prev = row
    return out.reshape(height, width, bpp)[:, :, :3]


def colour_counts(
    path: Path, colours: Iterable[tuple[int, int, int]]
) -> dict[tuple[int, int, int], int]:
    """How many pixels of each of ``colours`` the image has."""
    image = read_rgb(path)
    return {c: int(np.all(image == np.array(c, dtype=np.uint8), axis=2).sum()) for c in colours}
