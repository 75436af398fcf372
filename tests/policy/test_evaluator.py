"""The policy decision: labels, preference, entities found by the real scanner, targets, costs,
shadow rules; every decision names its rules."""

from __future__ import annotations

import textwrap

import pytest
from handoffd.domain import HandoffPreference
from handoffd.errors import PolicyDenied
from handoffd.policy import (
    EntitySummary,
    Outcome,
    PolicyEvaluator,
    RequestFacts,
    policy_from_text,
    summarize,
)
from handoffd.privacy import PiiScanner
from handoffd.schema.cloud import CloudPrices
from handoffd.schema.privacy import Action
from structlog.testing import capture_logs

POLICY = policy_from_text(
    textwrap.dedent(
        """\
        version: 1
        privacy:
          default_action: redact
          actions: {EMAIL: pseudonymize, SECRET: block, IP_ADDRESS: allow}
        labels:
          - {id: labels.health, labels: [health], action: local}
          - {id: labels.legal, labels: [legal], action: deny}
          - {id: labels.trial, labels: [finance], shadow: true}
        cloud:
          allow: [openai, lan]
        budgets:
          max_cost_per_request: {usd: 0.01}
        apps:
          vault:
            privacy: {on_block: deny}
          offline:
            cloud: {id: cloud.offline, allow: []}
        """
    )
)
PRICES = {
    "openai": CloudPrices(input=2.5, output=10.0),
    "lan": CloudPrices(input=0.0, output=0.0),
}


