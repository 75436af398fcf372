"""Fit the learned router's logistic model on the TUNE split (numpy only).

Target: 1 when the local answer is wrong. Features are standardised with the tune split's mean
and standard deviation; the L2 penalty (bias not penalised) is chosen by 5-fold cross-validated
log-loss on the tune split from a small grid; the fit itself is Newton's method (IRLS), which
converges in a handful of steps at this size.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from handoffd.router.features import (
    PRE_SCORE_FEATURE,
    REQUEST_FEATURES,
    WORD_TOKENS_FEATURE,
    all_features,
)
from handoffd.router.learned import LogisticModel
from handoffd.router.prescore import p_cannot
from handoffd.routereval.dataset import EvalItem
from handoffd.routereval.results import LocalResult

L2_GRID: tuple[float, ...] = (0.3, 1.0, 3.0, 10.0, 30.0)
Matrix = npt.NDArray[np.float64]


def item_features(item: EvalItem, result: LocalResult, *, pre_score: bool) -> dict[str, float]:
    """The features the router would compute at run time for this item."""
    p = p_cannot(result.pre_score) if pre_score and result.pre_score else None
    if pre_score and p is None:
        p = 0.5
    return dict(
        all_features(
            item.question, result.prompt_tokens, p_cannot=p, word_tokens=result.max_word_tokens
        )
    )


def feature_names(*, pre_score: bool, word_tokens: bool = True) -> tuple[str, ...]:
    names = [*REQUEST_FEATURES]
    if word_tokens:
        names.append(WORD_TOKENS_FEATURE)
    if pre_score:
        names.append(PRE_SCORE_FEATURE)
    return tuple(names)


def _matrix(rows: Sequence[Mapping[str, float]], names: Sequence[str]) -> Matrix:
    return np.array([[row.get(n, 0.0) for n in names] for row in rows], dtype=np.float64)


def _sigmoid(z: Matrix) -> Matrix:
    out: Matrix = 1.0 / (1.0 + np.exp(-np.clip(z, -40.0, 40.0)))
    return out


def _newton(x: Matrix, y: Matrix, l2: float, steps: int = 50) -> Matrix:
    """Weights (bias first) of L2-penalised logistic regression on standardised ``x``."""
    n, d = x.shape
    design = np.hstack([np.ones((n, 1)), x])
    w = np.zeros(d + 1)
    penalty = np.full(d + 1, l2)
    penalty[0] = 0.0
    for _ in range(steps):
        p = _sigmoid(design @ w)
        grad = design.T @ (p - y) + penalty * w
        hess = (
            (design * (p * (1 - p))[:, None]).T @ design + np.diag(penalty) + 1e-9 * np.eye(d + 1)
        )
        step = np.linalg.solve(hess, grad)
        w = w - step
        if float(np.max(np.abs(step))) < 1e-8:
            break
    return w


def _log_loss(w: Matrix, x: Matrix, y: Matrix) -> float:
    p = np.clip(_sigmoid(np.hstack([np.ones((x.shape[0], 1)), x]) @ w), 1e-9, 1 - 1e-9)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def _choose_l2(x: Matrix, y: Matrix, seed: int = 0, folds: int = 5) -> float:
    index = list(range(x.shape[0]))
    random.Random(seed).shuffle(index)  # noqa: S311 - reproducible folds
    best, best_loss = L2_GRID[0], float("inf")
    for l2 in L2_GRID:
        losses = []
        for k in range(folds):
            held = set(index[k::folds])
            train = [i for i in index if i not in held]
            test = sorted(held)
            if not test or not train:
                continue
            w = _newton(x[train], y[train], l2)
            losses.append(_log_loss(w, x[test], y[test]))
        loss = float(np.mean(losses)) if losses else float("inf")
        if loss < best_loss:
            best, best_loss = l2, loss
    return best


def fit_logistic(
    rows: Sequence[Mapping[str, float]],
    wrong: Sequence[bool],
    names: Sequence[str],
    *,
    l2: float | None = None,
    meta: Mapping[str, Any] | None = None,
) -> LogisticModel:
    """A :class:`LogisticModel` predicting ``wrong`` from the named features of ``rows``."""
    if len(rows) != len(wrong) or len(rows) < 4:
        raise ValueError("need at least 4 rows, one label per row")
    raw = _matrix(rows, names)
    mean = raw.mean(axis=0)
    scale = raw.std(axis=0)
    scale[scale < 1e-9] = 1.0
    x = (raw - mean) / scale
    y = np.array([1.0 if w else 0.0 for w in wrong])
    chosen = _choose_l2(x, y) if l2 is None else l2
    w = _newton(x, y, chosen)
    info = dict(meta or {})
    info.update({"l2": chosen, "rows": len(rows), "wrong_share": float(y.mean())})
    return LogisticModel(
        features=tuple(names),
        weights=tuple(float(v) for v in w[1:]),
        mean=tuple(float(v) for v in mean),
        scale=tuple(float(v) for v in scale),
        bias=float(w[0]),
        meta=info,
    )


def fit_router(
    items: Sequence[EvalItem],
    results: Mapping[str, LocalResult],
    *,
    pre_score: bool,
    meta: Mapping[str, Any] | None = None,
) -> LogisticModel:
    """Fit on ``items`` (the tune split) with their cached local results."""
    rows = [item_features(i, results[i.id], pre_score=pre_score) for i in items]
    wrong = [not results[i.id].correct for i in items]
    info = {"fitted": dt.date.today().isoformat(), **(meta or {})}
    words = all(results[i.id].max_word_tokens is not None for i in items)
    names = feature_names(pre_score=pre_score, word_tokens=words)
    return fit_logistic(rows, wrong, names, meta=info)
