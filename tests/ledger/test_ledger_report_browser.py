"""The HTML report rendered by a real headless Chromium: its charts draw (skips without it)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from handoffd.cli.audit_cmds import audit
from handoffd.ledger.svg_charts import PALETTE

from tests.ledger.conftest import PopulatedLedger
from tests.ledger.png_pixels import colour_counts

CHROMIUM = next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
)


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    value = int(hex_colour[1:], 16)
    return (value >> 16) & 255, (value >> 8) & 255, value & 255


def _screenshot(page: Path, out: Path, profile: Path) -> None:
    assert CHROMIUM is not None
    subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            f"--screenshot={out}",
            "--window-size=1000,1700",
            "--hide-scrollbars",
            page.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )


@pytest.mark.skipif(
    CHROMIUM is None,
    reason="no chromium on PATH: `apt-get install -y chromium` to render the report headless",
)
def test_report_charts_render_in_headless_chromium(
    populated: PopulatedLedger, tmp_path: Path
) -> None:
    """Chromium draws the report offline: every app's series colour covers many pixels (lines,
    markers, legend), which a page whose SVG failed to render would not have."""
    page = tmp_path / "report.html"
    result = CliRunner().invoke(
        audit, ["--ledger", str(populated.path), "report", "--html", str(page)]
    )
    assert result.exit_code == 0, result.output
    shot = tmp_path / "report.png"
    _screenshot(page, shot, tmp_path / "profile")
    colours = [_rgb(c) for c in PALETTE[:3]]  # one per app
    counts = colour_counts(shot, colours)
    for colour in colours:
        assert counts[colour] > 1500, (colour, counts[colour])
    # control: the same page with its charts removed has none of those colours
    bare = tmp_path / "bare.html"
    html = page.read_text()
    while "<svg" in html:
        start = html.index("<svg")
        html = html[:start] + html[html.index("</svg>", start) + len("</svg>") :]
    bare.write_text(html)
    _screenshot(bare, tmp_path / "bare.png", tmp_path / "profile2")
    control = colour_counts(tmp_path / "bare.png", colours)
    assert all(n == 0 for n in control.values()), control
