"""Rendering a conversation with the model's own chat template.

The template comes from ``chat_template.jinja`` or the ``chat_template`` key of
``tokenizer_config.json`` (a string, or a list of ``{"name", "template"}`` entries of which
``default`` is used). It is rendered the way ``transformers`` renders it: a sandboxed jinja2
environment with ``trim_blocks``/``lstrip_blocks``, the ``loopcontrols`` extension, a ``tojson``
filter that keeps non-ASCII text, and the globals ``raise_exception`` and ``strftime_now``; the
variables are ``messages``, ``bos_token``, ``eos_token``, ``add_generation_prompt`` and ``tools``.

A folder without any template (a base model) gets a plain ``role: content`` rendering and a
warning at load.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

import jinja2
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

from handoffd.domain import Message
from handoffd.errors import InvalidRequest, ModelError

#: used when a model folder carries no template at all
FALLBACK_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] }}: {{ message['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant: {% endif %}"
)


class TemplateRaised(Exception):
    """``raise_exception(...)`` was called by the template (the conversation is not allowed)."""


def _raise_exception(message: str) -> NoReturn:
    raise TemplateRaised(message)


def _tojson(
    value: Any, ensure_ascii: bool = False, indent: int | None = None, separators: Any = None,
    sort_keys: bool = False,
) -> str:
    return json.dumps(
        value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
    )


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)  # templates want local time


def token_text(value: Any) -> str:
    """``bos_token``/``eos_token`` in tokenizer_config.json are a string or ``{"content": ...}``."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping) and isinstance(value.get("content"), str):
        return str(value["content"])
    return ""


def find_template_source(folder: Path, tokenizer_config: Mapping[str, Any]) -> str | None:
    """The template text a folder carries, or ``None``."""
    jinja_file = folder / "chat_template.jinja"
    if jinja_file.is_file():
        return jinja_file.read_text(encoding="utf-8")
    json_file = folder / "chat_template.json"
    if json_file.is_file():
        data = json.loads(json_file.read_text(encoding="utf-8"))
        if isinstance(data, Mapping) and isinstance(data.get("chat_template"), str):
            return str(data["chat_template"])
    template = tokenizer_config.get("chat_template")
    if isinstance(template, str):
        return template
    if isinstance(template, list):
        named = {
            t.get("name"): t.get("template") for t in template if isinstance(t, Mapping)
        }
        chosen = named.get("default")
        if isinstance(chosen, str):
            return chosen
    return None


class ChatTemplate:
    """A compiled chat template and the special-token strings it is rendered with."""

    def __init__(
        self, source: str, *, bos_token: str = "", eos_token: str = "", where: str = "template"
    ) -> None:
        env = ImmutableSandboxedEnvironment(
            trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols]
        )
        env.filters["tojson"] = _tojson
        env.globals["raise_exception"] = _raise_exception
        env.globals["strftime_now"] = _strftime_now
        try:
            self._template = env.from_string(source)
        except jinja2.TemplateSyntaxError as exc:
            raise ModelError(
                f"{where}:{exc.lineno}: the chat template does not compile ({exc.message}); "
                "fix chat_template in tokenizer_config.json or chat_template.jinja"
            ) from exc
        self.source = source
        self.bos_token = bos_token
        self.eos_token = eos_token

    def render(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
        add_generation_prompt: bool = True,
    ) -> str:
        """The prompt text for ``messages``; :class:`InvalidRequest` if the template refuses."""
        payload = [{"role": str(m.role), "content": m.content} for m in messages]
        try:
            return self._template.render(
                messages=payload,
                tools=[dict(t) for t in tools] if tools else None,
                bos_token=self.bos_token,
                eos_token=self.eos_token,
                add_generation_prompt=add_generation_prompt,
            )
        except TemplateRaised as exc:
            raise InvalidRequest(
                f"the model's chat template rejected the conversation: {exc}", field="messages"
            ) from exc
        except (jinja2.TemplateError, TypeError, KeyError, ValueError) as exc:
            raise InvalidRequest(
                f"the model's chat template failed on this conversation ({type(exc).__name__}: "
                f"{exc}); check the message roles and order",
                field="messages",
            ) from exc
