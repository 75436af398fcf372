"""Stop sequences while streaming: split stops are held back and never shown."""

from __future__ import annotations

from handoffd.engine.stops import StopSequenceFilter


def _stream(stops: list[str], pieces: list[str]) -> tuple[str, bool]:
    f = StopSequenceFilter(stops)
    shown = "".join(f.push(p) for p in pieces)
    if not f.stopped:
        shown += f.flush()
    return shown, f.stopped


def test_stop_split_across_tokens_is_cut_cleanly() -> None:
    """A stop string arriving in three pieces is never shown, not even its first half."""
    f = StopSequenceFilter(["\nUser:"])
    assert f.push("Hello") == "Hello"
    assert f.push(" there\nUs") == " there"
    assert f.push("er") == ""
    assert f.push(": more") == ""
    assert f.stopped


def test_held_text_is_released_when_it_turns_out_not_to_be_a_stop() -> None:
    """Text held because it could start a stop comes out once it cannot."""
    f = StopSequenceFilter(["STOP"])
    assert f.push("ST") == ""
    assert f.push("ART") == "START"
    assert not f.stopped


def test_flush_releases_held_tail_at_the_end() -> None:
    """At the end of generation the held-back tail is shown (no stop came)."""
    assert _stream(["</end>"], ["done </e"]) == ("done </e", False)


def test_earliest_of_several_stops_wins() -> None:
    """With several stops the earliest occurrence in the text ends the stream."""
    assert _stream(["bb", "a"], ["xxbb a"]) == ("xx", True)


def test_no_stops_passes_text_through() -> None:
    """Without stop sequences nothing is held back."""
    f = StopSequenceFilter([])
    assert f.push("abc") == "abc"
    assert f.flush() == ""


def test_nothing_is_shown_after_the_stop() -> None:
    """Once stopped, later pieces and flush show nothing."""
    f = StopSequenceFilter(["."])
    assert f.push("one. two") == "one"
    assert f.push("three") == ""
    assert f.flush() == ""


def test_stop_inside_one_piece_keeps_text_before_it() -> None:
    """A stop contained in one token's text cuts inside that token."""
    assert _stream(["\n\n"], ["a", "b\n\nc"]) == ("ab", True)


def test_empty_stop_strings_are_ignored() -> None:
    """An empty stop string would match everywhere; it is dropped."""
    assert _stream(["", "z"], ["abc"]) == ("abc", False)
