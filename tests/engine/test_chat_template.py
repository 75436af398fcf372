"""Chat templates: the model's own jinja template, rendered as transformers renders it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from handoffd.domain import Message, Role
from handoffd.engine.chat_template import (
    FALLBACK_TEMPLATE,
    ChatTemplate,
    find_template_source,
    token_text,
)
from handoffd.errors import InvalidRequest, ModelError

CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content']"
    " + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def test_chatml_render_with_generation_prompt() -> None:
    """Messages render in order and the assistant turn is opened."""
    text = ChatTemplate(CHATML).render(
        [Message(Role.SYSTEM, "be brief"), Message(Role.USER, "hi")]
    )
    assert text == (
        "<|im_start|>system\nbe brief<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_bos_eos_and_tools_reach_the_template() -> None:
    """bos_token, eos_token and tools (via tojson, non-ASCII kept) are template variables."""
    source = (
        "{{ bos_token }}{{ tools | tojson }}{% for m in messages %}{{ m.content }}{% endfor %}"
        "{{ eos_token }}"
    )
    template = ChatTemplate(source, bos_token="<s>", eos_token="</s>")
    tools = [{"name": "météo"}]
    assert template.render([Message(Role.USER, "x")], tools=tools) == (
        '<s>[{"name": "météo"}]x</s>'
    )


def test_raise_exception_becomes_invalid_request() -> None:
    """A template that calls raise_exception refuses the conversation with InvalidRequest."""
    source = (
        "{% if messages[0]['role'] != 'user' %}{{ raise_exception('first must be user') }}"
        "{% endif %}"
    )
    with pytest.raises(InvalidRequest, match="first must be user"):
        ChatTemplate(source).render([Message(Role.ASSISTANT, "hello")])


def test_trim_and_lstrip_blocks_like_transformers() -> None:
    """Block tags do not leave newlines or indentation behind (trim_blocks, lstrip_blocks)."""
    source = "{% for m in messages %}\n    {{ m.content }}\n{% endfor %}"
    assert ChatTemplate(source).render([Message(Role.USER, "a"), Message(Role.USER, "b")]) == (
        "    a\n    b\n"
    )


def test_sandbox_blocks_attribute_escapes() -> None:
    """The sandbox refuses access to Python internals from a template."""
    source = "{{ messages.__class__.__mro__ }}"
    with pytest.raises(InvalidRequest):
        ChatTemplate(source).render([Message(Role.USER, "x")])


def test_syntax_error_is_a_model_error_with_location() -> None:
    """A template that does not compile is a ModelError naming the file and line."""
    with pytest.raises(ModelError, match=r"tokenizer_config.json:2"):
        ChatTemplate("ok\n{% for %}", where="tokenizer_config.json")


def test_template_source_lookup_order(tmp_path: Path) -> None:
    """chat_template.jinja wins over tokenizer_config.json; named lists use 'default'."""
    config = {
        "chat_template": [
            {"name": "tool_use", "template": "T"},
            {"name": "default", "template": "D"},
        ]
    }
    assert find_template_source(tmp_path, config) == "D"
    assert find_template_source(tmp_path, {"chat_template": "S"}) == "S"
    assert find_template_source(tmp_path, {}) is None
    (tmp_path / "chat_template.json").write_text(json.dumps({"chat_template": "J"}))
    assert find_template_source(tmp_path, config) == "J"
    (tmp_path / "chat_template.jinja").write_text("F")
    assert find_template_source(tmp_path, config) == "F"


def test_fallback_template_for_base_models() -> None:
    """Without a template, role: content lines end with an open assistant turn."""
    text = ChatTemplate(FALLBACK_TEMPLATE).render([Message(Role.USER, "hey")])
    assert text == "user: hey\nassistant: "


def test_token_text_reads_both_spellings() -> None:
    """Special tokens in tokenizer_config.json are strings or {"content": ...} objects."""
    assert token_text("<s>") == "<s>"
    assert token_text({"content": "</s>", "lstrip": False}) == "</s>"
    assert token_text(None) == ""
