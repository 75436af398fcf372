"""The router eval set: items with a reference answer and a grader, split into tune and test.

File format: JSON Lines, one item per line::

    {"id": "arith_mul_3d-004", "category": "arith_mul_3d", "split": "test",
     "messages": [{"role": "user", "content": "What is 482 * 917?"}],
     "grader": "numeric", "reference": "441994", "aliases": [], "tolerance": 0.0}

The shipped set (``handoffd/routereval/data/router_eval_v1.jsonl``) is written by
:mod:`handoffd.routereval.datagen`; ``tune`` is for fitting and calibrating, ``test`` for the
numbers we report.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from handoffd.domain import Message, Role
from handoffd.errors import ConfigError

SHIPPED_DATASET = "router_eval_v1.jsonl"
Split = Literal["tune", "test"]
GraderName = Literal["exact", "contains", "contains_cs", "numeric"]
GRADERS: tuple[str, ...] = ("exact", "contains", "contains_cs", "numeric")


@dataclass(frozen=True, slots=True)
class EvalItem:
    id: str
    category: str
    split: Split
    messages: tuple[Message, ...]
    grader: GraderName
    reference: str
    aliases: tuple[str, ...] = ()
    tolerance: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def question(self) -> str:
        for message in reversed(self.messages):
            if message.role is Role.USER:
                return message.content
        return ""

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "category": self.category,
            "split": self.split,
            "messages": [{"role": m.role.value, "content": m.content} for m in self.messages],
            "grader": self.grader,
            "reference": self.reference,
            "aliases": list(self.aliases),
            "tolerance": self.tolerance,
        }


def _item(data: Any, where: str) -> EvalItem:
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a JSON object per line")
    try:
        grader = data["grader"]
        if grader not in GRADERS:
            raise ValueError(f"unknown grader {grader!r}; use one of {', '.join(GRADERS)}")
        split = data.get("split", "test")
        if split not in ("tune", "test"):
            raise ValueError(f"split must be 'tune' or 'test', got {split!r}")
        if "messages" in data:
            messages = tuple(Message(Role(m["role"]), str(m["content"])) for m in data["messages"])
        else:
            messages = (Message(Role.USER, str(data["prompt"])),)
        if not messages:
            raise ValueError("messages is empty")
        return EvalItem(
            id=str(data["id"]),
            category=str(data.get("category", "uncategorised")),
            split=split,
            messages=messages,
            grader=grader,
            reference=str(data["reference"]),
            aliases=tuple(str(a) for a in data.get("aliases", ())),
            tolerance=float(data.get("tolerance", 0.0)),
        )
    except KeyError as exc:
        raise ConfigError(f"{where}: missing field {exc.args[0]!r}") from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from None


def parse_items(lines: Iterable[str], source: str) -> list[EvalItem]:
    items: list[EvalItem] = []
    seen: set[str] = set()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{source}:{number}"
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{where}: invalid JSON: {exc.msg}") from None
        item = _item(data, where)
        if item.id in seen:
            raise ConfigError(f"{where}: duplicate id {item.id!r}: ids must be unique")
        seen.add(item.id)
        items.append(item)
    if not items:
        raise ConfigError(f"{source}: no items")
    return items


def load_dataset(path: Path | None = None) -> list[EvalItem]:
    """Load ``path`` or, when None, the shipped eval set."""
    if path is None:
        text = resources.files("handoffd.routereval").joinpath("data", SHIPPED_DATASET)
        return parse_items(text.read_text("utf-8").splitlines(), f"<shipped {SHIPPED_DATASET}>")
    try:
        content = path.read_text("utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the dataset ({exc.strerror})") from None
    return parse_items(content.splitlines(), str(path))


def dump_items(items: Sequence[EvalItem]) -> str:
    return "".join(json.dumps(i.to_json(), ensure_ascii=False) + "\n" for i in items)


def dataset_digest(items: Sequence[EvalItem]) -> str:
    """A short hash of the items, whatever their order (a result cache is only valid for the
    same items)."""
    ordered = sorted(items, key=lambda i: i.id)
    return hashlib.sha256(dump_items(ordered).encode()).hexdigest()[:16]


def select(items: Sequence[EvalItem], split: Split | Literal["all"]) -> list[EvalItem]:
    return [i for i in items if split in ("all", i.split)]
