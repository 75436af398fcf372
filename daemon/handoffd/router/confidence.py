"""Confidence statistics over the tokens of a local answer (shared by the cascade and the eval).

Every statistic is "higher is more confident" and lives on a log-probability scale (<= 0):

- ``quantile``: the q-quantile of the chosen tokens' log-probabilities (linear interpolation);
- ``min``: the lowest log-probability;
- ``mean``: the mean log-probability;
- ``entropy``: minus the mean entropy (nats) of the next-token distributions.

An answer with no tokens has confidence ``-inf``: an empty answer is never trusted.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from handoffd.schema.routing import ConfidenceStatistic


def quantile(values: Sequence[float], q: float) -> float:
    """The q-quantile with linear interpolation between order statistics (numpy's default)."""
    if not values:
        return -math.inf
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    frac = position - low
    return ordered[low] + (ordered[high] - ordered[low]) * frac


def confidence(
    logprobs: Sequence[float],
    entropies: Sequence[float],
    statistic: ConfidenceStatistic,
    q: float = 0.1,
) -> float:
    """The confidence of an answer (or of its first tokens) under ``statistic``."""
    if not logprobs:
        return -math.inf
    if statistic == "quantile":
        return quantile(logprobs, q)
    if statistic == "min":
        return min(logprobs)
    if statistic == "mean":
        return sum(logprobs) / len(logprobs)
    if not entropies:
        return -math.inf
    return -sum(entropies) / len(entropies)
