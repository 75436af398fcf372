"""Aggregates over the ledger: per app and day, and the most frequent refusal reasons.

Counting rules: ``handoffs`` counts intents (requests that were about to leave the device);
``sent``/``failed``/``fallbacks``/``refusals`` count outcomes; tokens and spend come from
outcomes (settled cost). Rule ids are counted once per request: from intents and refusals, not
again from the outcome of an intent.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from handoffd.ledger.reader import EntryFilter


@dataclass(frozen=True, slots=True)
class RuleCount:
    rule_id: str
    count: int


@dataclass(frozen=True, slots=True)
class DayStats:
    app: str
    day: str  # YYYY-MM-DD, UTC
    handoffs: int
    sent: int
    failed: int
    fallbacks: int
    refusals: int
    tokens_in: int
    tokens_out: int
    spend_usd: float
    top_rules: tuple[RuleCount, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "app": self.app,
            "day": self.day,
            "handoffs": self.handoffs,
            "sent": self.sent,
            "failed": self.failed,
            "fallbacks": self.fallbacks,
            "refusals": self.refusals,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "spend_usd": self.spend_usd,
            "top_rules": [{"rule_id": r.rule_id, "count": r.count} for r in self.top_rules],
        }


_TOTALS = """
SELECT app, substr(time, 1, 10) AS day,
       sum(kind = 'intent'),
       sum(outcome = 'sent'), sum(outcome = 'failed'), sum(outcome = 'fallback'),
       sum(outcome = 'refused'),
       sum(CASE WHEN kind = 'outcome' THEN json_extract(body, '$.tokens_in') ELSE 0 END),
       sum(CASE WHEN kind = 'outcome' THEN json_extract(body, '$.tokens_out') ELSE 0 END),
       total(json_extract(body, '$.settled_cost_usd'))
FROM entries WHERE {where}
GROUP BY app, day ORDER BY day, app
"""

_RULES = """
SELECT entries.app, substr(entries.time, 1, 10) AS day, rule.value, count(*)
FROM entries, json_each(entries.body, '$.rule_ids') AS rule
WHERE ({where}) AND (entries.kind = 'intent' OR entries.intent_id IS NULL)
GROUP BY entries.app, day, rule.value
"""

_REFUSALS = """
SELECT rule.value, count(*)
FROM entries, json_each(entries.body, '$.rule_ids') AS rule
WHERE ({where}) AND entries.outcome = 'refused'
GROUP BY rule.value ORDER BY count(*) DESC, rule.value LIMIT ?
"""


def day_stats(db: sqlite3.Connection, where: EntryFilter, *, top_rules: int = 3) -> list[DayStats]:
    condition, params = where.where()
    rules: dict[tuple[str, str], list[RuleCount]] = defaultdict(list)
    for app, day, rule, count in db.execute(_RULES.format(where=condition), params):
        rules[(app, day)].append(RuleCount(str(rule), int(count)))
    out = []
    for row in db.execute(_TOTALS.format(where=condition), params):
        app, day = str(row[0]), str(row[1])
        top = sorted(rules.get((app, day), []), key=lambda r: (-r.count, r.rule_id))[:top_rules]
        out.append(
            DayStats(
                app=app,
                day=day,
                handoffs=int(row[2] or 0),
                sent=int(row[3] or 0),
                failed=int(row[4] or 0),
                fallbacks=int(row[5] or 0),
                refusals=int(row[6] or 0),
                tokens_in=int(row[7] or 0),
                tokens_out=int(row[8] or 0),
                spend_usd=float(row[9] or 0.0),
                top_rules=tuple(top),
            )
        )
    return out


def refusal_reasons(db: sqlite3.Connection, where: EntryFilter, *, top: int) -> list[RuleCount]:
    """The rule ids that refused handoffs most often."""
    condition, params = where.where()
    rows = db.execute(_REFUSALS.format(where=condition), [*params, top])
    return [RuleCount(str(rule), int(count)) for rule, count in rows]
