"""Token choice without torch: greedy, temperature/top-k/top-p sampling, penalties, evidence."""

from __future__ import annotations

import numpy as np
import pytest
from handoffd.domain import GenerationParams
from handoffd.engine.sampling import TokenSampler, log_softmax, logprob_and_entropy


def _logits(seed: int = 0, vocab: int = 4096) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, 3.0, vocab).astype(np.float32)


def test_greedy_picks_argmax_with_model_logprob() -> None:
    """Greedy returns the argmax and its log-softmax under the raw model distribution."""
    logits = _logits()
    choice = TokenSampler(GenerationParams()).choose(logits)
    assert choice.token_id == int(np.argmax(logits))
    reference = logits.astype(np.float64) - np.logaddexp.reduce(logits.astype(np.float64))
    assert choice.logprob == pytest.approx(reference[choice.token_id], abs=1e-4)


def test_entropy_matches_float64_reference() -> None:
    """Entropy (nats) of the next-token distribution matches a float64 computation."""
    logits = _logits(1)
    wide = logits.astype(np.float64)
    logp = wide - np.logaddexp.reduce(wide)
    expected = float(-(np.exp(logp) * logp).sum())
    _, entropy = logprob_and_entropy(logits, 0)
    assert entropy == pytest.approx(expected, rel=1e-4)


def test_entropy_of_uniform_is_log_vocab() -> None:
    """A flat distribution over V tokens has entropy log V and every logprob -log V."""
    logits = np.zeros(1000, dtype=np.float32)
    logprob, entropy = logprob_and_entropy(logits, 7)
    assert entropy == pytest.approx(np.log(1000), rel=1e-5)
    assert logprob == pytest.approx(-np.log(1000), rel=1e-5)


def test_log_softmax_normalises() -> None:
    """log_softmax exponentiates to a distribution that sums to one."""
    assert float(np.exp(log_softmax(_logits(2)).astype(np.float64)).sum()) == pytest.approx(1.0)


def test_seeded_sampling_is_reproducible_and_seed_dependent() -> None:
    """Two samplers with the same seed draw the same tokens; another seed draws others."""
    rows = [_logits(i) for i in range(30)]

    def draws(seed: int) -> list[int]:
        sampler = TokenSampler(GenerationParams(temperature=1.0, seed=seed))
        return [sampler.choose(r).token_id for r in rows]

    assert draws(42) == draws(42)
    assert draws(42) != draws(43)


def test_top_k_limits_draws_to_the_k_best() -> None:
    """With top_k=5 every draw is one of the five highest logits."""
    logits = _logits(3)
    best = set(np.argsort(-logits)[:5].tolist())
    sampler = TokenSampler(GenerationParams(temperature=2.0, top_k=5, seed=1))
    draws = {sampler.choose(logits).token_id for _ in range(300)}
    assert draws <= best
    assert len(draws) > 1


def test_top_p_keeps_the_smallest_nucleus() -> None:
    """top_p draws only from the most likely tokens whose mass first reaches p."""
    logits = np.full(2000, -20.0, dtype=np.float32)
    logits[[10, 20, 30]] = [5.0, 4.0, 3.0]  # ~0.66, 0.24, 0.09 of the mass
    sampler = TokenSampler(GenerationParams(temperature=1.0, top_p=0.8, seed=5))
    draws = {sampler.choose(logits).token_id for _ in range(400)}
    assert draws == {10, 20}


def test_top_p_falls_back_to_full_sort_for_flat_distributions() -> None:
    """When the probe set does not reach top_p, the nucleus still covers the needed tokens."""
    logits = np.zeros(5000, dtype=np.float32)
    sampler = TokenSampler(GenerationParams(temperature=1.0, top_p=0.9, seed=9))
    draws = {sampler.choose(logits).token_id for _ in range(3000)}
    assert len(draws) > 600  # far more than the 512-token probe could offer


def test_temperature_sampling_follows_the_distribution() -> None:
    """Frequencies of drawn tokens follow softmax(logits / T)."""
    logits = np.array([2.0, 1.0, 0.0], dtype=np.float32)
    sampler = TokenSampler(GenerationParams(temperature=1.0, seed=11))
    counts = np.bincount([sampler.choose(logits).token_id for _ in range(6000)], minlength=3)
    expected = np.exp(logits) / np.exp(logits).sum()
    assert np.allclose(counts / counts.sum(), expected, atol=0.03)


def test_repetition_penalty_demotes_seen_tokens() -> None:
    """A prompt token that would win greedily loses to the runner-up under a strong penalty."""
    logits = np.zeros(100, dtype=np.float32)
    logits[3], logits[4] = 2.0, 1.5
    assert TokenSampler(GenerationParams(), prompt_ids=[3]).choose(logits).token_id == 3
    penalized = TokenSampler(GenerationParams(repetition_penalty=1.5), prompt_ids=[3])
    assert penalized.choose(logits).token_id == 4


def test_repetition_penalty_applies_to_generated_tokens() -> None:
    """Tokens the sampler produced are penalized on later steps (negative logits multiplied)."""
    logits = np.full(10, -1.0, dtype=np.float32)
    logits[2] = -0.5
    sampler = TokenSampler(GenerationParams(repetition_penalty=3.0))
    assert sampler.choose(logits).token_id == 2
    assert sampler.choose(logits).token_id != 2
