"""The router: combines the configured strategies into one explained decision.

Pure logic, no I/O: the pipeline computes the evidence (prompt tokens, the pre-generation
score via ``engine.score_next_token``) and hands it in. Precedence (see
:mod:`handoffd.schema.routing`):

1. hard rules: context overflow or a missing capability -> CLOUD (DENIED if the cloud may not be
   used);
2. the client's preference: ``local_only`` -> LOCAL, ``prefer_cloud`` -> CLOUD when allowed;
3. soft rules (prompt length, keywords, regexes; first match decides) when ``rules`` is listed;
4. pre-generation scorers (``learned``, ``pre_score``) in the listed order: with ``combine: any``
   the first that says CLOUD decides, else the first listed; with ``combine: first`` the first
   listed decides alone;
5. otherwise LOCAL (``routing.default_local``).

A CLOUD verdict from steps 3-4 becomes LOCAL with ``routing.cloud_not_allowed`` when the policy
does not allow a handoff. Every evaluated step adds its reason, so ``decision.reasons`` is the
full explanation, the deciding reason first. After a LOCAL decision the in-generation
strategies run in the :class:`~handoffd.router.gate.LocalAnswerGate` (:meth:`Router.answer_gate`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from handoffd.domain import Decision, HandoffPreference, Message, Reason, Role, Route
from handoffd.errors import InternalError
from handoffd.router.cascade import CascadeMonitor
from handoffd.router.evidence import RouteInput
from handoffd.router.features import Encode, all_features, max_word_tokens
from handoffd.router.gate import LocalAnswerGate
from handoffd.router.handoff_detect import Formats, HandoffCallDetector
from handoffd.router.handoff_tool import handoff_tool_schema, marker_instruction
from handoffd.router.learned import LogisticModel, learned_decision
from handoffd.router.prescore import (
    CANDIDATES,
    p_cannot,
    pre_score_decision,
    self_assessment_messages,
)
from handoffd.router.rules import CLOUD_NOT_ALLOWED, SoftRules, hard_rule
from handoffd.schema.routing import RoutingConfig


def _merge_scores(decisions: Sequence[Decision]) -> dict[str, float]:
    scores: dict[str, float] = {}
    for d in decisions:
        scores.update(d.scores)
    return scores


class Router:
    """Built once per policy load; :meth:`decide` is cheap and thread-safe (no state)."""

    def __init__(
        self,
        config: RoutingConfig,
        *,
        learned: LogisticModel | None = None,
        encode: Encode | None = None,
    ) -> None:
        """``encode`` is the local model's tokenizer (``engine.encode``): pure CPU work that the
        learned strategy uses for its rare-word feature; without it that feature is neutral."""
        self.config = config
        self._encode = encode
        self._soft = SoftRules(config.rules)
        if config.enabled("learned") and learned is None:
            learned = LogisticModel.load(config.learned.weights)
        self._learned = learned

    @property
    def uses_pre_score(self) -> bool:
        """Whether the configured scorers use the self-assessment log-probabilities."""
        if self.config.enabled("pre_score"):
            return True
        return bool(
            self.config.enabled("learned") and self._learned and self._learned.uses_pre_score
        )

    def pre_score_needed(self, inp: RouteInput) -> bool:
        """Whether the pipeline should run the pre-score pass before :meth:`decide` for ``inp``
        (False when a rule or the preference decides before the scorers are consulted)."""
        if not self.uses_pre_score or hard_rule(inp, self.config.rules) is not None:
            return False
        if inp.request.preference is HandoffPreference.LOCAL_ONLY:
            return False
        if inp.request.preference is HandoffPreference.PREFER_CLOUD and inp.cloud_allowed:
            return False
        return not (self.config.enabled("rules") and self._soft.decide(inp) is not None)

    def pre_score_prompt(self, inp: RouteInput) -> tuple[tuple[Message, ...], tuple[str, ...]]:
        """The messages and candidates for ``engine.score_next_token``."""
        return self_assessment_messages(inp.question), CANDIDATES

    # -- pre-generation ------------------------------------------------------------------------

    def decide(self, inp: RouteInput, *, pre_score: Mapping[str, float] | None = None) -> Decision:
        """LOCAL, CLOUD or DENIED with every reason, the deciding one first."""
        preference = inp.request.preference
        if preference is HandoffPreference.LOCAL_ONLY and inp.cloud_allowed:
            inp = replace(inp, cloud_allowed=False)  # local_only: nothing leaves the device
        hard = hard_rule(inp, self.config.rules)
        if hard is not None:
            return hard
        if preference is HandoffPreference.LOCAL_ONLY:
            return Decision(
                route=Route.LOCAL,
                strategy="preference",
                reasons=(Reason("preference.local_only", "the app asked to stay on the device"),),
            )
        notes: list[Reason] = []
        if preference is HandoffPreference.PREFER_CLOUD:
            if inp.cloud_allowed:
                return Decision(
                    route=Route.CLOUD,
                    strategy="preference",
                    reasons=(Reason("preference.prefer_cloud", "the app prefers the cloud"),),
                )
            notes.append(
                Reason(
                    "preference.prefer_cloud",
                    "the app prefers the cloud, but the policy does not allow a handoff",
                )
            )
        if self.config.enabled("rules"):
            soft = self._soft.decide(inp)
            if soft is not None:
                return self._allowed(soft, inp, notes)
        verdicts = self._scorers(inp, pre_score)
        if verdicts:
            chosen = verdicts[0]
            if self.config.combine == "any":
                chosen = next((d for d in verdicts if d.route is Route.CLOUD), verdicts[0])
            others = tuple(r for d in verdicts if d is not chosen for r in d.reasons)
            merged = Decision(
                route=chosen.route,
                strategy=chosen.strategy,
                reasons=(*chosen.reasons, *others),
                scores=_merge_scores(verdicts),
            )
            return self._allowed(merged, inp, notes)
        reason = Reason("routing.default_local", "no rule or strategy asked for the cloud")
        return Decision(route=Route.LOCAL, strategy="rules", reasons=(reason, *notes))

    def _scorers(self, inp: RouteInput, pre_score: Mapping[str, float] | None) -> list[Decision]:
        verdicts: list[Decision] = []
        p = p_cannot(pre_score) if pre_score is not None else None
        for name in self.config.pre_generation():
            if name == "pre_score":
                if pre_score is None:
                    raise InternalError(
                        "routing.strategies lists pre_score but the pipeline gave no pre-score "
                        "log-probabilities (check Router.pre_score_needed)"
                    )
                decision = pre_score_decision(pre_score, self.config.pre_score)
            else:
                model = self._learned
                if model is None:  # pragma: no cover - loaded in __init__
                    raise InternalError("learned strategy enabled without weights")
                if model.uses_pre_score and p is None:
                    raise InternalError(
                        "the learned weights use the pre-score but the pipeline gave none "
                        "(check Router.pre_score_needed)"
                    )
                words = None
                if model.uses_word_tokens and self._encode is not None:
                    words = max_word_tokens(inp.question, self._encode)
                features = all_features(
                    inp.question, inp.prompt_tokens, p_cannot=p, word_tokens=words
                )
                decision = learned_decision(model, features, self.config.learned)
            verdicts.append(decision)
            if self.config.combine == "first":
                break
        return verdicts

    @staticmethod
    def _allowed(decision: Decision, inp: RouteInput, notes: list[Reason]) -> Decision:
        if decision.route is not Route.CLOUD or inp.cloud_allowed:
            return Decision(
                route=decision.route,
                strategy=decision.strategy,
                reasons=(*decision.reasons, *notes),
                scores=decision.scores,
            )
        refused = Reason(
            CLOUD_NOT_ALLOWED,
            "the router would hand this request off, but the policy does not allow it: "
            "answered locally",
        )
        return Decision(
            route=Route.LOCAL,
            strategy=decision.strategy,
            reasons=(*decision.reasons, refused, *notes),
            scores=decision.scores,
        )

    # -- in-generation -------------------------------------------------------------------------

    @staticmethod
    def _can_handoff(inp: RouteInput) -> bool:
        return inp.cloud_allowed and inp.request.preference is not HandoffPreference.LOCAL_ONLY

    def _offers(self, inp: RouteInput, mode: str) -> bool:
        return (
            self.config.enabled("model_handoff")
            and self.config.model_handoff.mode == mode
            and self._can_handoff(inp)
        )

    def local_tools(self, inp: RouteInput) -> list[dict[str, Any]] | None:
        """Tools to render into the local prompt (``model_handoff.mode: tool``), else None.
        Nothing is offered when the request may not leave the device."""
        return [handoff_tool_schema()] if self._offers(inp, "tool") else None

    def local_messages(self, inp: RouteInput) -> tuple[Message, ...]:
        """The messages for the local model: with ``mode: marker`` the handoff instruction is
        appended to the system message (or sent as one when there is none)."""
        messages = list(inp.request.messages)
        if not self._offers(inp, "marker"):
            return tuple(messages)
        instruction = marker_instruction(self.config.model_handoff.marker)
        if messages and messages[0].role is Role.SYSTEM:
            messages[0] = Message(Role.SYSTEM, f"{messages[0].content}\n\n{instruction}")
        else:
            messages.insert(0, Message(Role.SYSTEM, instruction))
        return tuple(messages)

    def answer_gate(self, inp: RouteInput) -> LocalAnswerGate:
        """A fresh gate for one local answer (in-generation strategies per the config)."""
        can_handoff = self._can_handoff(inp)
        detector = None
        if self.config.enabled("model_handoff") and can_handoff:
            formats: Formats = "tool" if self.config.model_handoff.mode == "tool" else "marker"
            detector = HandoffCallDetector(formats=formats, marker=self.config.model_handoff.marker)
        cascade = None
        if self.config.enabled("cascade"):
            cascade = CascadeMonitor(self.config.cascade, can_handoff=can_handoff)
        return LocalAnswerGate(detector=detector, cascade=cascade, cloud_allowed=can_handoff)
