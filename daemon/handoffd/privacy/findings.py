"""What a detector reports, and how overlapping reports become one decision per span.

A :class:`Finding` holds positions only: the value is ``text[start:end]`` of the scanned text and
is never copied anywhere else (not into logs, not into the finding).

Overlaps are resolved deterministically and fail safe: findings whose spans overlap are merged
into ONE finding covering the union of their spans (so no character any detector flagged is left
out), labelled with the member whose action is the strictest, then the most specific detector,
then the longest span, then the earliest start, then the rule id.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from handoffd.schema.privacy import Action


@dataclass(frozen=True, slots=True)
class Finding:
    """One detected value: ``text[start:end]`` is of ``entity_type``, found by ``rule_id``."""

    entity_type: str
    start: int
    end: int
    rule_id: str

    @property
    def length(self) -> int:
        return self.end - self.start


# How specific a detector is: a checksum-validated or exact-format match beats a heuristic one.
_SPECIFICITY_BY_PREFIX: tuple[tuple[str, int], ...] = (
    ("privacy.secret.entropy", 20),
    ("privacy.secret.", 90),
    ("privacy.credit_card", 80),
    ("privacy.iban", 80),
    ("privacy.us_ssn", 70),
    ("privacy.email", 70),
    ("privacy.ip_address", 60),
    ("privacy.mac_address", 60),
    ("privacy.custom.", 50),
    ("privacy.phone", 40),
    ("privacy.ner.", 30),
)


def specificity(rule_id: str) -> int:
    """Rank of a rule when overlapping findings compete for the label (higher wins)."""
    for prefix, rank in _SPECIFICITY_BY_PREFIX:
        if rule_id.startswith(prefix):
            return rank
    return 10


def resolve_overlaps(
    findings: Iterable[Finding], action_of: Callable[[str], Action]
) -> list[Finding]:
    """Merge overlapping findings (see the module docstring); the result is sorted by start."""
    ordered = sorted(findings, key=lambda f: (f.start, -f.end, f.rule_id))
    out: list[Finding] = []
    cluster: list[Finding] = []
    cluster_end = -1
    for finding in ordered:
        if finding.length <= 0:
            continue
        if cluster and finding.start < cluster_end:
            cluster.append(finding)
            cluster_end = max(cluster_end, finding.end)
            continue
        if cluster:
            out.append(_merge(cluster, action_of))
        cluster = [finding]
        cluster_end = finding.end
    if cluster:
        out.append(_merge(cluster, action_of))
    return out


def _merge(cluster: list[Finding], action_of: Callable[[str], Action]) -> Finding:
    if len(cluster) == 1:
        return cluster[0]
    winner = min(
        cluster,
        key=lambda f: (
            -action_of(f.entity_type).strictness,
            -specificity(f.rule_id),
            -f.length,
            f.start,
            f.rule_id,
        ),
    )
    start = min(f.start for f in cluster)
    end = max(f.end for f in cluster)
    return Finding(winner.entity_type, start, end, winner.rule_id)
