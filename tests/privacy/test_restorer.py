"""Pseudonym placeholders are restored in streamed answers, however the chunks fall."""

from __future__ import annotations

import random

import pytest
from handoffd.privacy import PlaceholderRestorer

MAP = {"<EMAIL_1>": "jane@example.com", "<EMAIL_10>": "ten@example.com", "<PHONE_2>": "+1 415"}
ANSWER = "Hi <EMAIL_1>, call <PHONE_2>; cc <EMAIL_10> not <EMAIL_3> or <CARD_1> <EMAIL_1"
EXPECTED = "Hi jane@example.com, call +1 415; cc ten@example.com not <EMAIL_3> or <CARD_1> <EMAIL_1"


def stream(chunks: list[str], mapping: dict[str, str] = MAP) -> tuple[str, list[str]]:
    restorer = PlaceholderRestorer(mapping)
    outs = [restorer.feed(c) for c in chunks]
    outs.append(restorer.flush())
    return "".join(outs), outs


def test_whole_text() -> None:
    """Known placeholders are replaced; unknown ones and an unfinished one are left alone."""
    assert PlaceholderRestorer(MAP).restore(ANSWER) == EXPECTED
    assert stream([ANSWER])[0] == EXPECTED


@pytest.mark.parametrize("cut", range(len(ANSWER) + 1))
def test_split_at_every_position(cut: int) -> None:
    """Splitting the answer into two chunks at any position gives the same restored text."""
    assert stream([ANSWER[:cut], ANSWER[cut:]])[0] == EXPECTED


def test_one_character_per_chunk() -> None:
    """A stream of single characters restores every placeholder."""
    assert stream(list(ANSWER))[0] == EXPECTED


def test_random_three_way_splits() -> None:
    """Random three-chunk splits (seeded) all restore to the same text."""
    rng = random.Random(7)
    for _ in range(300):
        a, b = sorted(rng.sample(range(len(ANSWER) + 1), 2))
        assert stream([ANSWER[:a], ANSWER[a:b], ANSWER[b:]])[0] == EXPECTED


def test_text_is_released_as_soon_as_it_cannot_be_a_placeholder() -> None:
    """Only a possible start of a known placeholder is held back; other text flows at once."""
    _, outs = stream(["Hello <EM", "AIL_1> and <CARD", "_1> done <"])
    assert outs == ["Hello ", "jane@example.com and <CARD", "_1> done ", "<"]


def test_no_placeholders_passes_through() -> None:
    """With an empty map every chunk is returned unchanged at once."""
    restorer = PlaceholderRestorer({})
    assert restorer.feed("<EMAIL_1> x") == "<EMAIL_1> x"
    assert restorer.flush() == ""


def test_restored_values_are_not_restored_again() -> None:
    """A value that itself looks like a placeholder is emitted once, never expanded again."""
    mapping = {"<A_1>": "<B_1>", "<B_1>": "bee"}
    assert stream(["x <A_", "1> y"], mapping)[0] == "x <B_1> y"
