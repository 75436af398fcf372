"""Applies the owner's per-type actions to the texts of one request.

Placeholders are typed and numbered per request and per type (``<EMAIL_1>``, ``<EMAIL_2>``,
``<PHONE_1>``); the same value of the same type gets the same placeholder in every message of
the request. ``pseudonymize`` placeholders go into the restore map, ``redact`` and ``block`` ones
never do (a blocked request must not be sent at all: the result says which types and rules
blocked, and the pipeline acts on it). Placeholder names that already occur in the input are
skipped, so an answer can never restore a value into text the user typed themselves.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from handoffd.privacy.findings import Finding, resolve_overlaps
from handoffd.privacy.restorer import PLACEHOLDER, PlaceholderRestorer
from handoffd.schema.privacy import Action


def _empty() -> Mapping[str, str]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class RedactionResult:
    """What may be sent, and what the pipeline, the ledger and the answer need to know.

    ``texts`` and ``placeholders`` hold original text: they are left out of ``repr`` so that an
    accidental log line cannot carry them.
    """

    #: the texts to send, one per input text, values replaced by placeholders
    texts: tuple[str, ...] = field(repr=False)
    #: placeholder -> original value, for pseudonymized values only
    placeholders: Mapping[str, str] = field(default_factory=_empty, repr=False)
    #: how many values of each entity type were found (allowed ones included)
    counts: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    #: how many values each action was applied to
    actions: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    #: entity types whose action is ``block`` and that were found, sorted
    blocked_types: tuple[str, ...] = ()
    #: rule ids of the blocking findings, sorted
    blocked_rule_ids: tuple[str, ...] = ()
    #: rule ids of every finding whose value did not leave as is (redacted, pseudonymized,
    #: blocked), sorted: the reasons a decision names
    rule_ids: tuple[str, ...] = ()

    @property
    def blocked(self) -> bool:
        return bool(self.blocked_types)

    @property
    def changed(self) -> bool:
        return bool(self.rule_ids)

    def restorer(self) -> PlaceholderRestorer:
        """A restorer for the answer to this request."""
        return PlaceholderRestorer(self.placeholders)


class Redactor:
    """Stateless: one :meth:`redact` call covers every message of one request."""

    def redact(
        self,
        texts: Sequence[str],
        findings_per_text: Sequence[Sequence[Finding]],
        actions: Mapping[str, Action],
        *,
        default: Action = Action.REDACT,
    ) -> RedactionResult:
        if len(texts) != len(findings_per_text):
            raise ValueError(
                f"redact got {len(texts)} texts but {len(findings_per_text)} finding lists"
            )

        def action_of(entity_type: str) -> Action:
            return actions.get(entity_type, default)

        taken = {m.group() for text in texts if "<" in text for m in PLACEHOLDER.finditer(text)}
        numbers: Counter[str] = Counter()
        assigned: dict[tuple[str, str], str] = {}
        restore: dict[str, str] = {}
        counts: Counter[str] = Counter()
        applied: Counter[str] = Counter()
        blocked_types: set[str] = set()
        blocked_rules: set[str] = set()
        rules: set[str] = set()

        def placeholder(entity_type: str, value: str) -> str:
            key = (entity_type, value)
            if key not in assigned:
                while True:
                    numbers[entity_type] += 1
                    name = f"<{entity_type}_{numbers[entity_type]}>"
                    if name not in taken:
                        break
                assigned[key] = name
            return assigned[key]

        out: list[str] = []
        for text, findings in zip(texts, findings_per_text, strict=True):
            if not findings:
                out.append(text)
                continue
            pieces: list[str] = []
            cursor = 0
            for f in resolve_overlaps(findings, action_of):
                action = action_of(f.entity_type)
                counts[f.entity_type] += 1
                applied[action.value] += 1
                if action is Action.ALLOW:
                    continue
                rules.add(f.rule_id)
                value = text[f.start : f.end]
                name = placeholder(f.entity_type, value)
                if action is Action.PSEUDONYMIZE:
                    restore[name] = value
                elif action is Action.BLOCK:
                    blocked_types.add(f.entity_type)
                    blocked_rules.add(f.rule_id)
                pieces.append(text[cursor : f.start])
                pieces.append(name)
                cursor = f.end
            pieces.append(text[cursor:])
            out.append("".join(pieces))

        return RedactionResult(
            texts=tuple(out),
            placeholders=MappingProxyType(restore),
            counts=MappingProxyType(dict(counts)),
            actions=MappingProxyType(dict(applied)),
            blocked_types=tuple(sorted(blocked_types)),
            blocked_rule_ids=tuple(sorted(blocked_rules)),
            rule_ids=tuple(sorted(rules)),
        )
