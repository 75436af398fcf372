"""What the pipeline tells the router about a request before anything is generated."""

from __future__ import annotations

from dataclasses import dataclass

from handoffd.domain import ChatRequest, Role
from handoffd.schema.routing import Capability


@dataclass(frozen=True, slots=True)
class RouteInput:
    """A request plus the facts the router cannot compute itself (it does no I/O).

    ``prompt_tokens`` is the rendered prompt as the local model's tokenizer counts it (chat
    template included); ``needs`` lists the capabilities the request uses (the transport knows:
    ``tools`` for tool definitions, ``images`` for image parts, ``json_schema`` for a structured
    output format); ``cloud_allowed`` is the policy's verdict on handing this request off at all.
    """

    request: ChatRequest
    prompt_tokens: int
    context_window: int
    needs: frozenset[Capability] = frozenset()
    cloud_allowed: bool = True

    @property
    def question(self) -> str:
        """The last user message (what the scorers judge); empty if there is none."""
        for message in reversed(self.request.messages):
            if message.role is Role.USER:
                return message.content
        return ""

    @property
    def user_text(self) -> str:
        """Every user message, joined by blank lines (what keyword and regex rules search)."""
        return "\n\n".join(m.content for m in self.request.messages if m.role is Role.USER)

    @property
    def max_tokens(self) -> int:
        return self.request.params.max_tokens
