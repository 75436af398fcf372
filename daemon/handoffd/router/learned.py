"""The learned strategy: a small logistic model of "the local answer would be wrong".

``p_wrong = sigmoid(bias + sum_i w_i * (x_i - mean_i) / scale_i)`` over the features named in
the weights file (:mod:`handoffd.router.features`). The weights are fitted on the TUNE split of
the router eval set by ``handoffctl router fit`` (numpy Newton steps, L2 penalty; see
:mod:`handoffd.routereval.fit`) and shipped as a small JSON file; no sklearn at run time.

The request goes to the cloud when ``p_wrong >= learned.threshold``. The reason names the
features that pushed the score most (their contributions in log-odds).

Rule ids: ``learned.cloud`` and ``learned.local``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from handoffd.domain import Decision, Reason, Route
from handoffd.errors import ConfigError
from handoffd.router.features import PRE_SCORE_FEATURE, WORD_TOKENS_FEATURE
from handoffd.schema.routing import LearnedConfig

STRATEGY = "learned"
FORMAT = "handoffd.router.logistic/1"
SHIPPED_WEIGHTS = "learned_default.json"


@dataclass(frozen=True, slots=True)
class LogisticModel:
    features: tuple[str, ...]
    weights: tuple[float, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    bias: float
    #: free-form facts about the fit (dataset, split, model, date, metrics)
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.features)
        if not (len(self.weights) == len(self.mean) == len(self.scale) == n):
            raise ConfigError(
                f"learned weights: {n} features but {len(self.weights)} weights, "
                f"{len(self.mean)} means and {len(self.scale)} scales; refit the model"
            )
        if any(s <= 0 or not math.isfinite(s) for s in self.scale):
            raise ConfigError("learned weights: every scale must be a positive number; refit")

    @property
    def uses_pre_score(self) -> bool:
        return PRE_SCORE_FEATURE in self.features

    @property
    def uses_word_tokens(self) -> bool:
        return WORD_TOKENS_FEATURE in self.features

    def contributions(self, x: Mapping[str, float]) -> dict[str, float]:
        """Each feature's share of the log-odds (missing features count as their mean)."""
        out: dict[str, float] = {}
        for name, w, m, s in zip(self.features, self.weights, self.mean, self.scale, strict=True):
            out[name] = w * (x.get(name, m) - m) / s
        return out

    def logit(self, x: Mapping[str, float]) -> float:
        return self.bias + sum(self.contributions(x).values())

    def predict(self, x: Mapping[str, float]) -> float:
        """P(the local answer is wrong) for the features ``x``."""
        z = self.logit(x)
        if z >= 0:
            return 1.0 / (1.0 + math.exp(-z))
        e = math.exp(z)
        return e / (1.0 + e)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "features": list(self.features),
            "weights": list(self.weights),
            "mean": list(self.mean),
            "scale": list(self.scale),
            "bias": self.bias,
            "meta": dict(self.meta),
        }

    @classmethod
    def from_json(cls, data: Any, source: str = "weights") -> LogisticModel:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ConfigError(
                f"{source}: not a handoffd learned-router weights file (format {FORMAT!r}); "
                "write one with `handoffctl router fit`"
            )
        try:
            return cls(
                features=tuple(str(f) for f in data["features"]),
                weights=_floats(data["weights"]),
                mean=_floats(data["mean"]),
                scale=_floats(data["scale"]),
                bias=float(data["bias"]),
                meta=dict(data.get("meta", {})),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{source}: invalid weights file ({exc}); refit it") from None

    @classmethod
    def load(cls, path: Path | None = None) -> LogisticModel:
        """Load ``path``, or the weights shipped with handoffd when ``path`` is None."""
        if path is None:
            ref = resources.files("handoffd.router").joinpath("data", SHIPPED_WEIGHTS)
            try:
                text = ref.read_text("utf-8")
            except OSError:
                raise ConfigError(
                    f"the shipped learned-router weights ({SHIPPED_WEIGHTS}) are missing from "
                    "this install: reinstall handoffd, or set routing.learned.weights to a file "
                    "written by `handoffctl router fit`"
                ) from None
            return cls.from_json(json.loads(text), f"<shipped {SHIPPED_WEIGHTS}>")
        try:
            text = path.read_text("utf-8")
        except OSError as exc:
            raise ConfigError(
                f"{path}: cannot read the learned-router weights ({exc.strerror}); "
                "fix routing.learned.weights or remove it to use the shipped weights"
            ) from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}:{exc.lineno}: invalid JSON: {exc.msg}") from None
        return cls.from_json(data, str(path))


def _floats(values: Sequence[Any]) -> tuple[float, ...]:
    out = tuple(float(v) for v in values)
    if not all(math.isfinite(v) for v in out):
        raise ValueError("a value is not a finite number")
    return out


_LABELS = {
    "req.chars_log": "prompt length",
    "req.words_log": "word count",
    "req.lines_log": "line count",
    "req.sentences": "sentence count",
    "req.numbers": "numbers",
    "req.max_number_digits": "size of the largest number",
    "req.multi_digit_numbers": "multi-digit numbers",
    "req.big_numbers": "numbers of 3+ digits",
    "req.operators": "arithmetic operators",
    "req.mul_div": "multiplication/division",
    "req.add_sub": "addition/subtraction",
    "req.word_problem_cues": "word-problem wording",
    "req.code_cues": "code wording",
    "req.code_char_share": "code symbols",
    "req.wh_question": "a who/what/where question",
    "req.proper_nouns": "names",
    "req.long_words_share": "long words",
    "req.prompt_tokens_log": "prompt tokens",
    PRE_SCORE_FEATURE: "the model's own doubt",
    WORD_TOKENS_FEATURE: "rare words (for the local tokenizer)",
}


def learned_decision(
    model: LogisticModel, x: Mapping[str, float], config: LearnedConfig
) -> Decision:
    """CLOUD when ``p_wrong >= threshold``; the reason lists the strongest contributions."""
    p = model.predict(x)
    contributions = model.contributions(x)
    cloud = p >= config.threshold
    ranked = sorted(contributions.items(), key=lambda kv: kv[1], reverse=cloud)
    top = [f"{_LABELS.get(name, name)} ({value:+.1f})" for name, value in ranked[:3]]
    scores = {"learned.p_wrong": p, "learned.threshold": config.threshold}
    if cloud:
        reason = Reason(
            "learned.cloud",
            f"predicted P(local answer wrong) = {p:.2f} >= the handoff threshold "
            f"{config.threshold:.2f}; pushed up most by {', '.join(top)}",
        )
    else:
        reason = Reason(
            "learned.local",
            f"predicted P(local answer wrong) = {p:.2f} < the handoff threshold "
            f"{config.threshold:.2f}; pushed down most by {', '.join(top)}",
        )
    route = Route.CLOUD if cloud else Route.LOCAL
    return Decision(route=route, strategy=STRATEGY, reasons=(reason,), scores=scores)
