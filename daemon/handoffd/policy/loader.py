"""Load and fully validate policy files; nothing is applied unless everything is valid.

Every problem comes back in one :class:`ConfigError`, one line each, as
``FILE:LINE:COL: key.path: what is wrong (the fix)``. Checks, in order: YAML syntax and duplicate
keys, types and unknown keys per file (pydantic), then across files: rule ids unique and not
reserved, cloud target names known (when the daemon's targets are given), ``disable`` naming a
default rule, and each app section valid once merged with the defaults.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from handoffd.errors import ConfigError
from handoffd.policy.app_policy import DEFAULTS, AppPolicy, LoadedPolicy
from handoffd.policy.compose import (
    ResolvedSection,
    SectionMergeError,
    default_rule_ids,
    merge_documents,
)
from handoffd.schema.policy import RESERVED_RULE_IDS, PolicyFile, RuleSections
from handoffd.yamlload import Loc, Locations, parse_yaml, read_yaml_file, validate

_Source = tuple[str, Locations]


class _Locator:
    """Finds where a key path was written, across all files (the latest file wins ties)."""

    def __init__(self, sources: list[_Source]) -> None:
        self._sources = sources

    def at(self, source: str, locs: Locations, path: Loc) -> str:
        for n in range(len(path), -1, -1):
            if path[:n] in locs:
                line, col = locs[path[:n]]
                return f"{source}:{line}:{col}"
        return source

    def find(self, path: Loc) -> str:
        best: tuple[int, str] | None = None
        for source, locs in self._sources:
            for n in range(len(path), -1, -1):
                if path[:n] in locs:
                    if best is None or n >= best[0]:
                        line, col = locs[path[:n]]
                        best = (n, f"{source}:{line}:{col}")
                    break
        return best[1] if best else (self._sources[-1][0] if self._sources else "<policy>")


def _key(path: Loc) -> str:
    return ".".join(str(p) for p in path) or "(top level)"


def _sections(document: PolicyFile) -> Iterator[tuple[Loc, RuleSections]]:
    yield (), document
    for name, section in document.apps.items():
        yield ("apps", name), section


def _rule_id_paths(document: PolicyFile) -> Iterator[tuple[Loc, str]]:
    for prefix, section in _sections(document):
        for i, label in enumerate(section.labels):
            yield (*prefix, "labels", i, "id"), label.id
        for i, limit in enumerate(section.rate_limits):
            yield (*prefix, "rate_limits", i, "id"), limit.id
        if section.budgets is not None:
            for i, budget in enumerate(section.budgets.limits):
                yield (*prefix, "budgets", "limits", i, "id"), budget.id


def _target_paths(document: PolicyFile) -> Iterator[tuple[Loc, str]]:
    for prefix, section in _sections(document):
        if section.cloud is not None:
            for i, name in enumerate(section.cloud.allow):
                yield (*prefix, "cloud", "allow", i), name
        for i, limit in enumerate(section.rate_limits):
            for j, name in enumerate(limit.targets):
                yield (*prefix, "rate_limits", i, "targets", j), name


def _parse_one(source: str, data: Any, locs: Locations) -> PolicyFile:
    if data is None or data == {}:
        raise ConfigError(f"{source}:1:1: the policy file is empty: start it with 'version: 1'")
    if isinstance(data, dict) and "version" in data and data["version"] != 1:
        where = locs.get(("version",), (1, 1))
        raise ConfigError(
            f"{source}:{where[0]}:{where[1]}: version: unsupported policy version "
            f"{data['version']!r}: this handoffd reads 'version: 1'"
        )
    return validate(PolicyFile, data, source, locs)


def _cross_checks(
    parsed: list[tuple[str, Locations, PolicyFile]],
    locator: _Locator,
    known_targets: Collection[str] | None,
) -> list[str]:
    problems: list[str] = []
    first_seen: dict[str, str] = {}
    for source, locs, document in parsed:
        for path, rule_id in _rule_id_paths(document):
            where = locator.at(source, locs, path)
            if rule_id in RESERVED_RULE_IDS:
                problems.append(
                    f"{where}: {_key(path)}: rule id {rule_id!r} is reserved for the policy "
                    "engine: choose another id"
                )
            elif rule_id in first_seen:
                problems.append(
                    f"{where}: {_key(path)}: duplicate rule id {rule_id!r}, already used at "
                    f"{first_seen[rule_id]}: give each rule its own id"
                )
            else:
                first_seen[rule_id] = where
        if known_targets is not None:
            known = ", ".join(sorted(known_targets)) or "none are configured"
            for path, name in _target_paths(document):
                if name not in known_targets:
                    problems.append(
                        f"{locator.at(source, locs, path)}: {_key(path)}: unknown cloud target "
                        f"{name!r}: use a target of the daemon config's cloud.targets ({known})"
                    )
    return problems


def _resolve_apps(
    merged: PolicyFile, locator: _Locator, policy_hash: str, tz: ZoneInfo
) -> tuple[dict[str, AppPolicy], list[str]]:
    problems: list[str] = []
    apps: dict[str, AppPolicy] = {}
    inheritable = default_rule_ids(merged)
    for name, section in merged.apps.items():
        for i, rule_id in enumerate(section.disable):
            if rule_id not in inheritable:
                path: Loc = ("apps", name, "disable", i)
                choices = ", ".join(sorted(inheritable)) or "the defaults have none"
                problems.append(
                    f"{locator.find(path)}: {_key(path)}: {rule_id!r} is not a default rule, so "
                    f"there is nothing to disable (default rule ids: {choices})"
                )
        try:
            resolved = ResolvedSection(merged, section)
        except SectionMergeError as exc:
            note = f"(app {name!r} merged with the defaults)"
            problems.extend(_describe(exc.error, ("apps", name, exc.section), locator, note))
            continue
        apps[name] = AppPolicy.build(name, resolved, policy_hash, tz)
    return apps, problems


def _describe(exc: ValidationError, prefix: Loc, locator: _Locator, note: str) -> list[str]:
    """One FILE:LINE:COL line per error of a validation done on merged data."""
    lines = []
    for err in exc.errors():
        path = (*prefix, *err["loc"])
        if err["type"] == "extra_forbidden":
            message = f"unknown key {path[-1]!r}: remove it or check its spelling"
        else:
            message = err["msg"]
        lines.append(f"{locator.find(path)}: {_key(path)}: {message} {note}")
    return lines


def canonical_hash(document: PolicyFile) -> str:
    """sha256 over the canonical JSON of a validated document (sorted keys, no spaces)."""
    data = document.model_dump(mode="json")
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _build(
    inputs: list[tuple[str, Any, Locations]], known_targets: Collection[str] | None
) -> tuple[PolicyFile, LoadedPolicy]:
    problems: list[str] = []
    parsed: list[tuple[str, Locations, PolicyFile]] = []
    for source, data, locs in inputs:
        try:
            parsed.append((source, locs, _parse_one(source, data, locs)))
        except ConfigError as exc:
            problems.append(exc.message)
    if problems:
        raise ConfigError("\n".join(problems))
    locator = _Locator([(source, locs) for source, locs, _ in parsed])
    problems.extend(_cross_checks(parsed, locator, known_targets))
    if problems:
        raise ConfigError("\n".join(problems))
    try:
        merged = PolicyFile.model_validate(merge_documents([doc for _, _, doc in parsed]))
    except ValidationError as exc:
        lines = _describe(exc, (), locator, "(after combining the files)")
        raise ConfigError("\n".join(lines)) from None
    policy_hash = canonical_hash(merged)
    tz = ZoneInfo(merged.timezone)
    apps, problems = _resolve_apps(merged, locator, policy_hash, tz)
    defaults = AppPolicy.build(DEFAULTS, ResolvedSection(merged, None), policy_hash, tz)
    if problems:
        raise ConfigError("\n".join(problems))
    sources = tuple(Path(source) for source, _, _ in inputs)
    return merged, LoadedPolicy(merged, policy_hash, sources, defaults, apps)


def load_policy(
    paths: Sequence[Path], *, known_targets: Collection[str] | None = None
) -> LoadedPolicy:
    """Read, validate and combine ``paths`` (in order) into one :class:`LoadedPolicy`.

    ``known_targets``: the cloud target names of the daemon config; a policy naming another
    target is rejected. ``None`` skips that check (``handoffctl policy check`` without a config).
    Raises :class:`ConfigError` listing every problem with FILE:LINE:COL.
    """
    if not paths:
        raise ConfigError("no policy file given: pass at least one YAML file")
    inputs: list[tuple[str, Any, Locations]] = []
    problems: list[str] = []
    for path in paths:
        try:
            data, locs = read_yaml_file(Path(path))
        except ConfigError as exc:
            problems.append(exc.message)
            continue
        inputs.append((str(path), data, locs))
    if problems:
        raise ConfigError("\n".join(problems))
    return _build(inputs, known_targets)[1]


def policy_from_text(
    text: str, source: str = "<policy>", *, known_targets: Collection[str] | None = None
) -> LoadedPolicy:
    """Like :func:`load_policy` for one YAML text (tests, benchmarks, ``explain``)."""
    data, locs = parse_yaml(text, source)
    return _build([(source, data, locs)], known_targets)[1]
