"""Score every eval item under every strategy, from the cached local results.

Each :class:`StrategyScores` says, per item, how strongly the strategy wants the cloud (higher:
more) and whether the local answer it would serve is right. Most strategies serve the plain
local answer; ``model_handoff`` and its combination serve the answer the model gave when it was
offered the handoff (the instruction changes the prompt, hence the answer).

Strategies (names as reported):

- ``random``: a seeded uniform score (the baseline every router must beat);
- ``rules.prompt_tokens``: the prompt's length (sweeps ``rules.max_local_prompt_tokens``);
- ``pre_score``: P(No) of the self-assessment;
- ``cascade.<statistic>``: minus the confidence of the first K tokens (K, quantile from the
  config), one per statistic;
- ``learned``: the logistic model fitted on TUNE over request features and the tokenizer's
  rare-word feature (what ships as the default weights); ``learned+pre_score`` adds the
  model's self-assessment as a feature (one more forward pass per request);
- ``model_handoff``: 1 when the model called the handoff, else 0 (a single operating point);
- ``learned+model_handoff``: the model's call first, then the learned score;
- ``category_prior``: the local error rate of the item's category on TUNE (a reference, not a
  router: it reads the dataset's category labels; it shows how far knowing only the *kind* of
  request can go);
- ``oracle``: 1 when the local answer is wrong (a perfect router; the upper bound).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from handoffd.router.confidence import confidence
from handoffd.router.learned import LogisticModel
from handoffd.router.prescore import p_cannot
from handoffd.routereval.dataset import EvalItem
from handoffd.routereval.fit import item_features
from handoffd.routereval.metrics import random_scores
from handoffd.routereval.results import LocalResult
from handoffd.schema.routing import CascadeConfig, ConfidenceStatistic

STATISTICS: tuple[ConfidenceStatistic, ...] = ("mean", "min", "quantile", "entropy")


@dataclass(frozen=True, slots=True)
class StrategyScores:
    name: str
    scores: tuple[float, ...]
    local_ok: tuple[bool, ...]
    #: what a threshold on this score means, for the calibration snippet
    config_key: str = ""
    #: the score is minus the config value (the cascade: lower confidence hands off)
    negated: bool = False


def _cascade_score(
    result: LocalResult, config: CascadeConfig, statistic: ConfidenceStatistic
) -> float:
    k = config.hold_back_tokens
    conf = confidence(result.logprobs[:k], result.entropies[:k], statistic, config.quantile)
    return -max(conf, -1e6)


def _predict(
    model: LogisticModel, items: Sequence[EvalItem], res: Sequence[LocalResult]
) -> tuple[float, ...]:
    return tuple(
        model.predict(item_features(i, r, pre_score=model.uses_pre_score))
        for i, r in zip(items, res, strict=True)
    )


def score_strategies(
    items: Sequence[EvalItem],
    results: Mapping[str, LocalResult],
    *,
    cascade: CascadeConfig,
    learned: LogisticModel | None = None,
    learned_pre_score: LogisticModel | None = None,
    category_error: Mapping[str, float] | None = None,
    seed: int = 0,
) -> list[StrategyScores]:
    """Every strategy's scores over ``items`` (usually the TEST split)."""
    res = [results[i.id] for i in items]
    plain = tuple(r.correct for r in res)
    out = [
        StrategyScores("random", tuple(random_scores(len(items), seed)), plain),
        StrategyScores(
            "rules.prompt_tokens",
            tuple(float(r.prompt_tokens) for r in res),
            plain,
            "rules.max_local_prompt_tokens",
        ),
        StrategyScores(
            "pre_score",
            tuple(p_cannot(r.pre_score) if r.pre_score else 0.5 for r in res),
            plain,
            "pre_score.threshold",
        ),
    ]
    for statistic in STATISTICS:
        out.append(
            StrategyScores(
                f"cascade.{statistic}",
                tuple(_cascade_score(r, cascade, statistic) for r in res),
                plain,
                "cascade.threshold",
                negated=True,
            )
        )
    learned_scores: tuple[float, ...] | None = None
    if learned is not None:
        learned_scores = _predict(learned, items, res)
        out.append(StrategyScores("learned", learned_scores, plain, "learned.threshold"))
    if learned_pre_score is not None:
        out.append(
            StrategyScores(
                "learned+pre_score",
                _predict(learned_pre_score, items, res),
                plain,
                "learned.threshold",
            )
        )
    instructed = tuple(r.handoff_answer_correct for r in res)
    called = tuple(1.0 if r.handoff_called else 0.0 for r in res)
    out.append(StrategyScores("model_handoff", called, instructed))
    if learned_scores is not None:
        combined = tuple(c + s for c, s in zip(called, learned_scores, strict=True))
        out.append(StrategyScores("learned+model_handoff", combined, instructed))
    if category_error is not None:
        prior = tuple(category_error.get(i.category, 0.5) for i in items)
        out.append(StrategyScores("category_prior", prior, plain))
    out.append(StrategyScores("oracle", tuple(0.0 if ok else 1.0 for ok in plain), plain))
    return out
