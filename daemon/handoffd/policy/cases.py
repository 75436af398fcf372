"""Run a policy's embedded ``tests:`` cases: each input through the evaluator, compared with the
expected outcome, rule ids, target and entity actions.

The privacy scanner belongs to another component, so the caller passes a ``scan`` function
(``handoffctl policy check`` passes the real scanner); :func:`summarize` turns any scanner's
findings (objects with ``entity_type`` and ``rule_id``) into the evaluator's entity summary.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from handoffd.domain import HandoffPreference
from handoffd.policy.app_policy import LoadedPolicy
from handoffd.policy.evaluator import PolicyEvaluator
from handoffd.policy.verdict import EntitySummary, PolicyVerdict, RequestFacts
from handoffd.schema.policy import PolicyCase
from handoffd.schema.privacy import PrivacyConfig


class FindingLike(Protocol):
    @property
    def entity_type(self) -> str: ...

    @property
    def rule_id(self) -> str: ...


#: scans a prompt with an app's privacy section: entity type -> summary
Scan = Callable[[str, PrivacyConfig], Mapping[str, EntitySummary]]


def summarize(findings: Iterable[FindingLike]) -> dict[str, EntitySummary]:
    """Findings -> entity type -> (count, rule ids in order of first appearance)."""
    counts: dict[str, int] = {}
    rules: dict[str, dict[str, None]] = {}
    for finding in findings:
        counts[finding.entity_type] = counts.get(finding.entity_type, 0) + 1
        rules.setdefault(finding.entity_type, {})[finding.rule_id] = None
    return {t: EntitySummary(counts[t], tuple(rules[t])) for t in counts}


def estimate_tokens(text: str) -> int:
    """About one token per 4 characters (the local tokenizer is not needed for a check)."""
    return math.ceil(len(text) / 4)


@dataclass(frozen=True, slots=True)
class CaseResult:
    name: str
    passed: bool
    #: what differed from the expectation (empty when passed)
    problems: tuple[str, ...]
    verdict: PolicyVerdict


def run_case(
    policy: LoadedPolicy, case: PolicyCase, scan: Scan | None, evaluator: PolicyEvaluator
) -> CaseResult:
    given = case.input
    app = policy.for_app(given.app)
    entities = scan(given.prompt, app.privacy) if scan is not None and given.prompt else {}
    facts = RequestFacts(
        app=given.app,
        labels=frozenset(given.labels),
        preference=HandoffPreference(given.preference),
        prompt_tokens=(
            estimate_tokens(given.prompt) if given.prompt_tokens is None else given.prompt_tokens
        ),
        max_tokens=given.max_tokens,
        entities=entities,
    )
    verdict = evaluator.evaluate(app, facts)
    expect = case.expect
    problems: list[str] = []
    if verdict.outcome.value != expect.outcome:
        why = ", ".join(verdict.blocked_by) or "no rule blocked it"
        problems.append(f"outcome is {verdict.outcome.value} ({why}), expected {expect.outcome}")
    matched = verdict.rule_ids
    for rule_id in expect.rule_ids:
        if rule_id not in matched:
            problems.append(f"rule {rule_id!r} did not match (matched: {', '.join(matched)})")
    shadow = {r.rule_id for r in verdict.shadow}
    for rule_id in expect.shadow_rule_ids:
        if rule_id not in shadow:
            problems.append(
                f"shadow rule {rule_id!r} did not match (shadow matches: "
                f"{', '.join(sorted(shadow)) or 'none'})"
            )
    if expect.target is not None and verdict.cloud_target != expect.target:
        problems.append(f"target is {verdict.cloud_target!r}, expected {expect.target!r}")
    for entity, action in expect.actions.items():
        got = verdict.entity_actions.get(entity)
        if got != action:
            found = entities.get(entity)
            seen = f"found {found.count}" if found else "not found in the prompt"
            problems.append(
                f"{entity} action is {got.value if got else 'none'} ({seen}), expected {action}"
            )
    return CaseResult(case.name, not problems, tuple(problems), verdict)


def run_cases(
    policy: LoadedPolicy, scan: Scan | None, evaluator: PolicyEvaluator | None = None
) -> list[CaseResult]:
    """Every embedded case of ``policy``, in file order."""
    evaluator = evaluator or PolicyEvaluator()
    return [run_case(policy, case, scan, evaluator) for case in policy.cases]
