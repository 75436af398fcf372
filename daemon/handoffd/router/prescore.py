"""The pre-generation score: the local model judges, in one forward pass, whether it can answer.

The pipeline renders :func:`self_assessment_messages` with the model's own chat template and asks
the engine for the log-probabilities of the first token of each of :data:`CANDIDATES`
(``engine.score_next_token(messages, CANDIDATES)``): no token is generated. The score is the
probability mass on "No" among the "Yes"/"No" answers::

    p_cannot = P(No) / (P(Yes) + P(No))      (both spellings, "Yes"/"yes", summed)

and the request goes to the cloud when ``p_cannot >= pre_score.threshold``.

Rule ids: ``pre_score.cloud`` and ``pre_score.local``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from handoffd.domain import Decision, Message, Reason, Role, Route
from handoffd.schema.routing import PreScoreConfig

STRATEGY = "pre_score"

YES: tuple[str, ...] = ("Yes", "yes")
NO: tuple[str, ...] = ("No", "no")
CANDIDATES: tuple[str, ...] = (*YES, *NO)

#: the longest question (characters) shown to the self-assessment; longer ones keep their end
MAX_QUESTION_CHARS = 4000

SYSTEM_PROMPT = (
    "You are a small assistant that runs on a device. A much stronger assistant is available "
    "for questions you might get wrong. Be honest about what you know."
)
USER_TEMPLATE = (
    "Question:\n{question}\n\n"
    "Can you answer this question correctly, with no mistake, on your own? "
    "Reply with only Yes or No."
)


def self_assessment_messages(question: str) -> tuple[Message, ...]:
    """The messages of the self-assessment prompt for ``question``."""
    if len(question) > MAX_QUESTION_CHARS:
        question = "…" + question[-MAX_QUESTION_CHARS:]
    return (
        Message(Role.SYSTEM, SYSTEM_PROMPT),
        Message(Role.USER, USER_TEMPLATE.format(question=question)),
    )


def _mass(logprobs: Mapping[str, float], names: tuple[str, ...]) -> float:
    total = 0.0
    for name in names:
        value = logprobs.get(name)
        if value is not None and math.isfinite(value):
            total += math.exp(value)
    return total


def p_cannot(logprobs: Mapping[str, float]) -> float:
    """P(No) / (P(Yes) + P(No)); 0.5 when the model puts no mass on either."""
    yes = _mass(logprobs, YES)
    no = _mass(logprobs, NO)
    if yes + no <= 0.0:
        return 0.5
    return no / (yes + no)


def pre_score_decision(logprobs: Mapping[str, float], config: PreScoreConfig) -> Decision:
    """CLOUD when the model doubts it can answer (``p_cannot >= threshold``), else LOCAL."""
    score = p_cannot(logprobs)
    scores = {
        "pre_score.p_cannot": score,
        "pre_score.threshold": config.threshold,
        "pre_score.p_yes_no_mass": _mass(logprobs, YES) + _mass(logprobs, NO),
    }
    if score >= config.threshold:
        reason = Reason(
            "pre_score.cloud",
            f"the local model doubts it can answer: P(no) = {score:.2f} >= {config.threshold:.2f}",
        )
        return Decision(route=Route.CLOUD, strategy=STRATEGY, reasons=(reason,), scores=scores)
    reason = Reason(
        "pre_score.local",
        f"the local model expects to answer: P(no) = {score:.2f} < {config.threshold:.2f}",
    )
    return Decision(route=Route.LOCAL, strategy=STRATEGY, reasons=(reason,), scores=scores)
