"""Small inline SVG charts (line and horizontal bar), generated as text: no JavaScript, no CDN.

Every label is HTML-escaped (app names and rule ids come from configs and clients). Colours come
from a fixed palette, in series order, so a reader (or a test) can tell the series apart.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from html import escape

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")

_W, _H = 720, 300
_LEFT, _RIGHT, _TOP, _BOTTOM = 70, 160, 36, 48


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    magnitude = 10.0 ** math.floor(math.log10(value))
    for step in (1.0, 2.0, 2.5, 5.0, 10.0):
        if value <= step * magnitude:
            return step * magnitude
    return 10.0 * magnitude


def line_chart(
    title: str,
    series: Mapping[str, Sequence[tuple[str, float]]],
    *,
    value_format: Callable[[float], str] = lambda v: f"{v:g}",
    chart_id: str = "",
) -> str:
    """One line per series over the union of their x labels (in sorted order)."""
    xs = sorted({x for points in series.values() for x, _ in points})
    top = _nice_max(max((v for points in series.values() for _, v in points), default=0.0))
    plot_w, plot_h = _W - _LEFT - _RIGHT, _H - _TOP - _BOTTOM

    def px(i: int) -> float:
        return _LEFT + (plot_w * (i + 0.5) / len(xs) if xs else 0.0)

    def py(v: float) -> float:
        return _TOP + plot_h * (1 - v / top)

    parts = [_open(title, chart_id)]
    for k in range(5):  # gridlines and y ticks
        value = top * k / 4
        y = py(value)
        parts.append(
            f'<line x1="{_LEFT}" y1="{y:.1f}" x2="{_LEFT + plot_w}" y2="{y:.1f}" '
            'stroke="#ddd" stroke-width="1"/>'
            f'<text x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11">'
            f"{escape(value_format(value))}</text>"
        )
    stride = max(1, math.ceil(len(xs) / 8))
    for i, x in enumerate(xs):
        if i % stride == 0 or i == len(xs) - 1:
            parts.append(
                f'<text x="{px(i):.1f}" y="{_TOP + plot_h + 18}" text-anchor="middle" '
                f'font-size="11">{escape(x)}</text>'
            )
    parts.append(
        f'<line x1="{_LEFT}" y1="{_TOP + plot_h}" x2="{_LEFT + plot_w}" y2="{_TOP + plot_h}" '
        'stroke="#333" stroke-width="1"/>'
    )
    index = {x: i for i, x in enumerate(xs)}
    for n, (name, points) in enumerate(series.items()):
        colour = PALETTE[n % len(PALETTE)]
        coords = [(px(index[x]), py(v), x, v) for x, v in sorted(points)]
        if len(coords) > 1:
            path = " ".join(f"{cx:.1f},{cy:.1f}" for cx, cy, _, _ in coords)
            parts.append(
                f'<polyline class="series" data-series="{escape(name)}" points="{path}" '
                f'fill="none" stroke="{colour}" stroke-width="3"/>'
            )
        for cx, cy, x, v in coords:
            parts.append(
                f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="5" fill="{colour}">'
                f"<title>{escape(name)} {escape(x)}: {escape(value_format(v))}</title></circle>"
            )
        ly = _TOP + 8 + 20 * n
        parts.append(
            f'<rect x="{_W - _RIGHT + 16}" y="{ly - 9}" width="14" height="14" fill="{colour}"/>'
            f'<text x="{_W - _RIGHT + 36}" y="{ly + 2}" font-size="12">{escape(name)}</text>'
        )
    if not xs:
        parts.append(_empty_note())
    parts.append("</svg>")
    return "".join(parts)


def bar_chart(
    title: str,
    bars: Sequence[tuple[str, float]],
    *,
    value_format: Callable[[float], str] = lambda v: f"{v:g}",
    chart_id: str = "",
) -> str:
    """Horizontal bars, largest first as given."""
    height = max(_TOP + 30 + 26 * len(bars), 120)
    top = _nice_max(max((v for _, v in bars), default=0.0))
    label_w, plot_w = 240, _W - 240 - 80
    parts = [_open(title, chart_id, height=height)]
    for i, (label, value) in enumerate(bars):
        y = _TOP + 10 + 26 * i
        width = plot_w * value / top
        colour = PALETTE[i % len(PALETTE)]
        parts.append(
            f'<text x="{label_w - 8}" y="{y + 14}" text-anchor="end" font-size="12">'
            f"{escape(label)}</text>"
            f'<rect class="bar" x="{label_w}" y="{y}" width="{width:.1f}" height="18" '
            f'fill="{colour}"><title>{escape(label)}: {escape(value_format(value))}</title></rect>'
            f'<text x="{label_w + width + 6:.1f}" y="{y + 14}" font-size="12">'
            f"{escape(value_format(value))}</text>"
        )
    if not bars:
        parts.append(_empty_note())
    parts.append("</svg>")
    return "".join(parts)


def _open(title: str, chart_id: str, *, height: int = _H) -> str:
    ident = f' id="{escape(chart_id)}"' if chart_id else ""
    return (
        f'<svg{ident} class="chart" width="{_W}" height="{height}" '
        f'viewBox="0 0 {_W} {height}" role="img" aria-label="{escape(title)}">'
        f'<text x="{_LEFT}" y="20" font-size="15" font-weight="bold">{escape(title)}</text>'
    )


def _empty_note() -> str:
    return f'<text x="{_LEFT + 10}" y="{_H // 2}" font-size="13" fill="#666">no data</text>'
