"""Router evaluation: fit on TUNE, calibrate on TUNE, measure on TEST.

:func:`evaluate` turns cached local results into an :class:`EvalReport`: each strategy's
call-rate/quality curve on the test split, APGR, CPT(50%), CPT(80%), and the operating point a
threshold calibrated on the tune split (for ``target_rate`` of handoffs) reaches on test.
The cloud is an oracle (always right) unless per-item cloud verdicts are given.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from handoffd.router.learned import LogisticModel
from handoffd.routereval.dataset import EvalItem, dataset_digest, select
from handoffd.routereval.fit import fit_router
from handoffd.routereval.metrics import (
    CurvePoint,
    apgr,
    cpt,
    curve,
    perfect_apgr,
    pgr,
    quality_at,
    threshold_for_rate,
)
from handoffd.routereval.results import LocalResult
from handoffd.routereval.scoring import StrategyScores, score_strategies
from handoffd.schema.routing import CascadeConfig

#: rows that are yardsticks, not routers one can configure
REFERENCES = ("random", "oracle", "category_prior")


@dataclass(frozen=True, slots=True)
class OperatingPoint:
    """A threshold chosen on TUNE and what it does on TEST."""

    threshold: float
    config_value: float | None
    tune_rate: float
    test_rate: float
    test_quality: float
    test_pgr: float


@dataclass(frozen=True, slots=True)
class StrategyReport:
    name: str
    points: tuple[CurvePoint, ...]
    apgr: float
    cpt50: float
    cpt80: float
    calibrated: OperatingPoint | None
    config_key: str


@dataclass(frozen=True, slots=True)
class EvalReport:
    model: str
    cloud: str
    n_tune: int
    n_test: int
    local_accuracy: float
    cloud_accuracy: float
    perfect_apgr: float
    target_rate: float
    category_accuracy: dict[str, tuple[int, float]]
    strategies: tuple[StrategyReport, ...]
    learned: LogisticModel | None
    #: test items on which the model called the handoff when offered it
    handoff_calls: int = 0
    #: test accuracy of the answers given with the handoff offered (calls count as wrong)
    instructed_accuracy: float = 0.0

    def best(self) -> StrategyReport:
        candidates = [s for s in self.strategies if s.name not in REFERENCES]
        return max(candidates, key=lambda s: s.apgr)


def config_value(scores: StrategyScores, threshold: float) -> float | None:
    """The config value that realises ``threshold`` on this strategy's score."""
    if not math.isfinite(threshold) or not scores.config_key:
        return None
    if scores.config_key == "rules.max_local_prompt_tokens":
        return float(math.floor(threshold))
    if scores.negated:
        return min(0.0, -threshold)
    return min(1.0, max(0.0, threshold))


def _operating_point(
    tune: StrategyScores,
    test: StrategyScores,
    test_cloud: Sequence[bool],
    target_rate: float,
    q_weak: float,
    q_strong: float,
) -> OperatingPoint:
    threshold = threshold_for_rate(tune.scores, target_rate)
    tune_rate = sum(1 for s in tune.scores if s >= threshold) / len(tune.scores)
    routed = [s >= threshold for s in test.scores]
    quality = sum(
        (c if r else ok) for r, c, ok in zip(routed, test_cloud, test.local_ok, strict=True)
    ) / len(routed)
    return OperatingPoint(
        threshold=threshold,
        config_value=config_value(tune, threshold),
        tune_rate=tune_rate,
        test_rate=sum(routed) / len(routed),
        test_quality=quality,
        test_pgr=pgr(quality, q_weak, q_strong),
    )


def fit_learned(
    items: Sequence[EvalItem], results: Mapping[str, LocalResult], *, pre_score: bool, model: str
) -> LogisticModel:
    tune = select(items, "tune")
    meta = {"model": model, "split": "tune", "dataset": dataset_digest(items)}
    return fit_router(tune, results, pre_score=pre_score, meta=meta)


