"""Overlapping findings merge into one deterministic, fail-safe finding."""

from __future__ import annotations

import itertools

from handoffd.privacy import Action, Finding, PiiScanner, PrivacyConfig, resolve_overlaps


def redact_all(_: str) -> Action:
    return Action.REDACT


def test_union_span_and_most_specific_label() -> None:
    """Partially overlapping findings become one finding over the union of their spans, labelled
    by the most specific rule when actions tie."""
    phone = Finding("PHONE", 0, 10, "privacy.phone")
    card = Finding("CREDIT_CARD", 5, 20, "privacy.credit_card")
    assert resolve_overlaps([phone, card], redact_all) == [
        Finding("CREDIT_CARD", 0, 20, "privacy.credit_card")
    ]


def test_strictest_action_wins_the_label() -> None:
    """An allowed type overlapping a blocked custom keyword takes the blocked label, so the
    keyword cannot leave inside the allowed value."""
    email = Finding("EMAIL", 0, 22, "privacy.email")
    keyword = Finding("PROJECT", 0, 8, "privacy.custom.codenames")
    actions = {"EMAIL": Action.ALLOW, "PROJECT": Action.BLOCK}
    merged = resolve_overlaps([email, keyword], actions.__getitem__)
    assert merged == [Finding("PROJECT", 0, 22, "privacy.custom.codenames")]


def test_order_does_not_matter() -> None:
    """Every input order gives the same result; touching (not overlapping) spans stay apart."""
    findings = [
        Finding("SECRET", 3, 30, "privacy.secret.entropy"),
        Finding("SECRET", 3, 30, "privacy.secret.openai"),
        Finding("PHONE", 25, 40, "privacy.phone"),
        Finding("EMAIL", 40, 50, "privacy.email"),
    ]
    results = {tuple(resolve_overlaps(p, redact_all)) for p in itertools.permutations(findings)}
    assert results == {
        (
            Finding("SECRET", 3, 40, "privacy.secret.openai"),
            Finding("EMAIL", 40, 50, "privacy.email"),
        )
    }


def test_scanner_merges_ipv4_inside_ipv6() -> None:
    """An IPv4 found inside an IPv6 address is reported once, as the whole IPv6 address."""
    text = "peer ::ffff:192.0.2.1 up"
    findings = PiiScanner(PrivacyConfig()).scan(text)
    assert [(f.entity_type, text[f.start : f.end]) for f in findings] == [
        ("IP_ADDRESS", "::ffff:192.0.2.1")
    ]
