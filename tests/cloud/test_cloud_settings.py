"""The cloud: config section: what is accepted, what is refused and why, and cost_usd."""

from __future__ import annotations

from typing import Any

import pytest
from handoffd.schema.cloud import CloudSettings, CloudTargetSettings
from pydantic import ValidationError


def target(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "base_url": "https://api.openai.com/v1/",
        "model": "gpt-4o-mini",
        "api_key_env": "OPENAI_API_KEY",
    }
    base.update(overrides)
    return base


def test_defaults_and_trailing_slash() -> None:
    """A minimal target gets sane defaults; the base URL loses its trailing slash."""
    t = CloudTargetSettings.model_validate(target())
    assert t.base_url == "https://api.openai.com/v1"
    assert t.max_retries == 2
    assert t.timeouts.first_byte_s <= t.timeouts.total_s
    assert t.key_source == "api_key_env OPENAI_API_KEY"


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"base_url": "ftp://example.com/v1"}, "http"),
        ({"base_url": "api.openai.com/v1"}, "http"),
        ({"base_url": "https://user:pw@api.example.com/v1"}, "credentials"),
        ({"base_url": "https://api.example.com/v1?key=1"}, "query"),
        ({"base_url": "http://10.0.0.5:8000/v1"}, "unencrypted.*allow_plain_http"),
        ({"api_key_file": "/k"}, "exactly one.*found: api_key_file, api_key_env"),
        ({"api_key_env": None}, r"exactly one.*\(found: none\)"),
        ({"api_key_env": "1BAD"}, "environment variable name"),
        ({"api_key_env": None, "api_key_credential": "../etc/key"}, "credential name"),
        ({"timeouts": {"first_byte_s": 60, "total_s": 30}}, "must not exceed total_s"),
        ({"price_usd_per_mtok": {"input": 1, "cached_input": 2}}, "cached_input"),
        ({"max_tokens_field": "max_new_tokens"}, "max_tokens"),
        ({"surprise": 1}, "Extra inputs"),
    ],
)
def test_bad_targets_are_refused_with_the_fix(overrides: dict[str, Any], match: str) -> None:
    """Each wrong target setting is refused with a message that says what to change."""
    with pytest.raises(ValidationError, match=match):
        CloudTargetSettings.model_validate(target(**overrides))


def test_plain_http_allowed_for_loopback_or_when_asked() -> None:
    """http:// is fine to loopback (a local vLLM) and to a LAN host with allow_plain_http."""
    for url in ("http://127.0.0.1:8000/v1", "http://localhost:8080/v1", "http://[::1]:8000/v1"):
        assert CloudTargetSettings.model_validate(target(base_url=url)).base_url == url
    lan = target(base_url="http://10.0.0.5:8000/v1", allow_plain_http=True)
    assert CloudTargetSettings.model_validate(lan).allow_plain_http


def test_target_names_and_default_target() -> None:
    """Names are lowercase ids; default_target must name a target; with one target it is the
    default."""
    one = CloudSettings.model_validate({"targets": {"openai": target()}})
    assert one.resolved_default() == "openai"
    two = CloudSettings.model_validate(
        {"targets": {"a": target(), "b": target()}, "default_target": "b"}
    )
    assert two.resolved_default() == "b"
    assert (
        CloudSettings.model_validate({"targets": {"a": target(), "b": target()}}).resolved_default()
        is None
    )
    with pytest.raises(ValidationError, match=r"'c' is not a target.*a, b"):
        CloudSettings.model_validate(
            {"targets": {"a": target(), "b": target()}, "default_target": "c"}
        )
    with pytest.raises(ValidationError, match="lowercase"):
        CloudSettings.model_validate({"targets": {"OpenAI": target()}})
    assert CloudSettings().targets == {}


def test_cost_usd_uses_each_price_and_unknown_is_none() -> None:
    """Cost = uncached prompt x input + cached x cached_input + completion x output, per 1M
    tokens; cached tokens without a cached price cost the full input price; an unknown input
    or output price gives None (refuse, never guess)."""
    priced = CloudTargetSettings.model_validate(
        target(price_usd_per_mtok={"input": 2.0, "output": 8.0, "cached_input": 0.5})
    )
    assert priced.cost_usd(1_000_000, 0) == pytest.approx(2.0)
    assert priced.cost_usd(1000, 500, cached_prompt_tokens=400) == pytest.approx(
        (600 * 2.0 + 400 * 0.5 + 500 * 8.0) / 1e6
    )
    no_cached = CloudTargetSettings.model_validate(
        target(price_usd_per_mtok={"input": 2.0, "output": 8.0})
    )
    assert no_cached.cost_usd(1000, 0, cached_prompt_tokens=1000) == pytest.approx(0.002)
    assert no_cached.prices_known
    unknown = CloudTargetSettings.model_validate(target(price_usd_per_mtok={"input": 2.0}))
    assert unknown.cost_usd(10, 10) is None
    assert not unknown.prices_known
    free = CloudTargetSettings.model_validate(target(price_usd_per_mtok={"input": 0, "output": 0}))
    assert free.cost_usd(10**6, 10**6) == 0.0
