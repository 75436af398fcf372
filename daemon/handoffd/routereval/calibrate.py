"""Calibrate a strategy's threshold on the TUNE split and print it as a policy snippet."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from handoffd.routereval.dataset import EvalItem, select
from handoffd.routereval.evaluate import config_value, fit_learned
from handoffd.routereval.metrics import threshold_for_rate
from handoffd.routereval.results import LocalResult
from handoffd.routereval.scoring import score_strategies
from handoffd.schema.routing import CascadeConfig

CALIBRATABLE: tuple[str, ...] = (
    "learned",
    "learned+pre_score",
    "pre_score",
    "cascade.mean",
    "cascade.min",
    "cascade.quantile",
    "cascade.entropy",
    "rules.prompt_tokens",
)


@dataclass(frozen=True, slots=True)
class Calibration:
    strategy: str
    target_rate: float
    #: the share of tune items the threshold hands off (ties move together)
    tune_rate: float
    n_tune: int
    config_key: str
    #: the value to write in the policy (None: no threshold reaches the target)
    value: float | None
    cascade: CascadeConfig
    model: str


def calibrate(
    items: Sequence[EvalItem],
    results: Mapping[str, LocalResult],
    *,
    strategy: str,
    target_rate: float,
    cascade: CascadeConfig,
    model: str,
) -> Calibration:
    """The threshold of ``strategy`` that hands off ``target_rate`` of the tune split."""
    if strategy not in CALIBRATABLE:
        raise ValueError(f"cannot calibrate {strategy!r}; choose one of {', '.join(CALIBRATABLE)}")
    tune = select(items, "tune")
    scored = {
        s.name: s
        for s in score_strategies(
            tune,
            results,
            cascade=cascade,
            learned=fit_learned(items, results, pre_score=False, model=model),
            learned_pre_score=fit_learned(items, results, pre_score=True, model=model),
        )
    }[strategy]
    threshold = threshold_for_rate(scored.scores, target_rate)
    rate = sum(1 for s in scored.scores if s >= threshold) / len(scored.scores)
    return Calibration(
        strategy=strategy,
        target_rate=target_rate,
        tune_rate=rate,
        n_tune=len(tune),
        config_key=scored.config_key,
        value=config_value(scored, threshold),
        cascade=cascade,
        model=model,
    )


def snippet(cal: Calibration) -> str:
    """The ``routing:`` section (YAML) that applies the calibration."""
    section, key = cal.config_key.split(".", 1)
    family = "rules" if section == "rules" else section
    strategies = "[rules]" if family == "rules" else f"[rules, {family}]"
    lines = [
        f"# {cal.strategy}: hands off {cal.tune_rate:.1%} of the {cal.n_tune} tune items "
        f"(target {cal.target_rate:.1%}); local model {cal.model}",
        "routing:",
        f"  strategies: {strategies}",
        f"  {section}:",
    ]
    if section == "cascade":
        lines.append(f"    statistic: {cal.strategy.split('.', 1)[1]}")
        if cal.strategy == "cascade.quantile":
            lines.append(f"    quantile: {cal.cascade.quantile:g}")
        lines.append(f"    hold_back_tokens: {cal.cascade.hold_back_tokens}")
    if cal.value is None:
        lines.append(f"    # no threshold hands off about {cal.target_rate:.1%}")
        return "\n".join(lines) + "\n"
    shown = str(int(cal.value)) if key == "max_local_prompt_tokens" else f"{cal.value:.4g}"
    lines.append(f"    {key}: {shown}")
    if cal.strategy == "learned+pre_score":
        lines.append("    weights: learned_pre_score.json  # `handoffctl router fit --pre-score`")
    elif cal.strategy == "learned":
        lines.append(
            "    # for the weights fitted on this tune split (`handoffctl router fit`; the "
            "shipped ones for the default model)"
        )
    return "\n".join(lines) + "\n"
