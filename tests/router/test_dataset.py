"""The shipped eval set and the graders."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from handoffd.domain import Message, Role
from handoffd.errors import ConfigError
from handoffd.routereval.datagen import build_items, shipped_path
from handoffd.routereval.dataset import (
    EvalItem,
    dataset_digest,
    dump_items,
    load_dataset,
    parse_items,
    select,
)
from handoffd.routereval.grading import final_number, grade


def test_shipped_set_is_what_the_generator_writes() -> None:
    """The committed JSONL is exactly the generator's output (no drift, fixed seed)."""
    assert shipped_path().read_text("utf-8") == dump_items(build_items())


def test_shipped_set_size_categories_and_split() -> None:
    """At least 300 items over the planned categories, each split in half (stratified)."""
    items = load_dataset()
    assert len(items) >= 300
    assert len({i.id for i in items}) == len(items)
    per = Counter((i.category, i.split) for i in items)
    categories = {c for c, _ in per}
    assert {"fact_known", "fact_obscure", "word_problem", "code", "long_context"} <= categories
    assert sum(1 for c in categories if c.startswith("arith_")) >= 5
    for category in categories:
        assert abs(per[(category, "tune")] - per[(category, "test")]) <= 1
    assert len(select(items, "tune")) + len(select(items, "test")) == len(items)


def test_shipped_references_grade_themselves() -> None:
    """Every item's reference answer, written as a model would, is graded right."""
    for item in load_dataset():
        assert grade(item, f"The answer is {item.reference}."), item.id


def test_digest_ignores_order() -> None:
    """The cache key does not depend on the order items are run in."""
    items = build_items()
    assert dataset_digest(items) == dataset_digest(list(reversed(items)))


def item(grader: str, reference: str, *aliases: str, tolerance: float = 0.0) -> EvalItem:
    return EvalItem(
        id="x",
        category="c",
        split="test",
        messages=(Message(Role.USER, "q"),),
        grader=grader,
        reference=reference,
        aliases=aliases,
        tolerance=tolerance,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("The capital is Paris.", True),
        ("paris", True),
        ("Parisian food is great", False),
        ("It is Lyon.", False),
    ],
)
def test_contains_grader(answer: str, expected: bool) -> None:
    """contains: whole words, any case."""
    assert grade(item("contains", "Paris"), answer) is expected


def test_contains_ignores_accents_and_checks_aliases() -> None:
    """Accents are folded and aliases count."""
    assert grade(item("contains", "Chisinau"), "It is Chișinău.")
    assert grade(item("contains", "Ulaanbaatar", "Ulan Bator"), "Ulan Bator")
    assert not grade(item("contains", "8", "eight"), "It has 18 legs")


def test_contains_cs_is_case_sensitive() -> None:
    """contains_cs: 'HELLO' is not 'hello'."""
    assert grade(item("contains_cs", "HELLO"), "It returns 'HELLO'")
    assert not grade(item("contains_cs", "HELLO"), "it returns hello")


def test_exact_grader() -> None:
    """exact: the whole answer, normalised."""
    assert grade(item("exact", "42"), " 42. ")
    assert not grade(item("exact", "42"), "It is 42")


@pytest.mark.parametrize(
    ("answer", "number"),
    [
        ("47 + 42 = 89.", 89.0),
        ("To add 47 and 42: 47 + 42 = 11.", 11.0),
        ("The answer is 1,234 apples, from 3 bags", 1234.0),
        ("14 x 7 = 96\nThe answer is 96.", 96.0),
        ("It is 12.\n\nIf you buy 3 more, you get 15.", 12.0),
        ("no digits here", None),
        ("-5", -5.0),
        ("3.5 kg", 3.5),
    ],
)
def test_final_number(answer: str, number: float | None) -> None:
    """The committed number: after the last '=' / 'answer is', else the first paragraph's last."""
    assert final_number(answer) == number


def test_numeric_grader_with_tolerance() -> None:
    """numeric: equal within the tolerance."""
    assert grade(item("numeric", "3.14", tolerance=0.01), "about 3.141")
    assert not grade(item("numeric", "3.14"), "about 3.141")
    assert not grade(item("numeric", "7"), "I do not know")


def test_bad_dataset_lines_name_the_line(tmp_path: Path) -> None:
    """Invalid JSON, unknown graders, missing fields and duplicate ids fail with file:line."""
    cases = [
        ("{not json", "invalid JSON"),
        ('{"id": "a", "grader": "fuzzy", "reference": "x", "prompt": "q"}', "unknown grader"),
        ('{"id": "a", "grader": "exact", "prompt": "q"}', "missing field 'reference'"),
        (
            '{"id": "a", "grader": "exact", "reference": "x", "prompt": "q", "split": "dev"}',
            "split",
        ),
    ]
    for line, message in cases:
        with pytest.raises(ConfigError, match=message) as info:
            parse_items([line], "set.jsonl")
        assert "set.jsonl:1" in info.value.message
    dup = '{"id": "a", "grader": "exact", "reference": "x", "prompt": "q"}'
    with pytest.raises(ConfigError, match="duplicate id"):
        parse_items([dup, dup], "set.jsonl")
    with pytest.raises(ConfigError, match="cannot read"):
        load_dataset(tmp_path / "missing.jsonl")


def test_prompt_shorthand() -> None:
    """A line may give "prompt" instead of "messages"."""
    [only] = parse_items(['{"id": "a", "grader": "exact", "reference": "x", "prompt": "Hi?"}'], "s")
    assert only.messages == (Message(Role.USER, "Hi?"),)
    assert only.split == "test"
