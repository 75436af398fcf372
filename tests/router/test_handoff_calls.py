"""Model-initiated handoff: real-format calls parse, near misses do not, streams agree."""

from __future__ import annotations

import json

import pytest
from handoffd.router.handoff_detect import HandoffCallDetector, parse_handoff_call
from handoffd.router.handoff_tool import (
    HANDOFF_TOOL_NAME,
    handoff_tool_schema,
    marker_instruction,
)

HERMES = (
    '<tool_call>\n{"name": "handoff", "arguments": {"reason": "needs exact arithmetic"}}\n'
    "</tool_call>"
)
HERMES_STRING_ARGS = (
    '<tool_call>{"name": "handoff", "arguments": "{\\"reason\\": \\"unknown fact\\"}"}</tool_call>'
)
LLAMA_JSON = '{"name": "handoff", "parameters": {"reason": "I do not know this"}}'
LLAMA_TAG = '<|python_tag|>{"name": "handoff", "parameters": {"reason": "too hard"}}<|eom_id|>'
HARMONY = (
    "<|channel|>analysis<|message|>The user wants a product of big numbers.<|end|>"
    "<|start|>assistant<|channel|>commentary to=functions.handoff <|constrain|>json"
    '<|message|>{"reason": "big multiplication"}<|call|>'
)
HARMONY_ROLE_RECIPIENT = (
    "<|start|>assistant to=functions.handoff<|channel|>commentary json"
    '<|message|>{"reason": "obscure fact"}<|call|>'
)

CALLS = [
    (HERMES, "hermes", "needs exact arithmetic"),
    (HERMES_STRING_ARGS, "hermes", "unknown fact"),
    (LLAMA_JSON, "llama_json", "I do not know this"),
    (LLAMA_TAG, "llama_json", "too hard"),
    (HARMONY, "harmony", "big multiplication"),
    (HARMONY_ROLE_RECIPIENT, "harmony", "obscure fact"),
]
#: where the call itself starts in each sample (text before it is ordinary output)
CALL_STARTS = {
    HERMES: "<tool_call>",
    HERMES_STRING_ARGS: "<tool_call>",
    LLAMA_JSON: "{",
    LLAMA_TAG: "<|python_tag|>",
    HARMONY: "<|start|>assistant<|channel|>commentary",
    HARMONY_ROLE_RECIPIENT: "<|start|>",
}

NEAR_MISSES = [
    # another tool
    '<tool_call>{"name": "get_weather", "arguments": {"city": "Oslo"}}</tool_call>',
    # the name differs by case / suffix
    '<tool_call>{"name": "Handoff", "arguments": {"reason": "x"}}</tool_call>',
    '<tool_call>{"name": "handoff_v2", "arguments": {"reason": "x"}}</tool_call>',
    # broken JSON inside the tags
    '<tool_call>{"name": "handoff", "arguments": {"reason": "x"}</tool_call>',
    # text after the JSON inside the tags
    '<tool_call>{"name": "handoff", "arguments": {}} and more</tool_call>',
    # arguments that are not an object
    '<tool_call>{"name": "handoff", "arguments": ["x"]}</tool_call>',
    # a Llama-style call that is not the start of the answer
    'You could call {"name": "handoff", "parameters": {"reason": "x"}} if you like.',
    # plain JSON answer
    '{"city": "Paris", "country": "France"}',
    # harmony message to another function
    "<|start|>assistant<|channel|>commentary to=functions.handoff_later <|constrain|>json"
    '<|message|>{"reason": "x"}<|call|>',
    "<|channel|>final<|message|>The answer is 42.<|return|>",
    # prose that mentions the tool
    "I will not call the handoff tool; the capital of France is Paris.",
]


@pytest.mark.parametrize(("text", "fmt", "reason"), CALLS)
def test_real_formats_parse(text: str, fmt: str, reason: str) -> None:
    """Each family's real call format is recognised with its stated reason."""
    call = parse_handoff_call(text, formats="tool")
    assert call is not None
    assert call.format == fmt
    assert call.reason == reason


@pytest.mark.parametrize("text", NEAR_MISSES)
def test_near_misses_do_not_parse(text: str) -> None:
    """Other tools, wrong names, broken JSON and mere mentions are not handoff calls."""
    assert parse_handoff_call(text, formats="tool") is None


@pytest.mark.parametrize("text", NEAR_MISSES)
def test_near_misses_stream_through_unchanged(text: str) -> None:
    """Text that is not a call comes out whole and in order, whatever the chunking."""
    detector = HandoffCallDetector(formats="tool")
    out = [detector.feed(text[i : i + 3]).emit for i in range(0, len(text), 3)]
    out.append(detector.finish().emit)
    assert "".join(out) == text
    assert detector.call is None


