"""Per-type actions turn findings into placeholders; pseudonyms come back in the answer."""

from __future__ import annotations

from handoffd.privacy import Action, PiiScanner, PrivacyConfig, PrivacyGuard, Redactor


def guard(**actions: str) -> PrivacyGuard:
    return PrivacyGuard(PrivacyConfig.model_validate({"actions": actions}))


def test_pseudonymize_is_restored_and_redact_is_not() -> None:
    """Pseudonymized values get numbered typed placeholders that the restorer puts back;
    redacted ones get placeholders that stay in the answer."""
    result = guard(EMAIL="pseudonymize", CREDIT_CARD="redact").protect(
        ["mail a@x.com, card 4111 1111 1111 1111, also b@y.org"]
    )
    assert result.texts == ("mail <EMAIL_1>, card <CREDIT_CARD_1>, also <EMAIL_2>",)
    assert dict(result.placeholders) == {"<EMAIL_1>": "a@x.com", "<EMAIL_2>": "b@y.org"}
    answer = "Wrote to <EMAIL_2> and <EMAIL_1> about <CREDIT_CARD_1>."
    assert (
        result.restorer().restore(answer) == "Wrote to b@y.org and a@x.com about <CREDIT_CARD_1>."
    )
    assert dict(result.counts) == {"EMAIL": 2, "CREDIT_CARD": 1}
    assert dict(result.actions) == {"pseudonymize": 2, "redact": 1}
    assert result.rule_ids == ("privacy.credit_card", "privacy.email")
    assert not result.blocked


def test_same_value_same_placeholder_across_messages() -> None:
    """One value gets one placeholder in every message of a request; numbering is per type."""
    result = guard(EMAIL="pseudonymize", PHONE="pseudonymize").protect(
        ["I am a@x.com", "call +44 20 7946 0958 or mail a@x.com", "b@y.org"]
    )
    assert result.texts == ("I am <EMAIL_1>", "call <PHONE_1> or mail <EMAIL_1>", "<EMAIL_2>")


def test_allow_leaves_value_and_block_flags_request() -> None:
    """Allowed values are sent as they are; a blocked type marks the result with its rule ids."""
    result = guard(EMAIL="allow", SECRET="block").protect(["a@x.com key AKIAIOSFODNN7EXAMPLE"])
    assert result.texts == ("a@x.com key <SECRET_1>",)
    assert result.blocked
    assert result.blocked_types == ("SECRET",)
    assert result.blocked_rule_ids == ("privacy.secret.aws",)
    assert result.placeholders == {}
    assert dict(result.actions) == {"allow": 1, "block": 1}


def test_existing_placeholder_names_are_skipped() -> None:
    """A placeholder-looking string the user typed is never reused, so the answer cannot turn
    the user's own text into a restored value."""
    result = guard(EMAIL="pseudonymize").protect(["what is <EMAIL_1>? mail a@x.com"])
    assert result.texts == ("what is <EMAIL_1>? mail <EMAIL_2>",)
    assert dict(result.placeholders) == {"<EMAIL_2>": "a@x.com"}


def test_nothing_found_leaves_texts_alone() -> None:
    """Texts without findings are returned unchanged and the result says nothing changed."""
    result = guard().protect(["hello", "world"])
    assert result.texts == ("hello", "world")
    assert not result.changed
    assert not result.blocked


def test_repr_does_not_carry_values() -> None:
    """The result's repr (what an accidental log line would show) holds no original text."""
    result = guard(EMAIL="pseudonymize").protect(["mail secret.person@x.com"])
    assert "secret.person" not in repr(result)


def test_redactor_resolves_overlapping_input() -> None:
    """Redactor given raw overlapping findings still replaces each character once."""
    scanner = PiiScanner(PrivacyConfig())
    text = "peer ::ffff:192.0.2.1 up"
    raw = scanner.scan(text)
    result = Redactor().redact([text], [raw + raw], {"IP_ADDRESS": Action.REDACT})
    assert result.texts == ("peer <IP_ADDRESS_1> up",)