def facts_for(text: str, app: str = "chat", **kw: object) -> RequestFacts:
    config = POLICY.for_app(app).privacy
    entities = summarize(PiiScanner(config).scan(text))
    return RequestFacts(app=app, entities=entities, prompt_tokens=len(text) // 4, **kw)  # type: ignore[arg-type]


def test_clean_request_may_leave_with_targets_in_order() -> None:
    """No label, no finding: the request may be handed off, preferred target first."""
    verdict = PolicyEvaluator().evaluate(POLICY, facts_for("What is the capital of France?"))
    assert verdict.outcome is Outcome.CLOUD
    assert verdict.allowed
    assert verdict.cloud_targets == ("openai", "lan")
    assert verdict.cloud_target == "openai"
    assert verdict.rule_ids == ("cloud.targets",)
    assert verdict.policy_hash == POLICY.hash


def test_never_send_label_keeps_the_request_local() -> None:
    """A label with action local keeps the request on the device and names the rule."""
    verdict = PolicyEvaluator().evaluate(
        POLICY, RequestFacts(app="chat", labels=frozenset({"Health"}))
    )
    assert verdict.outcome is Outcome.LOCAL
    assert verdict.blocked_by == ("labels.health",)
    assert verdict.cloud_targets == ()


def test_deny_label_refuses_and_raises_policy_denied() -> None:
    """A label with action deny refuses the request; raise_if_denied names the rule."""
    verdict = PolicyEvaluator().evaluate(
        POLICY, RequestFacts(app="chat", labels=frozenset({"legal", "health"}))
    )
    assert verdict.outcome is Outcome.DENY
    assert set(verdict.blocked_by) == {"labels.legal", "labels.health"}
    with pytest.raises(PolicyDenied) as info:
        verdict.raise_if_denied()
    assert "labels.legal" in info.value.rule_ids


def test_local_only_preference_is_honoured() -> None:
    """The app's LOCAL_ONLY preference keeps the request local with rule preference.local_only."""
    verdict = PolicyEvaluator().evaluate(
        POLICY, RequestFacts(app="chat", preference=HandoffPreference.LOCAL_ONLY)
    )
    assert verdict.outcome is Outcome.LOCAL
    assert verdict.blocked_by == ("preference.local_only",)


def test_found_entities_get_their_actions() -> None:
    """Entities found by the scanner get the configured actions, each explained by its rule."""
    verdict = PolicyEvaluator().evaluate(
        POLICY, facts_for("mail bob@example.com, card 4111 1111 1111 1111, host 10.0.0.1")
    )
    assert verdict.outcome is Outcome.CLOUD
    assert dict(verdict.entity_actions) == {
        "EMAIL": Action.PSEUDONYMIZE,
        "CREDIT_CARD": Action.REDACT,
        "IP_ADDRESS": Action.ALLOW,
    }
    assert "privacy.email" in verdict.rule_ids
    assert "privacy.credit_card" in verdict.rule_ids


def test_blocked_entity_keeps_request_local_or_denies_per_on_block() -> None:
    """A secret (action block) keeps the request local, or refuses it where on_block is deny."""
    text = "use key sk-abcdefghijklmnopqrstuvwx1234 please"
    local = PolicyEvaluator().evaluate(POLICY, facts_for(text))
    assert local.outcome is Outcome.LOCAL
    assert local.blocked_by == ("privacy.secret.openai",)
    denied = PolicyEvaluator().evaluate(POLICY, facts_for(text, app="vault"))
    assert denied.outcome is Outcome.DENY


def test_no_allowed_target_keeps_request_local() -> None:
    """An app whose cloud section allows nothing stays local, named by the section's id."""
    verdict = PolicyEvaluator().evaluate(POLICY, RequestFacts(app="offline"))
    assert verdict.outcome is Outcome.LOCAL
    assert verdict.blocked_by == ("cloud.offline",)


def test_max_cost_per_request_drops_expensive_targets() -> None:
    """With prices known, a target whose worst case exceeds max_cost_per_request is dropped
    ($2.5/M in + $10/M out: 1000 + 1000 tokens = $0.0125 > $0.01); the free one remains."""
    facts = RequestFacts(app="chat", prompt_tokens=1000, max_tokens=1000)
    verdict = PolicyEvaluator(PRICES).evaluate(POLICY, facts)
    assert verdict.cloud_targets == ("lan",)
    assert "budget.max_cost_per_request" in verdict.rule_ids
    cheap = PolicyEvaluator(PRICES).evaluate(
        POLICY, RequestFacts(app="chat", prompt_tokens=100, max_tokens=100)
    )
    assert cheap.cloud_targets == ("openai", "lan")


def test_unknown_price_fails_closed() -> None:
    """A target with an unknown price is never offered; with no target left the request stays
    local, named budget.price_unknown."""
    prices = {"openai": CloudPrices(input=1.0), "lan": CloudPrices()}
    verdict = PolicyEvaluator(prices).evaluate(POLICY, RequestFacts(app="chat"))
    assert verdict.outcome is Outcome.LOCAL
    assert verdict.blocked_by == ("budget.price_unknown",)


def test_shadow_rule_is_reported_and_logged_not_enforced() -> None:
    """A shadow label rule does not change the outcome, but shows in verdict.shadow and is
    logged as policy.shadow_match."""
    with capture_logs() as logs:
        verdict = PolicyEvaluator().evaluate(
            POLICY, RequestFacts(app="chat", labels=frozenset({"finance"}))
        )
    assert verdict.outcome is Outcome.CLOUD
    assert [r.rule_id for r in verdict.shadow] == ["labels.trial"]
    assert "labels.trial" not in verdict.rule_ids
    assert [e["rule_ids"] for e in logs if e["event"] == "policy.shadow_match"] == [
        ["labels.trial"]
    ]


def test_entity_summary_without_rule_ids_uses_the_builtin_id() -> None:
    """A findings summary that carries no rule ids is explained by the built-in rule id."""
    verdict = PolicyEvaluator().evaluate(
        POLICY, RequestFacts(app="chat", entities={"PHONE": EntitySummary(2)})
    )
    assert verdict.entity_actions["PHONE"] is Action.REDACT
    assert "privacy.phone" in verdict.rule_ids
