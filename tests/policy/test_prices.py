"""Cost arithmetic: exact integer nano-dollars, rounded up, unknown prices refused."""

from __future__ import annotations

import typing

import pytest
from handoffd.domain import HandoffPreference
from handoffd.policy.prices import UnknownPrice, cost_nanos, usd_to_nanos, worst_case_nanos
from handoffd.schema.cloud import CloudPrices
from handoffd.schema.policy import CaseInput


def test_costs_are_exact_in_nano_dollars() -> None:
    """$0.15/$0.60 per 1M with cached input at $0.075: 500 uncached + 500 cached + 1000 out
    is exactly 712,500 nano-dollars (no float drift)."""
    prices = CloudPrices(input=0.15, output=0.60, cached_input=0.075)
    assert cost_nanos(prices, 1000, 1000, cached_prompt_tokens=500) == 712_500
    assert sum(cost_nanos(prices, 1, 0) for _ in range(10)) == cost_nanos(prices, 10, 0)


def test_fractions_of_a_nano_dollar_round_up() -> None:
    """A price that gives a fraction of a nano-dollar is rounded up, never down."""
    prices = CloudPrices(input=0.0001, output=0.0)
    assert cost_nanos(prices, 1, 0) == 1
    assert usd_to_nanos(0.0000000001) == 1


def test_cached_tokens_without_a_cached_price_cost_the_input_price() -> None:
    """Without a cached_input price, cached tokens are charged at the input price (safe)."""
    prices = CloudPrices(input=1.0, output=2.0)
    assert cost_nanos(prices, 1000, 0, cached_prompt_tokens=1000) == cost_nanos(prices, 1000, 0)


def test_worst_case_is_all_prompt_uncached_plus_max_tokens() -> None:
    """The reservation amount is prompt tokens at the input price plus max_tokens at output."""
    prices = CloudPrices(input=2.5, output=10.0)
    assert worst_case_nanos(prices, 1000, 500) == 2500 * 1000 + 10_000 * 500


@pytest.mark.parametrize("prices", [None, CloudPrices(), CloudPrices(input=1.0)])
def test_unknown_prices_raise(prices: CloudPrices | None) -> None:
    """A missing input or output price makes the cost uncomputable (callers fail closed)."""
    with pytest.raises(UnknownPrice):
        cost_nanos(prices, 1, 1)


def test_case_preference_matches_the_domain_enum() -> None:
    """The policy tests' preference values are exactly HandoffPreference's values."""
    allowed = set(typing.get_args(CaseInput.model_fields["preference"].annotation))
    assert allowed == {p.value for p in HandoffPreference}
