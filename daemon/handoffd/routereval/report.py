"""The eval report as markdown, and its section in docs/benchmarks.md."""

from __future__ import annotations

import math
import os
import platform
from datetime import date
from pathlib import Path

from handoffd.routereval.evaluate import REFERENCES, EvalReport, quality_table
from handoffd.routereval.plot import PALETTE

RATES = tuple(k / 10 for k in range(11))
MARK_START = "<!-- bench:router:start -->"
MARK_END = "<!-- bench:router:end -->"


def _pct(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{100 * value:.1f}%"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


METHOD = (
    "Method: `handoffctl router eval` runs the local model greedily over the eval set (the "
    "shipped 358-item set unless `--dataset` says otherwise): the plain answer, the "
    "self-assessment (one forward pass) and the answer when the model is offered the handoff; "
    "answers are graded against references (exact / contains / numeric). The learned weights "
    "are fitted and every threshold is calibrated on the TUNE half only; every number below is "
    "on the TEST half. A strategy's curve sweeps its threshold from no handoff to all."
)


def render_markdown(
    report: EvalReport,
    *,
    plot_name: str | None = None,
    machine: str | None = None,
    settings_note: str = "",
    apgr_target: float | None = 0.70,
) -> str:
    """The whole report: summary, metrics table, calibrated points, curves, categories."""
    gain = report.perfect_apgr - 0.5
    lines = [
        "## Router evaluation",
        "",
        METHOD,
        "",
        f"- model: `{report.model}`; cloud: {report.cloud}",
        f"- items: {report.n_tune} tune (fitting, calibration) / {report.n_test} test "
        "(every number below)",
        f"- local accuracy on test: **{_pct(report.local_accuracy)}**; cloud: "
        f"{_pct(report.cloud_accuracy)}",
        f"- a perfect router's APGR here: **{report.perfect_apgr:.3f}** "
        "(= 1 - (1 - local accuracy)/2 with an oracle cloud); random: 0.500",
        f"- date: {date.today().isoformat()}; machine: {machine or cpu_model()}, "
        f"{os.cpu_count()} cores",
        f"- model-initiated handoff: called on {report.handoff_calls} of {report.n_test} test "
        f"items; with the handoff offered, the local answers were right "
        f"{_pct(report.instructed_accuracy)} of the time (without: {_pct(report.local_accuracy)})",
        *([f"- settings: {settings_note}"] if settings_note else []),
        "",
        "| # | strategy | APGR | of perfect | gain recovered | CPT(50%) | CPT(80%) | "
        f"calibrated on tune for {_pct(report.target_rate)} calls: test calls / quality / PGR "
        "| config |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for n, s in enumerate(report.strategies, start=1):
        recovered = (s.apgr - 0.5) / gain if gain > 0 else math.nan
        cal = s.calibrated
        if cal is None:
            cal_text, conf = "-", "-"
        else:
            cal_text = f"{_pct(cal.test_rate)} / {_pct(cal.test_quality)} / {cal.test_pgr:.2f}"
            conf = (
                f"`{s.config_key}: {cal.config_value:.4g}`" if cal.config_value is not None else "-"
            )
        lines.append(
            f"| {n} | {s.name} | {s.apgr:.3f} | {s.apgr / report.perfect_apgr:.2f} | "
            f"{_pct(recovered)} | {_pct(s.cpt50)} | {_pct(s.cpt80)} | {cal_text} | {conf} |"
        )
    lines += ["", *summary(report, gain, apgr_target)]
    lines += [
        "",
        "APGR: area under the performance-gap-recovered curve (RouteLLM); *of perfect*: APGR / "
        "the perfect router's APGR; *gain recovered*: (APGR - 0.5) / (perfect - 0.5), the share "
        "of a perfect router's gain over a random one; CPT(x%): the share of cloud calls needed "
        "to recover x% of the quality gap (lower is better).",
        "",
        "Test quality at each share of cloud calls:",
        "",
        "| strategy | " + " | ".join(f"{round(100 * r)}%" for r in RATES) + " |",
        "|---|" + "---|" * len(RATES),
    ]
    for name, row in quality_table(report, RATES).items():
        lines.append(f"| {name} | " + " | ".join(f"{100 * q:.0f}" for q in row) + " |")
    lines += [
        "",
        "Local accuracy on test by category:",
        "",
        "| category | items | accuracy |",
        "|---|---|---|",
    ]
    for category, (count, acc) in report.category_accuracy.items():
        lines.append(f"| {category} | {count} | {_pct(acc)} |")
    if plot_name:
        legend = ", ".join(
            f"{n} = {s.name} (rgb{PALETTE[(n - 1) % len(PALETTE)]})"
            for n, s in enumerate(report.strategies, start=1)
        )
        lines += ["", f"![call rate vs quality]({plot_name})", "", f"Plot legend: {legend}."]
    return "\n".join(lines) + "\n"


def summary(report: EvalReport, gain: float, apgr_target: float | None) -> list[str]:
    """Findings computed from the numbers (no judgement calls that the numbers do not make)."""
    def recovered(apgr: float) -> str:
        return _pct((apgr - 0.5) / gain) if gain > 0 else "n/a"

    routers = [s for s in report.strategies if s.name not in REFERENCES]
    best = max(routers, key=lambda s: s.apgr)
    pure = [s for s in routers if "model_handoff" not in s.name]
    best_pure = max(pure, key=lambda s: s.apgr) if pure else best
    out = [
        f"Summary: the best strategy here is **{best.name}**, APGR {best.apgr:.3f} = "
        f"{best.apgr / report.perfect_apgr:.0%} of a perfect router's, {recovered(best.apgr)} of "
        "its gain over random."
    ]
    if best_pure is not best:
        out[-1] += (
            f" Without the model-handoff prompt, **{best_pure.name}** reaches "
            f"{best_pure.apgr:.3f} ({recovered(best_pure.apgr)} of the gain)."
        )
    if apgr_target is not None and report.perfect_apgr < apgr_target:
        out.append(
            f"An APGR target of {apgr_target:.2f} cannot be met on this set by any router: a "
            f"perfect one reaches {report.perfect_apgr:.3f} because the local model is right "
            f"on only {_pct(report.local_accuracy)} of it; compare *of perfect* and *gain "
            "recovered* instead."
        )
    worse = [s.name for s in routers if s.apgr < 0.5]
    if worse:
        out.append(f"Worse than a random router: {', '.join(worse)}.")
    prior = next((s for s in report.strategies if s.name == "category_prior"), None)
    if prior is not None:
        out.append(
            f"Knowing only each request's category (a label-reading yardstick) gives "
            f"{prior.apgr:.3f} ({recovered(prior.apgr)} of the gain)."
        )
    return [" ".join(out)]


def write_section(path: Path, body: str, name: str = "router") -> None:
    """Replace (or append) this benchmark's section between its markers in ``path``."""
    start, end = f"<!-- bench:{name}:start -->", f"<!-- bench:{name}:end -->"
    block = f"{start}\n{body.rstrip()}\n{end}\n"
    text = path.read_text("utf-8") if path.exists() else "# Benchmarks\n\n"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        _, tail = rest.split(end, 1)
        text = head + block.rstrip("\n") + tail
    else:
        text = text.rstrip("\n") + "\n\n" + block
    path.write_text(text, "utf-8")
