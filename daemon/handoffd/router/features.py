"""Request features for the learned strategy: cheap, deterministic, computed from text alone.

Each feature is a float named ``req.<what>``; the learned model picks the ones it was fitted on
by name, so adding a feature here never breaks a shipped weights file. The model's own evidence
(the pre-generation score) joins as ``model.pre_score_logit``.

``req.max_word_tokens`` needs the local model's tokenizer: the most tokens any word of the
question takes (rare names such as "Ouagadougou" split into many pieces, "Paris" is one): a
cheap proxy for "the small model has rarely seen this". Without a tokenizer it is left out,
and the learned model treats a missing feature as its mean (no push either way).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence

_NUMBER = re.compile(r"(?<![\w.])-?\d[\d,]*(?:\.\d+)?(?![\w])")
_OPERATOR = re.compile(r"(?<=[\d\s)])[+\-*/\u00d7\u00f7^%](?=[\s\d(])")
_MUL_DIV = re.compile(
    r"[*\u00d7\u00f7/]|"
    r"\b(?:times|multipl\w*|product|divid\w*|quotient|per cent|percent|ratio|average)\b",
    re.IGNORECASE,
)
_ADD_SUB = re.compile(
    r"\+|\b(?:plus|minus|sum|add|adds|added|subtract\w*|difference|total)\b", re.IGNORECASE
)
_WORD_PROBLEM = re.compile(
    r"\b(?:each|every|altogether|left|remain\w*|how many|how much|buys?|bought|sells?|sold|"
    r"costs?|spends?|spent|earns?|pays?|paid|shares?|gives?|gave|twice|half|more than|"
    r"fewer|less than|weeks?|days?|hours?|minutes?|dollars?|cents?|apples?|boxes|bags?|"
    r"tickets?|friends?|then|after)\b|\$",
    re.IGNORECASE,
)
_CODE = re.compile(
    r"```|\bdef\b|\breturn\b|\bprint\(|\bfunction\b|\bpython\b|\bjavascript\b|\bsql\b|"
    r"\bcode\b|=>|==|\bimport\b|\bclass\b|\bvariable\b|\bloop\b|\barray\b|\blist\b|"
    r"\bstring\b|\bregex\b|\bcompile\w*\b|\bsyntax\b|\bprogram\w*\b|`",
    re.IGNORECASE,
)
_CODE_CHARS = frozenset("()[]{}=<>;:_'\"`#")
_WH = re.compile(r"^\s*(?:who|what|when|where|which|name)\b", re.IGNORECASE)
_WORD = re.compile(r"[A-Za-z][A-Za-z'\-]*")
_SENTENCE_END = re.compile(r"[.!?](?:\s|$)")
_CAPITALISED = re.compile(r"\b[A-Z][a-z]+")

#: names of every request feature, in a stable order
REQUEST_FEATURES: tuple[str, ...] = (
    "req.chars_log",
    "req.words_log",
    "req.lines_log",
    "req.sentences",
    "req.numbers",
    "req.max_number_digits",
    "req.multi_digit_numbers",
    "req.big_numbers",
    "req.operators",
    "req.mul_div",
    "req.add_sub",
    "req.word_problem_cues",
    "req.code_cues",
    "req.code_char_share",
    "req.wh_question",
    "req.proper_nouns",
    "req.long_words_share",
    "req.prompt_tokens_log",
)
PRE_SCORE_FEATURE = "model.pre_score_logit"
WORD_TOKENS_FEATURE = "req.max_word_tokens"
MAX_WORD_TOKENS = 12

#: the local model's tokenizer: text -> token ids (no special tokens)
Encode = Callable[[str], Sequence[int]]


def _digits(number: str) -> int:
    whole = number.lstrip("-").split(".", 1)[0].replace(",", "")
    return len(whole.lstrip("0")) or 1


def _proper_nouns(text: str) -> int:
    """Capitalised words that do not start a sentence (names: countries, people, books)."""
    count = 0
    for match in _CAPITALISED.finditer(text):
        before = text[: match.start()].rstrip()
        if before and before[-1] not in ".!?:\n\"'(":
            count += 1
    return count


def request_features(question: str, prompt_tokens: int) -> dict[str, float]:
    """The request features of the last user message ``question``."""
    numbers = _NUMBER.findall(question)
    digits = [_digits(n) for n in numbers]
    words = _WORD.findall(question)
    proper = _proper_nouns(question)
    long_words = sum(1 for w in words if len(w) >= 9)
    code_chars = sum(1 for ch in question if ch in _CODE_CHARS)
    return {
        "req.chars_log": math.log1p(len(question)),
        "req.words_log": math.log1p(len(words)),
        "req.lines_log": math.log1p(question.count("\n")),
        "req.sentences": float(min(len(_SENTENCE_END.findall(question)), 20)),
        "req.numbers": float(min(len(numbers), 20)),
        "req.max_number_digits": float(min(max(digits, default=0), 12)),
        "req.multi_digit_numbers": float(min(sum(1 for d in digits if d >= 2), 20)),
        "req.big_numbers": float(min(sum(1 for d in digits if d >= 3), 20)),
        "req.operators": float(min(len(_OPERATOR.findall(question)), 20)),
        "req.mul_div": float(min(len(_MUL_DIV.findall(question)), 10)),
        "req.add_sub": float(min(len(_ADD_SUB.findall(question)), 10)),
        "req.word_problem_cues": float(min(len(_WORD_PROBLEM.findall(question)), 20)),
        "req.code_cues": float(min(len(_CODE.findall(question)), 20)),
        "req.code_char_share": code_chars / max(len(question), 1),
        "req.wh_question": 1.0 if _WH.match(question) else 0.0,
        "req.proper_nouns": float(min(proper, 20)),
        "req.long_words_share": long_words / max(len(words), 1),
        "req.prompt_tokens_log": math.log1p(max(prompt_tokens, 0)),
    }


def pre_score_logit(p_cannot: float) -> float:
    """log(p / (1 - p)), clipped to +-8 so that 0 and 1 stay finite."""
    p = min(max(p_cannot, 1e-4), 1.0 - 1e-4)
    return max(-8.0, min(8.0, math.log(p / (1.0 - p))))


def max_word_tokens(question: str, encode: Encode) -> int:
    """The most tokens any word of ``question`` takes (with its leading space), capped."""
    words = {w for w in _WORD.findall(question) if len(w) >= 2}
    most = 0
    for word in words:
        most = max(most, len(encode(" " + word)))
        if most >= MAX_WORD_TOKENS:
            return MAX_WORD_TOKENS
    return most


def all_features(
    question: str,
    prompt_tokens: int,
    *,
    p_cannot: float | None = None,
    word_tokens: int | None = None,
) -> Mapping[str, float]:
    """Request features plus, when known, the tokenizer's rarity and the model's self-doubt."""
    features = request_features(question, prompt_tokens)
    if word_tokens is not None:
        features[WORD_TOKENS_FEATURE] = float(word_tokens)
    if p_cannot is not None:
        features[PRE_SCORE_FEATURE] = pre_score_logit(p_cannot)
    return features
