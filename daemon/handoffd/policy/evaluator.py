"""The policy decision for one request: may it leave the device, how, and to which target.

Pure and fast (no I/O, no awaits; tens of microseconds): the pipeline runs the privacy scanner,
summarises its findings as :class:`RequestFacts` and calls :meth:`PolicyEvaluator.evaluate`.
The checks, each adding reasons with rule ids:

1. **labels** — a never-send rule naming one of the request's labels keeps it on the device
   (``action: local``) or refuses it (``action: deny``);
2. **preference** — ``local_only`` keeps it on the device (``preference.local_only``);
3. **entities** — each found entity type gets its action from the privacy section: ``block``
   keeps the request on the device or refuses it (``privacy.on_block``), ``redact`` and
   ``pseudonymize`` are applied by the pipeline before sending (``verdict.entity_actions`` has
   the action of every found type, ready for the privacy Redactor);
4. **targets** — the allowed cloud targets in order; none → stays local (the ``cloud`` section's
   id). When prices are known to the evaluator, a target with an unknown price is dropped
   (``budget.price_unknown``, fail closed) and so is one whose worst case (prompt + max_tokens)
   costs more than ``max_cost_per_request``.

The strictest outcome wins (deny > local > cloud). Shadow rules are evaluated the same way but
only reported in ``verdict.shadow`` and logged as ``policy.shadow_match``.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from handoffd.domain import HandoffPreference, Reason
from handoffd.logsetup import get_logger
from handoffd.policy.app_policy import AppPolicy, LoadedPolicy
from handoffd.policy.prices import UnknownPrice, nanos_to_usd, usd_to_nanos, worst_case_nanos
from handoffd.policy.verdict import Outcome, PolicyVerdict, RequestFacts
from handoffd.schema.cloud import CloudPrices
from handoffd.schema.policy import LabelAction
from handoffd.schema.privacy import Action, builtin_rule_id

_log = get_logger(__name__)

PREFERENCE_RULE_ID = "preference.local_only"
PRICE_UNKNOWN_RULE_ID = "budget.price_unknown"

_RANK = {Outcome.CLOUD: 0, Outcome.LOCAL: 1, Outcome.DENY: 2}


class _Tally:
    """The verdict being built: reasons, shadow matches and the strictest outcome so far."""

    __slots__ = ("actions", "blocked", "outcome", "reasons", "shadow")

    def __init__(self) -> None:
        self.outcome = Outcome.CLOUD
        self.reasons: list[Reason] = []
        self.shadow: list[Reason] = []
        self.blocked: list[str] = []
        self.actions: dict[str, Action] = {}

    def block(self, reason: Reason, outcome: Outcome) -> None:
        self.reasons.append(reason)
        self.blocked.append(reason.rule_id)
        if _RANK[outcome] > _RANK[self.outcome]:
            self.outcome = outcome


class PolicyEvaluator:
    """Evaluates requests against a policy.

    ``prices``: the cloud targets' prices (from the daemon config), used to drop targets with an
    unknown price or a worst case above ``max_cost_per_request``. ``None`` skips the cost checks
    (``handoffctl policy check`` without a daemon config); the budget ledger still refuses an
    unknown price at reservation. ``log_shadow``: log shadow matches (off for offline checks).
    """

    def __init__(
        self, prices: Mapping[str, CloudPrices] | None = None, *, log_shadow: bool = True
    ) -> None:
        self._prices = dict(prices) if prices is not None else None
        self._log_shadow = log_shadow

    def evaluate(self, policy: LoadedPolicy | AppPolicy, facts: RequestFacts) -> PolicyVerdict:
        app = policy.for_app(facts.app) if isinstance(policy, LoadedPolicy) else policy
        tally = _Tally()
        if facts.labels and app.label_index:
            _check_labels(app, facts, tally)
        if facts.preference is HandoffPreference.LOCAL_ONLY:
            tally.block(
                Reason(PREFERENCE_RULE_ID, "the app asked to stay on the device"), Outcome.LOCAL
            )
        if facts.entities and app.privacy.enabled:
            _check_entities(app, facts, tally)
        targets = app.cloud.allow
        if not targets:
            tally.block(
                Reason(app.cloud.id, f"no cloud target is allowed for app {facts.app!r}"),
                Outcome.LOCAL,
            )
        elif self._prices is not None:
            targets = _affordable(self._prices, app, facts, targets, tally)
        if tally.outcome is Outcome.CLOUD:
            tally.reasons.append(Reason(app.cloud.id, f"may hand off to {', '.join(targets)}"))
        else:
            targets = ()
        if tally.shadow and self._log_shadow:
            _log.info(
                "policy.shadow_match",
                app=facts.app,
                rule_ids=[r.rule_id for r in tally.shadow],
                outcome=tally.outcome.value,
            )
        return PolicyVerdict(
            outcome=tally.outcome,
            app=facts.app,
            policy_hash=app.policy_hash,
            cloud_targets=targets,
            entity_actions=MappingProxyType(tally.actions),
            reasons=tuple(tally.reasons),
            shadow=tuple(tally.shadow),
            blocked_by=tuple(dict.fromkeys(tally.blocked)),
        )


def _check_labels(app: AppPolicy, facts: RequestFacts, tally: _Tally) -> None:
    seen: set[str] = set()
    for label in sorted(facts.labels):
        for rule in app.label_index.get(label.casefold(), ()):
            if rule.id in seen:
                continue
            seen.add(rule.id)
            deny = rule.action is LabelAction.DENY
            what = "are refused" if deny else "never leave the device"
            reason = Reason(rule.id, f"requests labelled {label!r} {what}")
            if rule.shadow:
                tally.shadow.append(reason)
            else:
                tally.block(reason, Outcome.DENY if deny else Outcome.LOCAL)


_PAST = {Action.PSEUDONYMIZE: "pseudonymized", Action.REDACT: "redacted"}


def _check_entities(app: AppPolicy, facts: RequestFacts, tally: _Tally) -> None:
    on_block = Outcome.DENY if app.privacy.on_block == "deny" else Outcome.LOCAL
    for entity, summary in sorted(facts.entities.items()):
        if summary.count <= 0:
            continue
        action = app.action_for(entity)
        rule_ids = summary.rule_ids or (builtin_rule_id(entity),)
        tally.actions[entity] = action
        if action is Action.BLOCK:
            for rule_id in dict.fromkeys(rule_ids):
                message = f"{summary.count} x {entity} found, which may not leave the device"
                tally.block(Reason(rule_id, message), on_block)
        elif action is not Action.ALLOW:
            message = f"{summary.count} x {entity} will be {_PAST[action]}"
            tally.reasons.append(Reason(rule_ids[0], message))


def _affordable(
    prices: Mapping[str, CloudPrices],
    app: AppPolicy,
    facts: RequestFacts,
    targets: tuple[str, ...],
    tally: _Tally,
) -> tuple[str, ...]:
    """The targets whose price is known and whose worst case fits max_cost_per_request."""
    limit = app.max_cost_per_request
    limit_nanos = usd_to_nanos(limit.usd) if limit is not None else None
    kept: list[str] = []
    dropped: list[Reason] = []
    for target in targets:
        try:
            worst = worst_case_nanos(prices.get(target), facts.prompt_tokens, facts.max_tokens)
        except UnknownPrice as exc:
            dropped.append(
                Reason(
                    PRICE_UNKNOWN_RULE_ID,
                    f"target {target!r} has an {exc}: configure its price_usd_per_mtok",
                )
            )
            continue
        if limit is not None and limit_nanos is not None and worst > limit_nanos:
            reason = Reason(
                limit.id,
                f"worst case on {target!r} is ${nanos_to_usd(worst):.6f}, above the "
                f"${limit.usd} allowed per request",
            )
            if not limit.shadow:
                dropped.append(reason)
                continue
            tally.shadow.append(reason)
        kept.append(target)
    if kept:
        tally.reasons.extend(dropped)
    else:
        for reason in dropped:
            tally.block(reason, Outcome.LOCAL)
    return tuple(kept)