def evaluate(
    items: Sequence[EvalItem],
    results: Mapping[str, LocalResult],
    *,
    cascade: CascadeConfig,
    model: str,
    target_rate: float = 0.2,
    cloud_ok: Mapping[str, bool] | None = None,
    cloud_label: str = "oracle (always right)",
) -> EvalReport:
    tune_items, test_items = select(items, "tune"), select(items, "test")
    if not tune_items or not test_items:
        raise ValueError("the dataset needs items in both the tune and the test split")
    learned = fit_learned(items, results, pre_score=False, model=model)
    learned_pre = fit_learned(items, results, pre_score=True, model=model)

    def cloud(split: Sequence[EvalItem]) -> list[bool]:
        return [True if cloud_ok is None else bool(cloud_ok.get(i.id, False)) for i in split]

    test_cloud = cloud(test_items)
    q_weak = sum(results[i.id].correct for i in test_items) / len(test_items)
    q_strong = sum(test_cloud) / len(test_cloud)
    errors: dict[str, list[bool]] = defaultdict(list)
    for i in tune_items:
        errors[i.category].append(not results[i.id].correct)
    category_error = {k: sum(v) / len(v) for k, v in errors.items()}
    on_test = score_strategies(
        test_items,
        results,
        cascade=cascade,
        learned=learned,
        learned_pre_score=learned_pre,
        category_error=category_error,
    )
    on_tune = {
        s.name: s
        for s in score_strategies(
            tune_items,
            results,
            cascade=cascade,
            learned=learned,
            learned_pre_score=learned_pre,
            category_error=category_error,
        )
    }
    reports = []
    for s in on_test:
        points = tuple(curve(s.scores, s.local_ok, test_cloud))
        tune_scores = on_tune[s.name]
        calibrated = None
        if s.name not in REFERENCES and len(set(tune_scores.scores)) > 1:
            calibrated = _operating_point(tune_scores, s, test_cloud, target_rate, q_weak, q_strong)
        reports.append(
            StrategyReport(
                name=s.name,
                points=points,
                apgr=apgr(points, q_weak, q_strong),
                cpt50=cpt(points, 0.5, q_weak, q_strong),
                cpt80=cpt(points, 0.8, q_weak, q_strong),
                calibrated=calibrated,
                config_key=s.config_key,
            )
        )
    per_category: dict[str, list[bool]] = defaultdict(list)
    for i in test_items:
        per_category[i.category].append(results[i.id].correct)
    return EvalReport(
        model=model,
        cloud=cloud_label,
        n_tune=len(tune_items),
        n_test=len(test_items),
        local_accuracy=q_weak,
        cloud_accuracy=q_strong,
        perfect_apgr=(
            perfect_apgr(q_weak)
            if cloud_ok is None
            else _perfect(test_items, results, test_cloud, q_weak, q_strong)
        ),
        target_rate=target_rate,
        category_accuracy={k: (len(v), sum(v) / len(v)) for k, v in sorted(per_category.items())},
        strategies=tuple(reports),
        learned=learned,
        handoff_calls=sum(results[i.id].handoff_called for i in test_items),
        instructed_accuracy=sum(results[i.id].handoff_answer_correct for i in test_items)
        / len(test_items),
    )


def _perfect(
    items: Sequence[EvalItem],
    results: Mapping[str, LocalResult],
    cloud_ok: Sequence[bool],
    q_weak: float,
    q_strong: float,
) -> float:
    """APGR of a perfect router when the cloud is not an oracle: hand off first the items only
    the cloud gets right."""
    local = [results[i.id].correct for i in items]
    gain = [float(c) - float(ok) for c, ok in zip(cloud_ok, local, strict=True)]
    return apgr(curve(gain, local, cloud_ok), q_weak, q_strong)


def quality_table(report: EvalReport, rates: Sequence[float]) -> dict[str, list[float]]:
    """Each strategy's test quality at the given call rates."""
    return {s.name: [quality_at(s.points, r) for r in rates] for s in report.strategies}
