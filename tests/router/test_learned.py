"""The learned strategy: features, the logistic model, its weights file, and the fit."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest
from handoffd.domain import ChatRequest, Message, Role, Route
from handoffd.errors import ConfigError
from handoffd.router import RouteInput, Router
from handoffd.router.features import (
    REQUEST_FEATURES,
    max_word_tokens,
    pre_score_logit,
    request_features,
)
from handoffd.router.learned import LogisticModel, learned_decision
from handoffd.routereval.fit import fit_logistic
from handoffd.schema.routing import LearnedConfig, RoutingConfig

MODEL = LogisticModel(
    features=("req.big_numbers", "req.code_cues"),
    weights=(2.0, -1.0),
    mean=(1.0, 0.0),
    scale=(2.0, 1.0),
    bias=0.5,
)


def test_request_features_by_example() -> None:
    """Numbers, operators, word-problem and code cues are counted as documented."""
    f = request_features("What is 123 * 4,567?", prompt_tokens=30)
    assert set(REQUEST_FEATURES) <= set(f)
    assert f["req.numbers"] == 2
    assert f["req.max_number_digits"] == 4
    assert f["req.big_numbers"] == 2
    assert f["req.operators"] == 1
    assert f["req.mul_div"] >= 1
    assert f["req.wh_question"] == 1
    story = request_features(
        "Ana has 5 apples. She buys 3 bags with 4 apples in each bag. How many now?", 40
    )
    assert story["req.word_problem_cues"] >= 4
    assert story["req.big_numbers"] == 0
    code = request_features("What does print(len('abc')) return in Python?", 40)
    assert code["req.code_cues"] >= 2
    assert code["req.code_char_share"] > 0
    names = request_features("Who wrote The Master and Margarita?", 20)
    assert names["req.proper_nouns"] == 3


def test_pre_score_logit_is_clipped() -> None:
    """0 and 1 map to finite log-odds."""
    assert pre_score_logit(0.5) == pytest.approx(0.0)
    assert math.isfinite(pre_score_logit(0.0))
    assert pre_score_logit(1.0) == pytest.approx(8.0)


def test_predict_by_hand() -> None:
    """logit = .5 + 2 * (3 - 1) / 2 - 1 * 1 = 1.5."""
    x = {"req.big_numbers": 3.0, "req.code_cues": 1.0}
    assert MODEL.logit(x) == pytest.approx(1.5)
    assert MODEL.predict(x) == pytest.approx(1 / (1 + math.exp(-1.5)))
    # a missing feature counts as its mean
    assert MODEL.logit({}) == pytest.approx(0.5)


def test_decision_both_ways() -> None:
    """p >= threshold -> CLOUD naming the strongest push; else LOCAL."""
    config = LearnedConfig(threshold=0.7)
    cloud = learned_decision(MODEL, {"req.big_numbers": 3.0}, config)
    assert cloud.route is Route.CLOUD
    assert "numbers of 3+ digits" in cloud.reasons[0].message
    local = learned_decision(MODEL, {"req.big_numbers": 1.0, "req.code_cues": 2.0}, config)
    assert local.route is Route.LOCAL
    assert local.scores["learned.threshold"] == 0.7


def test_json_round_trip_and_file(tmp_path: Path) -> None:
    """A model written to JSON loads back equal."""
    path = tmp_path / "w.json"
    path.write_text(json.dumps(MODEL.to_json()))
    loaded = LogisticModel.load(path)
    assert loaded.features == MODEL.features
    assert loaded.predict({"req.big_numbers": 2.0}) == MODEL.predict({"req.big_numbers": 2.0})


def test_bad_weights_files_are_config_errors(tmp_path: Path) -> None:
    """Missing, malformed, mismatched or non-finite weights fail with a fix in the message."""
    with pytest.raises(ConfigError, match="cannot read"):
        LogisticModel.load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="invalid JSON"):
        LogisticModel.load(bad)
    bad.write_text(json.dumps({"format": "something else"}))
    with pytest.raises(ConfigError, match="router fit"):
        LogisticModel.load(bad)
    data = MODEL.to_json()
    data["weights"] = [1.0]
    bad.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="refit"):
        LogisticModel.load(bad)
    data = MODEL.to_json()
    data["scale"] = [0.0, 1.0]
    bad.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="scale"):
        LogisticModel.load(bad)


def test_shipped_weights_load() -> None:
    """The weights shipped with handoffd load and use known feature names."""
    model = LogisticModel.load()
    assert model.features
    known = {*REQUEST_FEATURES, "model.pre_score_logit", "req.max_word_tokens"}
    assert set(model.features) <= known
    assert model.meta.get("split") == "tune"


def test_fit_recovers_the_signal() -> None:
    """On data where a 3+ digit number means a wrong answer, the fit learns a positive weight
    for it and ranks such requests above the rest."""
    rng = random.Random(0)
    rows, wrong = [], []
    for _ in range(200):
        big = float(rng.random() < 0.4)
        noise = rng.random()
        rows.append({"req.big_numbers": big, "req.code_cues": noise})
        wrong.append(big == 1.0 if rng.random() < 0.9 else big == 0.0)
    model = fit_logistic(rows, wrong, ("req.big_numbers", "req.code_cues"), l2=1.0)
    assert model.weights[0] > 1.0
    assert abs(model.weights[1]) < model.weights[0] / 3
    assert model.predict({"req.big_numbers": 1.0, "req.code_cues": 0.5}) > 0.7
    assert model.predict({"req.big_numbers": 0.0, "req.code_cues": 0.5}) < 0.3
    chosen = fit_logistic(rows, wrong, ("req.big_numbers",))
    assert chosen.meta["l2"] in (0.3, 1.0, 3.0, 10.0, 30.0)


def _encode(text: str) -> list[int]:
    """A stand-in tokenizer: one token per 4 characters of the word."""
    return list(range(len(text.strip()) // 4 + 1))


def test_max_word_tokens() -> None:
    """The rarest word decides; short words are ignored; the value is capped."""
    assert max_word_tokens("What is the capital of Ouagadougou?", _encode) == 3
    assert max_word_tokens("Is it Paris?", _encode) == 2
    assert max_word_tokens("x" * 200, _encode) == 12


def test_router_uses_the_tokenizer_for_rare_words() -> None:
    """With the tokenizer, a rare name pushes to the cloud and a common one stays local;
    without it the feature is neutral (its mean)."""
    model = LogisticModel(
        features=("req.max_word_tokens",), weights=(3.0,), mean=(2.5,), scale=(1.0,), bias=0.0
    )
    config = RoutingConfig(strategies=("learned",), learned=LearnedConfig(threshold=0.6))
    with_tokenizer = Router(config, learned=model, encode=_encode)
    rare = RouteInput(
        ChatRequest(messages=(Message(Role.USER, "Where is Ouagadougou?"),)), 20, 2048
    )
    common = RouteInput(ChatRequest(messages=(Message(Role.USER, "Where is Paris?"),)), 20, 2048)
    assert with_tokenizer.decide(rare).route is Route.CLOUD
    assert with_tokenizer.decide(common).route is Route.LOCAL
    without = Router(config, learned=model)
    assert without.decide(rare).scores["learned.p_wrong"] == pytest.approx(0.5)
