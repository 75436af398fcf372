"""Load YAML into typed, frozen pydantic models with errors that point at file:line:column.

Used for the daemon config and for policy files. A file is hostile until validated: YAML syntax
errors, duplicate keys, wrong types and unknown keys all come back as one :class:`ConfigError`
listing every problem as ``FILE:LINE:COL: key.path: what is wrong (fix)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from handoffd.errors import ConfigError

M = TypeVar("M", bound=BaseModel)
Loc = tuple[str | int, ...]
Locations = dict[Loc, tuple[int, int]]

MAX_FILE_BYTES = 1 << 20
#: marks the position of a mapping key itself (the plain path marks its value)
_KEY = "\x00key"


def _construct(node: yaml.Node, path: Loc, locs: Locations, source: str) -> Any:
    locs[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = yaml.safe_load(yaml.serialize(key_node)) if key_node.tag else key_node.value
            if not isinstance(key, str | int):
                raise _at(source, key_node, f"keys must be strings, got {key!r}")
            if key in out:
                raise _at(source, key_node, f"duplicate key {key!r}: keep only one")
            key_mark = key_node.start_mark
            locs[(*path, key, _KEY)] = (key_mark.line + 1, key_mark.column + 1)
            out[key] = _construct(value_node, (*path, key), locs, source)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_construct(v, (*path, i), locs, source) for i, v in enumerate(node.value)]
    return yaml.safe_load(yaml.serialize(node))


def _at(source: str, node: yaml.Node, message: str) -> ConfigError:
    mark = node.start_mark
    return ConfigError(f"{source}:{mark.line + 1}:{mark.column + 1}: {message}")


def parse_yaml(text: str, source: str) -> tuple[Any, Locations]:
    """Parse YAML text into plain Python data plus a map from key path to (line, column)."""
    locs: Locations = {}
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        raise ConfigError(f"{where}: invalid YAML: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: invalid YAML: {exc}") from None
    if node is None:
        return {}, locs
    return _construct(node, (), locs, source), locs


def read_yaml_file(path: Path) -> tuple[Any, Locations]:
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ConfigError(f"{path}: file is {size} bytes; the limit is {MAX_FILE_BYTES}")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file: check the path") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    return parse_yaml(text, str(path))


def _nearest(locs: Locations, loc: Loc) -> tuple[int, int] | None:
    for n in range(len(loc), -1, -1):
        if loc[:n] in locs:
            return locs[loc[:n]]
    return None


def format_validation_error(exc: ValidationError, source: str, locs: Locations) -> str:
    lines = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        key_pos = locs.get((*loc, _KEY)) if err["type"] == "extra_forbidden" else None
        where = key_pos or _nearest(locs, loc)
        prefix = f"{source}:{where[0]}:{where[1]}" if where else source
        key = ".".join(str(p) for p in loc) or "(top level)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = f"unknown key {loc[-1]!r}: remove it or check its spelling"
        elif "input" in err and err["type"] not in ("missing",):
            msg = f"{msg} (got {_short(err['input'])})"
        lines.append(f"{prefix}: {key}: {msg}")
    return "\n".join(lines)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def validate(model: type[M], data: Any, source: str, locs: Locations) -> M:
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}:1:1: the top level must be a mapping of keys to values")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source, locs)) from None


def load_model_file(model: type[M], path: Path) -> M:
    """Read, parse and validate one YAML file into ``model``."""
    data, locs = read_yaml_file(path)
    return validate(model, data, str(path), locs)
