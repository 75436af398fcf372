"""The ``privacy:`` section of a policy file: what may leave the device, per kind of data.

Self-contained so that the policy file model can compose it. Every rule has a stable id
(``privacy.email``, ``privacy.secret.github``, ``privacy.custom.<name>``) that decisions, the
ledger and ``handoffctl explain`` name. Custom regexes are compiled here, at load: a bad regex is
rejected with the regex and the compiler's error, never discovered during a request.

Example::

    privacy:
      default_action: redact
      actions: {EMAIL: pseudonymize, PHONE: pseudonymize, SECRET: block, IP_ADDRESS: allow}
      phone_regions: [US, GB, DE, FR]
      custom:
        - {name: employee_id, entity_type: EMPLOYEE_ID, regex: 'EMP-\\d{6}'}
        - {name: codenames, entity_type: PROJECT, keywords: [bluebird, nightjar]}
      on_block: local
"""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from handoffd.schema.base import Frozen


class Action(StrEnum):
    """What happens to a detected value before a cloud handoff, from most to least lenient."""

    ALLOW = "allow"  # sent as is
    PSEUDONYMIZE = "pseudonymize"  # replaced by <TYPE_N>, restored in the answer
    REDACT = "redact"  # replaced by <TYPE_N>, never restored
    BLOCK = "block"  # nothing leaves the device (see ``on_block``)

    @property
    def strictness(self) -> int:
        """Order used when overlapping findings are merged: the strictest action wins."""
        return _STRICTNESS[self]


_STRICTNESS = {Action.ALLOW: 0, Action.PSEUDONYMIZE: 1, Action.REDACT: 2, Action.BLOCK: 3}

#: the built-in entity types and the rule id of each detector family
BUILTIN_ENTITY_TYPES: tuple[str, ...] = (
    "EMAIL",
    "PHONE",
    "CREDIT_CARD",
    "IBAN",
    "US_SSN",
    "IP_ADDRESS",
    "MAC_ADDRESS",
    "SECRET",
)

_TYPE_NAME = re.compile(r"^[A-Z][A-Z0-9_]{0,39}$")
_RULE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_REGION = re.compile(r"^[A-Z]{2}$")


def builtin_rule_id(entity_type: str) -> str:
    """``EMAIL`` -> ``privacy.email`` (secrets have one id per format: ``privacy.secret.jwt``)."""
    return f"privacy.{entity_type.lower()}"