@pytest.mark.parametrize(("text", "fmt", "reason"), CALLS)
def test_call_split_at_every_point_is_found_and_nothing_leaks(
    text: str, fmt: str, reason: str
) -> None:
    """A call split across two stream chunks anywhere is found; exactly the text before the
    call is emitted (for harmony that includes the analysis message), none of the call."""
    prefix = "" if fmt == "llama_json" else "Let me check. "
    whole = prefix + text
    before = whole[: whole.index(CALL_STARTS[text])]
    for cut in range(1, len(whole)):
        detector = HandoffCallDetector(formats="tool")
        first = detector.feed(whole[:cut])
        second = detector.feed(whole[cut:])
        final = detector.finish()
        emitted = first.emit + second.emit + final.emit
        call = first.call or second.call or final.call
        assert call is not None, cut
        assert call.reason == reason
        assert emitted == before, (cut, emitted)


def test_call_token_by_token_reports_once() -> None:
    """Fed one character at a time, the call is reported exactly once, at its end."""
    detector = HandoffCallDetector(formats="tool")
    steps = [detector.feed(ch) for ch in HERMES]
    calls = [s.call for s in steps if s.call is not None]
    assert len(calls) == 1
    assert steps[-1].call is not None
    assert detector.feed("more text").emit == ""


def test_plain_text_streams_without_delay() -> None:
    """Ordinary text is passed on as it arrives (nothing held back)."""
    detector = HandoffCallDetector(formats="tool")
    assert detector.feed("The capital ").emit == "The capital "
    assert detector.feed("of France is Paris.").emit == "of France is Paris."


def test_possible_opener_is_held_until_resolved() -> None:
    """A chunk ending in what may start an opener is held, then released when it is not one."""
    detector = HandoffCallDetector(formats="tool")
    assert detector.feed("Answer: <tool_c").emit == "Answer: "
    assert detector.feed("ould be long>").emit == "<tool_could be long>"


def test_hermes_call_without_closing_tag_parses_at_end() -> None:
    """A Hermes call cut off by EOS before </tool_call> still counts when the JSON is whole."""
    text = '<tool_call>{"name": "handoff", "arguments": {"reason": "late"}}'
    assert parse_handoff_call(text, formats="tool") is not None


def test_other_tool_call_is_released_as_text() -> None:
    """A complete call of another tool is handed on as text (the router ignores it)."""
    text = '<tool_call>{"name": "search", "arguments": {"q": "x"}}</tool_call> done'
    detector = HandoffCallDetector(formats="tool")
    emitted = detector.feed(text).emit + detector.finish().emit
    assert emitted == text


MARKER_CALLS = [
    ("[[HANDOFF]]: I do not know this fact.", "I do not know this fact."),
    ("  [[HANDOFF]] needs exact math", "needs exact math"),
    ("[[HANDOFF]]", ""),
    ("Let me think.\n[[HANDOFF]]: too many steps\nSorry.", "too many steps"),
]
MARKER_MISSES = [
    "Use the marker [[HANDOFF]] when unsure.",  # not at the start of a line
    "[[handoff]]: lower case is not the marker",
    "[HANDOFF]: one bracket",
    "[[HAND OFF]]: a space",
]


@pytest.mark.parametrize(("text", "reason"), MARKER_CALLS)
def test_marker_parses_at_line_start(text: str, reason: str) -> None:
    """The marker at the start of a line is a handoff with the rest of the line as reason."""
    call = parse_handoff_call(text, formats="marker")
    assert call is not None
    assert call.format == "marker"
    assert call.reason == reason


@pytest.mark.parametrize("text", MARKER_MISSES)
def test_marker_near_misses(text: str) -> None:
    """Mid-line mentions and misspelt markers are not handoffs."""
    assert parse_handoff_call(text, formats="marker") is None


def test_marker_mode_ignores_tool_formats() -> None:
    """In marker mode a JSON answer streams at once and tool syntax is not a call."""
    detector = HandoffCallDetector(formats="marker")
    assert detector.feed('{"a": 1}').emit == '{"a": 1}'
    assert parse_handoff_call(HERMES, formats="marker") is None


def test_marker_split_across_chunks() -> None:
    """A marker split across chunks is held (never shown) and found."""
    detector = HandoffCallDetector(formats="marker")
    assert detector.feed("[[HAND").emit == ""
    assert detector.feed("OFF]]: unsure").emit == ""
    step = detector.finish()
    assert step.call is not None
    assert step.call.reason == "unsure"


def test_custom_marker() -> None:
    """A configured marker replaces the default one."""
    assert parse_handoff_call("<<CLOUD>> why", formats="marker", marker="<<CLOUD>>") is not None
    assert parse_handoff_call("[[HANDOFF]] why", formats="marker", marker="<<CLOUD>>") is None


def test_tool_schema_and_instruction() -> None:
    """The tool schema is a valid OpenAI function with a required reason; the instruction
    names the marker."""
    schema = handoff_tool_schema()
    json.dumps(schema)
    assert schema["function"]["name"] == HANDOFF_TOOL_NAME
    assert schema["function"]["parameters"]["required"] == ["reason"]
    assert "[[HANDOFF]]" in marker_instruction("[[HANDOFF]]")


def test_reason_is_cleaned_and_bounded() -> None:
    """Whitespace in the stated reason is collapsed and its length capped."""
    long_reason = "word " * 200
    call = parse_handoff_call(
        json.dumps({"name": "handoff", "parameters": {"reason": long_reason}}), formats="tool"
    )
    assert call is not None
    assert len(call.reason) <= 300
    assert "  " not in call.reason
