"""Choosing the next token from a row of logits, without torch.

:class:`TokenSampler` holds one request's sampling state (its random generator, the ids seen so
far for the repetition penalty) and turns float32 logits into a :class:`TokenChoice`:

1. the log-probability and entropy of the chosen token are measured on the model's own
   distribution (log-softmax of the raw logits, float32, over the whole vocabulary): they are
   the evidence the router reads, so they do not depend on the request's sampling knobs;
2. the repetition penalty (HF semantics: positive logits divided, negative multiplied, over the
   prompt and generated ids) is applied, then greedy argmax when ``temperature == 0``;
3. otherwise temperature, top-k, then top-p (the smallest set of most likely tokens whose
   probability reaches ``top_p``), then a draw from ``numpy.random.Generator(PCG64(seed))``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from handoffd.domain import GenerationParams

FloatArray = npt.NDArray[np.float32]

#: top-p first looks for the nucleus among this many best tokens before sorting the whole vocab
_NUCLEUS_PROBE = 512


@dataclass(frozen=True, slots=True)
class TokenChoice:
    token_id: int
    #: log-probability of the token under the model's distribution (nats, <= 0)
    logprob: float
    #: entropy of the model's next-token distribution (nats)
    entropy: float


def logprob_and_entropy(
    logits: FloatArray,
    token_id: int,
    *,
    peak: float | None = None,
    scratch: FloatArray | None = None,
) -> tuple[float, float]:
    """Log-softmax of ``logits`` at ``token_id`` and the distribution's entropy, in float32.

    ``peak`` is ``logits.max()`` when the caller knows it; ``scratch`` is a reusable buffer of the
    same shape (the vocabulary is large: this runs once per generated token).
    """
    top = float(logits.max()) if peak is None else peak
    weights = scratch if scratch is not None else np.empty_like(logits)
    np.subtract(logits, np.float32(top), out=weights)
    np.exp(weights, out=weights)
    total = float(weights.sum())
    log_total = math.log(total)
    logprob = float(logits[token_id]) - top - log_total
    # E[x - top] = (sum(w * x) - top * sum(w)) / sum(w)
    entropy = log_total - (float(np.dot(weights, logits)) - top * total) / total
    return logprob, max(entropy, 0.0)


def log_softmax(logits: FloatArray) -> FloatArray:
    shifted = logits - logits.max()
    out: FloatArray = shifted - np.float32(np.log(np.exp(shifted).sum(dtype=np.float32)))
    return out


class TokenSampler:
    """Sampling state of one request."""

    def __init__(self, params: GenerationParams, prompt_ids: Iterable[int] = ()) -> None:
        self.params = params
        self._rng = np.random.default_rng(params.seed)
        self._penalty = float(params.repetition_penalty)
        self._seen: set[int] = set(prompt_ids) if self._penalty != 1.0 else set()
        self._seen_array: npt.NDArray[np.int64] | None = None
        self._scratch: FloatArray | None = None

    def _penalized(self, logits: FloatArray) -> FloatArray:
        if self._penalty == 1.0 or not self._seen:
            return logits
        if self._seen_array is None:
            self._seen_array = np.fromiter(self._seen, dtype=np.int64, count=len(self._seen))
        ids = self._seen_array[self._seen_array < logits.shape[0]]
        out = logits.copy()
        picked = out[ids]
        out[ids] = np.where(picked > 0, picked / self._penalty, picked * self._penalty)
        return out

    def observe(self, token_id: int) -> None:
        """Record a generated id for the repetition penalty."""
        if self._penalty != 1.0 and token_id not in self._seen:
            self._seen.add(token_id)
            self._seen_array = None

    def choose(self, logits: FloatArray) -> TokenChoice:
        """Pick the next token from float32 logits of shape ``[vocab]``."""
        processed = self._penalized(logits)
        if self._scratch is None or self._scratch.shape != logits.shape:
            self._scratch = np.empty(logits.shape, dtype=np.float32)
        peak: float | None = None
        if self.params.greedy:
            token = int(np.argmax(processed))
            if processed is logits:
                peak = float(logits[token])
        else:
            token = self._draw(processed)
        logprob, entropy = logprob_and_entropy(logits, token, peak=peak, scratch=self._scratch)
        self.observe(token)
        return TokenChoice(token, logprob, entropy)

    def _draw(self, logits: FloatArray) -> int:
        vocab = logits.shape[0]
        scaled = logits / np.float32(self.params.temperature)
        top_k = self.params.top_k
        index: npt.NDArray[np.intp] | None = None
        if 0 < top_k < vocab:
            index = np.argpartition(scaled, vocab - top_k)[vocab - top_k :]
            scaled = scaled[index]
        probs = np.exp(scaled - scaled.max())
        probs /= probs.sum()
        if self.params.top_p < 1.0:
            keep = _nucleus(probs, self.params.top_p)
            local = keep[_pick(probs[keep], self._rng.random())]
        else:
            local = _pick(probs, self._rng.random())
        return int(index[local]) if index is not None else int(local)


def _pick(probs: npt.NDArray[np.floating], u: float) -> int:
    cumulative = np.cumsum(probs, dtype=np.float64)
    position = int(np.searchsorted(cumulative, u * cumulative[-1], side="right"))
    return min(position, int(probs.shape[0]) - 1)


def _nucleus(probs: npt.NDArray[np.floating], top_p: float) -> npt.NDArray[np.intp]:
    """Indices of the smallest set of most likely entries whose probability reaches ``top_p``,
    most likely first (always at least one)."""
    size = probs.shape[0]
    if size > _NUCLEUS_PROBE:
        probe = np.argpartition(probs, size - _NUCLEUS_PROBE)[size - _NUCLEUS_PROBE :]
        order = probe[np.argsort(-probs[probe], kind="stable")]
        cumulative = np.cumsum(probs[order], dtype=np.float64)
        if cumulative[-1] < top_p:
            order = np.argsort(-probs, kind="stable")
            cumulative = np.cumsum(probs[order], dtype=np.float64)
    else:
        order = np.argsort(-probs, kind="stable")
        cumulative = np.cumsum(probs[order], dtype=np.float64)
    count = int(np.searchsorted(cumulative, top_p, side="left")) + 1
    return order[: min(count, size)]
