"""The audit report: ONE self-contained HTML page (inline CSS and SVG), readable offline.

It shows, per app, spend and handoffs per day, the most frequent refusal reasons and the
per-app-per-day table, plus the verification result. Nothing is fetched: no scripts, no fonts,
no images from elsewhere.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from html import escape

from handoffd.ledger.stats import DayStats, RuleCount
from handoffd.ledger.svg_charts import bar_chart, line_chart

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 980px; color: #222; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
.meta { color: #555; font-size: 0.9em; }
.cards { display: flex; gap: 1em; margin: 1.2em 0; flex-wrap: wrap; }
.card { border: 1px solid #ccc; border-radius: 6px; padding: 0.6em 1em; min-width: 8em; }
.card b { display: block; font-size: 1.4em; }
.ok { color: #1a7f37; } .bad { color: #b42318; }
table { border-collapse: collapse; width: 100%; font-size: 0.9em; margin-top: 1em; }
th, td { border-bottom: 1px solid #e5e5e5; padding: 4px 8px; text-align: right; }
th:first-child, td:first-child, th:nth-child(2), td:nth-child(2) { text-align: left; }
svg.chart { display: block; margin: 1.5em 0; background: #fff; }
"""


def _money(value: float) -> str:
    return f"${value:,.4f}" if value < 1 else f"${value:,.2f}"


def _per_app(stats: Sequence[DayStats], metric: str) -> dict[str, list[tuple[str, float]]]:
    series: dict[str, list[tuple[str, float]]] = defaultdict(list)
    for row in stats:
        series[row.app].append((row.day, float(getattr(row, metric))))
    return dict(sorted(series.items()))


def render_html_report(
    stats: Sequence[DayStats],
    refusal_reasons: Sequence[RuleCount],
    *,
    title: str = "handoffd audit report",
    ledger_path: str = "",
    generated_at: str = "",
    scope: str = "all entries",
    verify_summary: str | None = None,
    verify_ok: bool | None = None,
) -> str:
    """The report page as text."""
    totals = {
        "handoffs": sum(s.handoffs for s in stats),
        "sent": sum(s.sent for s in stats),
        "refusals": sum(s.refusals for s in stats),
        "fallbacks": sum(s.fallbacks for s in stats),
        "failed": sum(s.failed for s in stats),
    }
    spend = sum(s.spend_usd for s in stats)
    cards = "".join(
        f'<div class="card"><b>{value:,}</b>{escape(name)}</div>' for name, value in totals.items()
    )
    cards += f'<div class="card"><b>{escape(_money(spend))}</b>spend</div>'
    verdict = ""
    if verify_summary is not None:
        css = "ok" if verify_ok else "bad"
        verdict = f'<p class="{css}"><b>Verification:</b> {escape(verify_summary)}</p>'
    rows = "".join(
        "<tr>"
        f"<td>{escape(s.day)}</td><td>{escape(s.app)}</td><td>{s.handoffs}</td><td>{s.sent}</td>"
        f"<td>{s.refusals}</td><td>{s.fallbacks}</td><td>{s.failed}</td>"
        f"<td>{s.tokens_in + s.tokens_out:,}</td><td>{escape(_money(s.spend_usd))}</td>"
        f"<td>{escape(', '.join(f'{r.rule_id} ({r.count})' for r in s.top_rules))}</td>"
        "</tr>"
        for s in stats
    )
    charts = [
        line_chart(
            "Spend per day (USD, settled)",
            _per_app(stats, "spend_usd"),
            value_format=_money,
            chart_id="spend",
        ),
        line_chart("Handoffs per day", _per_app(stats, "handoffs"), chart_id="handoffs"),
        line_chart("Refusals per day", _per_app(stats, "refusals"), chart_id="refusals"),
        bar_chart(
            "Top refusal reasons (rule ids)",
            [(r.rule_id, float(r.count)) for r in refusal_reasons],
            chart_id="reasons",
        ),
    ]
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{escape(title)}</h1>"
        f'<p class="meta">Ledger {escape(ledger_path)} &middot; {escape(scope)} &middot; '
        f"generated {escape(generated_at)} (times in UTC)</p>"
        f"{verdict}<div class=\"cards\">{cards}</div>"
        + "".join(charts)
        + "<h2>Per app and day</h2><table><thead><tr><th>day</th><th>app</th><th>handoffs</th>"
        "<th>sent</th><th>refusals</th><th>fallbacks</th><th>failed</th><th>tokens</th>"
        f"<th>spend</th><th>top rules</th></tr></thead><tbody>{rows}</tbody></table>"
        "</body></html>\n"
    )
