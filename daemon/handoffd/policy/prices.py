"""Exact cost arithmetic over the cloud targets' prices (:class:`CloudPrices`, USD per 1M tokens).

Money is counted in integer nano-dollars (1e-9 USD) so that sums in the budget store are exact.
Prices are converted through :class:`decimal.Decimal` from their decimal text and every cost is
rounded up (never under-reserve). An unknown price (``None``) makes a cost uncomputable: the
caller refuses the request (fail closed).
"""

from __future__ import annotations

from decimal import ROUND_CEILING, Decimal
from functools import lru_cache

from handoffd.schema.cloud import CloudPrices

NANOS_PER_USD = 1_000_000_000
_NANOS_PER_TOKEN_AT_ONE_USD_PER_M = Decimal(1000)  # 1 USD per 1M tokens = 1000 nano-USD/token


class UnknownPrice(ValueError):
    """The input or output price of a target is not configured."""


@lru_cache(maxsize=1024)
def _decimal(value: float) -> Decimal:
    """The decimal a price or amount was written as (``0.15``, not 0.1499999...)."""
    return Decimal(str(value))


def usd_to_nanos(usd: float) -> int:
    """Exact for amounts written with up to 9 decimals; rounds up beyond that."""
    value = _decimal(usd) * NANOS_PER_USD
    return int(value.to_integral_value(rounding=ROUND_CEILING))


def nanos_to_usd(nanos: int) -> float:
    return nanos / NANOS_PER_USD


def unknown_prices(prices: CloudPrices | None) -> tuple[str, ...]:
    """Names of the prices a cost needs that are not configured."""
    if prices is None:
        return ("input", "output")
    pairs = (("input", prices.input), ("output", prices.output))
    return tuple(name for name, value in pairs if value is None)


def cost_nanos(
    prices: CloudPrices | None,
    prompt_tokens: int,
    completion_tokens: int,
    cached_prompt_tokens: int = 0,
) -> int:
    """Cost of a call, rounded up to a nano-dollar. ``cached_prompt_tokens`` (part of
    ``prompt_tokens``) are charged at the cached price, or at the input price when it is unknown.
    Raises :class:`UnknownPrice` when the input or output price is not configured."""
    if prices is None or prices.input is None or prices.output is None:
        raise UnknownPrice(f"unknown price: {', '.join(unknown_prices(prices))}")
    prompt = max(prompt_tokens, 0)
    cached = min(max(cached_prompt_tokens, 0), prompt)
    cached_price = prices.cached_input if prices.cached_input is not None else prices.input
    total = (
        (prompt - cached) * _decimal(prices.input)
        + cached * _decimal(cached_price)
        + max(completion_tokens, 0) * _decimal(prices.output)
    ) * _NANOS_PER_TOKEN_AT_ONE_USD_PER_M
    return int(total.to_integral_value(rounding=ROUND_CEILING))


def worst_case_nanos(prices: CloudPrices | None, prompt_tokens: int, max_tokens: int) -> int:
    """Upper bound of a call: every prompt token uncached, ``max_tokens`` generated."""
    return cost_nanos(prices, prompt_tokens, max_tokens)
