"""Router-eval metrics on small hand-computed examples (RouteLLM's APGR and CPT)."""

from __future__ import annotations

import math

import pytest
from handoffd.routereval.metrics import (
    CurvePoint,
    apgr,
    cpt,
    curve,
    perfect_apgr,
    quality_at,
    random_scores,
    threshold_for_rate,
)

LOCAL = [True, False, False, True]
ORACLE = [True, True, True, True]
GOOD = [0.1, 0.9, 0.5, 0.3]  # wrong items score highest


def test_curve_points_by_hand() -> None:
    """Handing off the highest scores first traces (0, .5) .. (1, 1)."""
    points = curve(GOOD, LOCAL, ORACLE)
    assert [(p.call_rate, p.quality) for p in points] == [
        (0.0, 0.5),
        (0.25, 0.75),
        (0.5, 1.0),
        (0.75, 1.0),
        (1.0, 1.0),
    ]
    assert points[0].threshold == math.inf
    assert points[1].threshold == 0.9


def test_apgr_of_a_perfect_router_equals_the_formula() -> None:
    """Trapezoids: .0625 + .1875 + .25 + .25 = .75 = 1 - (1 - .5) / 2."""
    value = apgr(curve(GOOD, LOCAL, ORACLE), 0.5, 1.0)
    assert value == pytest.approx(0.75)
    assert perfect_apgr(0.5) == pytest.approx(0.75)


def test_apgr_of_the_worst_router() -> None:
    """Handing off the right answers first: PGR 0, 0, 0, .5, 1 -> APGR .25."""
    worst = [1 - s for s in GOOD]
    assert apgr(curve(worst, LOCAL, ORACLE), 0.5, 1.0) == pytest.approx(0.25)


def test_all_ties_is_the_random_line() -> None:
    """Equal scores move together: one straight segment, APGR .5."""
    points = curve([0.3] * 4, LOCAL, ORACLE)
    assert [(p.call_rate, p.quality) for p in points] == [(0.0, 0.5), (1.0, 1.0)]
    assert apgr(points, 0.5, 1.0) == pytest.approx(0.5)


def test_random_router_is_near_one_half() -> None:
    """A seeded random router on many items has APGR close to .5."""
    n = 2000
    local = [i % 3 == 0 for i in range(n)]
    value = apgr(curve(random_scores(n, seed=1), local, [True] * n), 1 / 3, 1.0)
    assert value == pytest.approx(0.5, abs=0.03)


def test_cpt_by_hand() -> None:
    """CPT(50%) is reached at .25 calls; CPT(80%) needs .25 + .6 * .25 = .4 (linear)."""
    points = curve(GOOD, LOCAL, ORACLE)
    assert cpt(points, 0.5, 0.5, 1.0) == pytest.approx(0.25)
    assert cpt(points, 0.8, 0.5, 1.0) == pytest.approx(0.4)
    assert cpt(points, 0.0, 0.5, 1.0) == 0.0


def test_cpt_never_reached_is_nan() -> None:
    """A curve that never reaches the target gives NaN (the cloud is worse than needed)."""
    points = [CurvePoint(0.0, 0.5, math.inf), CurvePoint(1.0, 0.6, 0.0)]
    assert math.isnan(cpt(points, 0.8, 0.5, 1.0))


def test_non_oracle_cloud() -> None:
    """With a cloud that is wrong on item 2, the gap is smaller and the curve can dip."""
    cloud = [True, True, False, True]
    points = curve(GOOD, LOCAL, cloud)
    assert [p.quality for p in points] == [0.5, 0.75, 0.75, 0.75, 0.75]
    assert apgr(points, 0.5, 0.75) == pytest.approx(0.875)


def test_quality_at_interpolates() -> None:
    """Between points the curve is linear."""
    points = curve(GOOD, LOCAL, ORACLE)
    assert quality_at(points, 0.125) == pytest.approx(0.625)
    assert quality_at(points, 1.0) == 1.0


def test_threshold_for_rate() -> None:
    """The threshold for 50% lies halfway between the 2nd and 3rd highest scores."""
    assert threshold_for_rate(GOOD, 0.5) == pytest.approx(0.4)
    assert sum(s >= threshold_for_rate(GOOD, 0.25) for s in GOOD) == 1
    assert sum(s >= threshold_for_rate(GOOD, 0.0) for s in GOOD) == 0
    assert sum(s >= threshold_for_rate(GOOD, 1.0) for s in GOOD) == 4


def test_curve_rejects_mismatched_lengths() -> None:
    """Scores and verdicts must line up."""
    with pytest.raises(ValueError):
        curve([0.1], [True, False], [True, True])
