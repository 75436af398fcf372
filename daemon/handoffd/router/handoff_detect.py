"""Find a ``handoff`` call in the local model's output, whole or while it streams.

:class:`HandoffCallDetector` is fed the answer's text piece by piece. It releases at once every
piece that cannot be part of a call and holds back text that might be: an opener
(``<tool_call>``, ``<|python_tag|>``, ``<|start|>``, ``<|channel|>``, a ``{`` that starts the
answer, the marker at the start of a line) or the end of the text that could still grow into one
(``<tool_c``). A held segment is released as soon as it is complete and not a handoff call (another
tool, ordinary JSON, a harmony message to someone else) or longer than :data:`MAX_HELD_CHARS`.
When a complete handoff call is found, the detector reports it and stops releasing text.

:func:`parse_handoff_call` runs the same machine over a whole text, so the streaming and the
whole-text answers never disagree. Formats: see :mod:`handoffd.router.handoff_tool`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from handoffd.router.handoff_tool import (
    MAX_REASON_CHARS,
    HandoffCall,
    call_from_object,
    decode_json_object,
    harmony_call,
    harmony_recipient,
    marker_reason,
)
from handoffd.schema.routing import DEFAULT_MARKER

HERMES_OPEN = "<tool_call>"
HERMES_CLOSE = "</tool_call>"
PYTHON_TAG = "<|python_tag|>"
HARMONY_OPENERS = ("<|start|>", "<|channel|>")
HARMONY_MESSAGE = "<|message|>"
HARMONY_CALL = "<|call|>"
#: a held segment longer than this is released as text (no call is that long)
MAX_HELD_CHARS = 4096

Kind = Literal["hermes", "json", "python_tag", "harmony", "marker"]
Formats = Literal["tool", "marker"]


@dataclass(frozen=True, slots=True)
class DetectStep:
    """``emit``: text that is safe to pass on now; ``call``: set once, when a call completes."""

    emit: str = ""
    call: HandoffCall | None = None


def _balanced_end(text: str, start: int) -> int | None:
    """Index just after the ``}`` that closes the ``{`` at ``start`` (JSON strings respected)."""
    depth = 0
    in_string = False
    escaped = False
    for i in range(start, len(text)):
        ch = text[i]
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
            if depth == 0:
                return i + 1
    return None


class HandoffCallDetector:
    """Streaming detector of a handoff call; one per local answer."""

    def __init__(self, *, formats: Formats = "tool", marker: str = DEFAULT_MARKER) -> None:
        self._marker = marker
        self._openers: tuple[tuple[str, Kind], ...]
        if formats == "tool":
            self._openers = (
                (HERMES_OPEN, "hermes"),
                (PYTHON_TAG, "python_tag"),
                *((o, "harmony") for o in HARMONY_OPENERS),
            )
        else:
            self._openers = ((marker, "marker"),)
        self._json_start = formats == "tool"
        self._full = ""
        self._base = 0
        self._buf = ""
        self.call: HandoffCall | None = None
        self.emitted_chars = 0

    # -- public -------------------------------------------------------------------------------

    def feed(self, text: str) -> DetectStep:
        """More generated text; returns what may be passed on and, once, the call."""
        if self.call is not None or not text:
            return DetectStep()
        self._full += text
        self._buf += text
        return self._scan(final=False)

    def finish(self) -> DetectStep:
        """The answer ended: parse what is held (a call may lack its closing tag) or release it."""
        if self.call is not None:
            return DetectStep()
        return self._scan(final=True)

    # -- machinery ----------------------------------------------------------------------------

    def _answer_started(self, absolute: int) -> bool:
        return bool(self._full[:absolute].strip())

    def _allowed(self, kind: Kind, absolute: int) -> bool:
        if kind == "marker":
            line = self._full[:absolute].rsplit("\n", 1)[-1]
            return not line.strip()
        return True

    def _find_opener(self) -> tuple[int, Kind, bool] | None:
        buf = self._buf
        found: list[tuple[int, int, Kind]] = []  # (index, 0 complete / 1 partial, kind)
        for opener, kind in self._openers:
            i = buf.find(opener)
            while i >= 0 and not self._allowed(kind, self._base + i):
                i = buf.find(opener, i + 1)
            if i >= 0:
                found.append((i, 0, kind))
            for k in range(min(len(opener) - 1, len(buf)), 0, -1):
                at = len(buf) - k
                if buf.endswith(opener[:k]) and self._allowed(kind, self._base + at):
                    found.append((at, 1, kind))
                    break
        if self._json_start and not self._answer_started(self._base):
            stripped = buf.lstrip()
            if not stripped:
                found.append((0, 1, "json"))
            elif stripped[0] == "{":
                found.append((len(buf) - len(stripped), 0, "json"))
        if not found:
            return None
        index, partial, kind = min(found)
        return index, kind, partial == 0

    def _segment_end(self, kind: Kind, seg: str) -> int | None:
        if kind == "hermes":
            close = seg.find(HERMES_CLOSE, len(HERMES_OPEN))
            return close + len(HERMES_CLOSE) if close >= 0 else None
        if kind == "json":
            return _balanced_end(seg, 0)
        if kind == "python_tag":
            rest = seg[len(PYTHON_TAG) :]
            body = rest.lstrip()
            if not body:
                return None
            if body[0] != "{":
                return len(PYTHON_TAG)
            return _balanced_end(seg, len(seg) - len(body))
        if kind == "harmony":
            message = seg.find(HARMONY_MESSAGE)
            if message < 0:
                return None
            if harmony_recipient(seg[:message]) != "handoff":
                return message + len(HARMONY_MESSAGE)
            call = seg.find(HARMONY_CALL, message)
            return call + len(HARMONY_CALL) if call >= 0 else None
        newline = seg.find("\n", len(self._marker))
        if newline >= 0:
            return newline + 1
        if len(seg) - len(self._marker) > MAX_REASON_CHARS:
            return len(seg)
        return None

    def _parse(self, kind: Kind, seg: str) -> HandoffCall | None:
        if kind == "hermes":
            body = seg[len(HERMES_OPEN) :]
            if body.endswith(HERMES_CLOSE):
                body = body[: -len(HERMES_CLOSE)]
            decoded = decode_json_object(body)
            if decoded is None or body[decoded[1] :].strip():
                return None
            return call_from_object(decoded[0], "hermes")
        if kind in ("json", "python_tag"):
            body = seg[len(PYTHON_TAG) :] if kind == "python_tag" else seg
            decoded = decode_json_object(body)
            if decoded is None:
                return None
            return call_from_object(decoded[0], "llama_json")
        if kind == "harmony":
            message = seg.find(HARMONY_MESSAGE)
            if message < 0 or harmony_recipient(seg[:message]) != "handoff":
                return None
            body = seg[message + len(HARMONY_MESSAGE) :]
            if body.endswith(HARMONY_CALL):
                body = body[: -len(HARMONY_CALL)]
            return harmony_call(body)
        return HandoffCall(format="marker", reason=marker_reason(seg[len(self._marker) :]))

    def _take(self, n: int) -> str:
        piece, self._buf = self._buf[:n], self._buf[n:]
        self._base += len(piece)
        return piece

    def _scan(self, *, final: bool) -> DetectStep:
        out: list[str] = []
        while self._buf and self.call is None:
            found = self._find_opener()
            if found is None:
                out.append(self._take(len(self._buf)))
                break
            index, kind, complete = found
            out.append(self._take(index))
            if not complete:
                if final:
                    out.append(self._take(len(self._buf)))
                break
            end = self._segment_end(kind, self._buf)
            if end is None:
                if final:
                    self.call = self._parse(kind, self._buf)
                    if self.call is None:
                        out.append(self._take(len(self._buf)))
                elif len(self._buf) > MAX_HELD_CHARS:
                    out.append(self._take(len(self._buf)))
                break
            self.call = self._parse(kind, self._buf[:end])
            if self.call is None:
                out.append(self._take(end))
        emitted = "".join(out)
        self.emitted_chars += len(emitted)
        if self.call is not None:
            self._buf = ""
        return DetectStep(emit=emitted, call=self.call)


def parse_handoff_call(
    text: str, *, formats: Formats = "tool", marker: str = DEFAULT_MARKER
) -> HandoffCall | None:
    """The handoff call in a whole answer, or None (same rules as the streaming detector)."""
    detector = HandoffCallDetector(formats=formats, marker=marker)
    detector.feed(text)
    detector.finish()
    return detector.call
