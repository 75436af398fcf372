"""Text in and out of token ids: the tokenizer, special tokens and streaming detokenizing.

:class:`TextCodec` wraps ``tokenizer.json`` (the ``tokenizers`` library) with what the engine
needs. Prompts are encoded without adding special tokens, since the chat template already writes
them. :class:`IncrementalDecoder` turns generated ids into text one id at a time, UTF-8 safe
(``tokenizers.decoders.DecodeStream``): an id that ends inside a multi-byte character yields
``""`` and the character appears with the id that completes it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tokenizers import Tokenizer
from tokenizers.decoders import DecodeStream

from handoffd.engine.chat_template import token_text
from handoffd.errors import ModelError


class IncrementalDecoder:
    """Streaming detokenizer for one generation (special tokens are skipped)."""

    __slots__ = ("_stream", "_tokenizer")

    def __init__(self, tokenizer: Tokenizer) -> None:
        self._tokenizer = tokenizer
        self._stream = DecodeStream(skip_special_tokens=True)

    def step(self, token_id: int) -> str:
        """The text that ``token_id`` completes (possibly ``""``)."""
        piece = self._stream.step(self._tokenizer, token_id)
        return piece or ""


class TextCodec:
    """The model's tokenizer and special tokens."""

    def __init__(self, tokenizer: Tokenizer, tokenizer_config: dict[str, Any]) -> None:
        self.tokenizer = tokenizer
        self.bos_token = token_text(tokenizer_config.get("bos_token"))
        self.eos_token = token_text(tokenizer_config.get("eos_token"))
        self.vocab_size = tokenizer.get_vocab_size(with_added_tokens=True)

    @classmethod
    def from_folder(cls, folder: Path, tokenizer_config: dict[str, Any]) -> TextCodec:
        path = folder / "tokenizer.json"
        try:
            tokenizer = Tokenizer.from_file(str(path))
        except Exception as exc:  # the Rust side raises plain Exception
            raise ModelError(
                f"{path}: cannot load the tokenizer ({exc}); re-export the model with a fast "
                "tokenizer (tokenizer.json)"
            ) from exc
        return cls(tokenizer, tokenizer_config)

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` as rendered (no special tokens added)."""
        ids: list[int] = self.tokenizer.encode(text, add_special_tokens=False).ids
        return ids

    def decode(self, ids: list[int]) -> str:
        text: str = self.tokenizer.decode(ids, skip_special_tokens=True)
        return text

    def token_id(self, token: str) -> int | None:
        if not token:
            return None
        value: int | None = self.tokenizer.token_to_id(token)
        return value

    def decoder(self) -> IncrementalDecoder:
        return IncrementalDecoder(self.tokenizer)
