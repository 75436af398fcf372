"""Call-rate / quality curves and the RouteLLM metrics (APGR, CPT).

A router scores each item (higher: more in need of the cloud). Sweeping the threshold from +inf
down to -inf hands off a growing share of items, which traces the curve of
``quality(call_rate)``; items with equal scores move together (between two points the curve is
linear, which is what a random tie-break gives on average).

From RouteLLM (Ong et al., 2024, "RouteLLM: Learning to Route LLMs with Preference Data"):

- PGR (performance gap recovered) at a call rate c:
  ``(quality(c) - q_weak) / (q_strong - q_weak)``;
- APGR: the area under PGR(c) for c from 0 to 1 (trapezoids over the curve's points);
- CPT(x%): the smallest call rate whose PGR reaches x% (linear between points).

A random router's expected curve is the straight line from ``(0, q_weak)`` to ``(1, q_strong)``
(APGR 0.5). With an oracle cloud (``q_strong = 1``), a perfect router hands off exactly the
items the local model gets wrong: its APGR is ``1 - (1 - q_weak) / 2``, which we report next to
every APGR since it bounds what any router can reach on that set.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CurvePoint:
    call_rate: float
    quality: float
    #: hand off when score >= threshold (+inf: nothing handed off)
    threshold: float


def curve(
    scores: Sequence[float], local_ok: Sequence[bool], cloud_ok: Sequence[bool]
) -> list[CurvePoint]:
    """The call-rate/quality points of a score-threshold sweep, from 0% to 100% calls."""
    n = len(scores)
    if n == 0 or not (len(local_ok) == len(cloud_ok) == n):
        raise ValueError("scores, local_ok and cloud_ok must be non-empty and of equal length")
    order = sorted(range(n), key=lambda i: scores[i], reverse=True)
    correct = sum(local_ok)
    points = [CurvePoint(0.0, correct / n, math.inf)]
    k = 0
    while k < n:
        threshold = scores[order[k]]
        while k < n and scores[order[k]] == threshold:
            i = order[k]
            correct += int(cloud_ok[i]) - int(local_ok[i])
            k += 1
        points.append(CurvePoint(k / n, correct / n, threshold))
    return points


def pgr(quality: float, q_weak: float, q_strong: float) -> float:
    gap = q_strong - q_weak
    return (quality - q_weak) / gap if gap > 0 else 0.0


def apgr(points: Sequence[CurvePoint], q_weak: float, q_strong: float) -> float:
    """Area under PGR(call rate) over [0, 1], trapezoids between the curve's points."""
    area = 0.0
    for a, b in itertools.pairwise(points):
        width = b.call_rate - a.call_rate
        area += width * (pgr(a.quality, q_weak, q_strong) + pgr(b.quality, q_weak, q_strong)) / 2
    return area


def cpt(points: Sequence[CurvePoint], target_pgr: float, q_weak: float, q_strong: float) -> float:
    """The smallest call rate at which PGR reaches ``target_pgr`` (NaN if never)."""
    goal = q_weak + target_pgr * (q_strong - q_weak)
    eps = 1e-12
    if points[0].quality >= goal - eps:
        return points[0].call_rate
    for a, b in itertools.pairwise(points):
        if b.quality >= goal - eps:
            if b.quality == a.quality:
                return b.call_rate
            frac = (goal - a.quality) / (b.quality - a.quality)
            return a.call_rate + max(0.0, min(1.0, frac)) * (b.call_rate - a.call_rate)
    return math.nan


def quality_at(points: Sequence[CurvePoint], call_rate: float) -> float:
    """The curve's quality at ``call_rate`` (linear between points)."""
    for a, b in itertools.pairwise(points):
        if a.call_rate <= call_rate <= b.call_rate:
            if b.call_rate == a.call_rate:
                return max(a.quality, b.quality)
            frac = (call_rate - a.call_rate) / (b.call_rate - a.call_rate)
            return a.quality + frac * (b.quality - a.quality)
    return points[-1].quality


def perfect_apgr(q_weak: float) -> float:
    """APGR of a perfect router against an oracle cloud: ``1 - (1 - q_weak) / 2``."""
    return 1.0 - (1.0 - q_weak) / 2.0


def random_scores(n: int, seed: int = 0) -> list[float]:
    rng = random.Random(seed)  # noqa: S311 - a reproducible baseline
    return [rng.random() for _ in range(n)]


def threshold_for_rate(scores: Sequence[float], target_rate: float) -> float:
    """A threshold that hands off the share of ``scores`` closest to ``target_rate`` (hand off
    when score >= threshold). It lies halfway to the next lower score, so that unseen scores
    near the boundary are treated alike; ties move together, so the share may differ."""
    if not scores:
        raise ValueError("no scores")
    distinct = sorted(set(scores), reverse=True)
    n = len(scores)
    best_index = -1
    best_gap = abs(target_rate)
    for index, t in enumerate(distinct):
        gap = abs(sum(1 for s in scores if s >= t) / n - target_rate)
        if gap < best_gap - 1e-12:
            best_index, best_gap = index, gap
    if best_index < 0:
        return distinct[0] + max(1e-6, abs(distinct[0]) * 1e-6)
    if best_index + 1 < len(distinct):
        return (distinct[best_index] + distinct[best_index + 1]) / 2
    return distinct[best_index]
