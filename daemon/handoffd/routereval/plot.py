"""A call-rate/quality plot as a PNG, with no plotting library (zlib + struct only).

x: share of requests handed to the cloud (0-100%), y: quality (0-100%), grid every 10%, axis
numbers in a 3x5 pixel font; each series is drawn in its own colour and numbered in a legend
box (the markdown report lists which number is which strategy). Deterministic bytes.
"""

from __future__ import annotations

import itertools
import struct
import zlib
from collections.abc import Sequence

Color = tuple[int, int, int]
Series = tuple[str, Sequence[tuple[float, float]]]

PALETTE: tuple[Color, ...] = (
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
    (0, 0, 0),
    (90, 90, 200),
    (200, 90, 90),
)

_FONT = {  # 3x5 glyphs, rows top to bottom, 3 bits each
    "0": (7, 5, 5, 5, 7),
    "1": (2, 6, 2, 2, 7),
    "2": (7, 1, 7, 4, 7),
    "3": (7, 1, 7, 1, 7),
    "4": (5, 5, 7, 1, 1),
    "5": (7, 4, 7, 1, 7),
    "6": (7, 4, 7, 5, 7),
    "7": (7, 1, 1, 2, 2),
    "8": (7, 5, 7, 5, 7),
    "9": (7, 5, 7, 1, 7),
    "%": (5, 1, 2, 4, 5),
    "+": (0, 2, 7, 2, 0),
}


class Canvas:
    def __init__(self, width: int, height: int, background: Color = (255, 255, 255)) -> None:
        self.width = width
        self.height = height
        self.pixels = bytearray(bytes(background) * (width * height))

    def set(self, x: int, y: int, color: Color) -> None:
        if 0 <= x < self.width and 0 <= y < self.height:
            i = 3 * (y * self.width + x)
            self.pixels[i : i + 3] = bytes(color)

    def line(self, x0: int, y0: int, x1: int, y1: int, color: Color, width: int = 1) -> None:
        dx, dy = abs(x1 - x0), -abs(y1 - y0)
        sx, sy = (1 if x0 < x1 else -1), (1 if y0 < y1 else -1)
        err = dx + dy
        half = width // 2
        while True:
            for ox in range(-half, width - half):
                for oy in range(-half, width - half):
                    self.set(x0 + ox, y0 + oy, color)
            if x0 == x1 and y0 == y1:
                return
            e2 = 2 * err
            if e2 >= dy:
                err += dy
                x0 += sx
            if e2 <= dx:
                err += dx
                y0 += sy

    def rect(self, x: int, y: int, w: int, h: int, color: Color) -> None:
        for yy in range(y, y + h):
            for xx in range(x, x + w):
                self.set(xx, yy, color)

    def text(self, x: int, y: int, text: str, color: Color, scale: int = 2) -> None:
        for ch in text:
            for row, bits in enumerate(_FONT.get(ch, (0, 0, 0, 0, 0))):
                for col in range(3):
                    if bits & (4 >> col):
                        self.rect(x + col * scale, y + row * scale, scale, scale, color)
            x += 4 * scale

    def png(self) -> bytes:
        raw = b"".join(
            b"\x00" + bytes(self.pixels[3 * y * self.width : 3 * (y + 1) * self.width])
            for y in range(self.height)
        )

        def chunk(kind: bytes, data: bytes) -> bytes:
            body = kind + data
            return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

        header = struct.pack(">IIBBBBB", self.width, self.height, 8, 2, 0, 0, 0)
        return (
            b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw, 9))
            + chunk(b"IEND", b"")
        )


def plot_curves(series: Sequence[Series], width: int = 720, height: int = 480) -> bytes:
    """PNG bytes of the curves; points are (call_rate, quality) in [0, 1]."""
    canvas = Canvas(width, height)
    left, right, top, bottom = 56, 150, 16, 40
    pw, ph = width - left - right, height - top - bottom
    grid, axis = (225, 225, 225), (60, 60, 60)

    def px(x: float, y: float) -> tuple[int, int]:
        return left + round(x * pw), top + round((1.0 - y) * ph)

    for k in range(11):
        gx, gy = px(k / 10, 0.0)[0], px(0.0, k / 10)[1]
        canvas.line(gx, top, gx, top + ph, grid)
        canvas.line(left, gy, left + pw, gy, grid)
        label = str(k * 10)
        canvas.text(gx - 4 * len(label), top + ph + 8, label, axis)
        canvas.text(left - 8 - 8 * len(label), gy - 5, label, axis)
    canvas.text(left + pw - 8, top + ph + 22, "%", axis)
    canvas.text(8, top, "%", axis)
    canvas.line(left, top, left, top + ph, axis, 2)
    canvas.line(left, top + ph, left + pw, top + ph, axis, 2)
    for n, (_, points) in enumerate(series):
        color = PALETTE[n % len(PALETTE)]
        pixels = [px(x, y) for x, y in points]
        for (x0, y0), (x1, y1) in itertools.pairwise(pixels):
            canvas.line(x0, y0, x1, y1, color, 2)
        ly = top + 8 + n * 22
        canvas.rect(left + pw + 16, ly, 24, 12, color)
        canvas.text(left + pw + 48, ly + 1, str(n + 1), axis)
    return canvas.png()