class CustomDetector(Frozen):
    """An owner-defined detector: a regex or a case-insensitive keyword list (exactly one)."""

    #: lower-case identifier; the rule id is ``privacy.custom.<name>``
    name: str
    #: the type findings get (a new type such as ``EMPLOYEE_ID`` or a built-in one)
    entity_type: str
    regex: str | None = None
    keywords: tuple[str, ...] = ()
    #: keywords match whole words only (``art`` does not match ``party``)
    whole_words: bool = True

    @property
    def rule_id(self) -> str:
        return f"privacy.custom.{self.name}"

    @field_validator("name")
    @classmethod
    def _name_shape(cls, value: str) -> str:
        if not _RULE_NAME.match(value):
            raise ValueError(
                f"custom detector name {value!r} must be lower-case letters, digits and _ "
                "(it becomes the rule id privacy.custom.<name>)"
            )
        return value

    @field_validator("entity_type")
    @classmethod
    def _type_shape(cls, value: str) -> str:
        if not _TYPE_NAME.match(value):
            raise ValueError(
                f"entity type {value!r} must be UPPER_CASE letters, digits and _ "
                "(it appears in placeholders such as <EMPLOYEE_ID_1>)"
            )
        return value

    @field_validator("regex")
    @classmethod
    def _regex_compiles(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            compiled = re.compile(value)
        except re.error as exc:
            raise ValueError(f"regex {value!r} does not compile: {exc}") from None
        if compiled.match(""):
            raise ValueError(f"regex {value!r} matches the empty string: make it match something")
        return value

    @field_validator("keywords")
    @classmethod
    def _keywords_not_blank(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if any(not k.strip() for k in value):
            raise ValueError("keywords must not be empty or blank: remove the empty entry")
        return value

    @model_validator(mode="after")
    def _exactly_one_source(self) -> CustomDetector:
        if (self.regex is None) == (not self.keywords):
            raise ValueError(
                f"custom detector {self.name!r} needs exactly one of 'regex' or 'keywords'"
            )
        return self


class SecretsConfig(Frozen):
    """High-entropy detection for secrets that have no well-known format.

    A run of ``[A-Za-z0-9+/=_-]`` counts as a secret when it is at least ``min_length`` long, has
    both letters and digits, is not plain hexadecimal (hashes, git SHAs, UUIDs are common in
    prompts and are left alone) and its Shannon entropy is at least ``entropy_threshold`` bits
    per character. Well-known formats (OpenAI, GitHub, AWS, Slack, Google, JWT, PEM private keys,
    bearer tokens, ``password=...``) are always detected, whatever these settings.
    """

    high_entropy: bool = True
    min_length: int = Field(default=20, ge=8, le=512)
    entropy_threshold: float = Field(default=3.5, gt=0.0, le=8.0)


class NerConfig(Frozen):
    """An optional named-entity model for names and addresses (off unless configured)."""

    kind: Literal["presidio", "onnx"]
    #: presidio: a spaCy model folder; onnx: a folder with model.onnx, tokenizer.json, config.json
    model: Path
    #: the entity types to report (model labels are mapped to these: PER -> PERSON, ...)
    entities: tuple[str, ...] = ("PERSON", "LOCATION")
    min_score: float = Field(default=0.5, ge=0.0, le=1.0)

    @field_validator("entities")
    @classmethod
    def _entity_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if not _TYPE_NAME.match(name):
                raise ValueError(f"NER entity type {name!r} must be UPPER_CASE")
        return value


class PrivacyConfig(Frozen):
    """What the device owner lets leave the device."""

    enabled: bool = True
    #: the action for a type not listed in ``actions``
    default_action: Action = Action.REDACT
    #: per entity type: allow | redact | pseudonymize | block
    actions: dict[str, Action] = Field(default_factory=dict)
    #: ISO 3166 regions whose national phone formats are recognised (international +CC always)
    phone_regions: tuple[str, ...] = ("US", "GB", "DE", "FR")
    #: ``possible``: the length fits the region (fail safe); ``valid``: also a real number range
    phone_validation: Literal["possible", "valid"] = "possible"
    secrets: SecretsConfig = Field(default_factory=SecretsConfig)
    custom: tuple[CustomDetector, ...] = ()
    ner: NerConfig | None = None
    #: values never reported, compared case-insensitively (e.g. the company's support address)
    ignore_values: tuple[str, ...] = ()
    #: the whole scan of one request must finish within this, else nothing leaves the device.
    #: A 2 KB scan takes well under 1 ms; the margin is for a loaded CPU (a 164 ms stall was seen
    #: on a 2-core machine at load 8) and long prompts. Checked between detectors.
    detector_timeout_ms: float = Field(default=250.0, gt=0.0, le=60_000.0)
    #: what a ``block`` finding does: answer on the device instead, or refuse the request
    on_block: Literal["local", "deny"] = "local"

    @field_validator("phone_regions")
    @classmethod
    def _regions(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for region in value:
            if not _REGION.match(region):
                raise ValueError(
                    f"phone region {region!r} must be a two-letter upper-case ISO code like 'GB'"
                )
        return tuple(dict.fromkeys(value))

    @model_validator(mode="after")
    def _actions_name_known_types(self) -> PrivacyConfig:
        names = [d.name for d in self.custom]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"custom detector names must be unique; repeated: {dupes}")
        known = set(self.entity_types)
        unknown = sorted(set(self.actions) - known)
        if unknown:
            raise ValueError(
                f"actions name unknown entity types {unknown}: use one of {sorted(known)} "
                "or add a custom detector of that type"
            )
        return self

    @property
    def entity_types(self) -> tuple[str, ...]:
        """Every type this configuration can report."""
        extra = [d.entity_type for d in self.custom]
        if self.ner is not None:
            extra.extend(self.ner.entities)
        return tuple(dict.fromkeys([*BUILTIN_ENTITY_TYPES, *extra]))

    def action_for(self, entity_type: str) -> Action:
        return self.actions.get(entity_type, self.default_action)

    def effective_actions(self) -> dict[str, Action]:
        """The action of every known entity type (defaults filled in)."""
        return {t: self.action_for(t) for t in self.entity_types}
