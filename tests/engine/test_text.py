"""Streaming detokenizing is UTF-8 safe: split characters appear whole, once."""

from __future__ import annotations

from handoffd.engine.text import TextCodec
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers


def _byte_level_tokenizer() -> Tokenizer:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<|eos|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(["hello world, plain ascii text only"] * 20, trainer)
    return tokenizer


def test_multibyte_characters_split_across_tokens_stream_whole() -> None:
    """Each emitted piece is valid text; the pieces join to the full decoded string."""
    codec = TextCodec(_byte_level_tokenizer(), {"eos_token": "<|eos|>"})
    text = "hello 漢字 and é, 🙂!"
    ids = codec.encode(text)
    assert len(ids) > len(text.split())  # the CJK and emoji characters are split into bytes
    decoder = codec.decoder()
    pieces = [decoder.step(i) for i in ids]
    assert "".join(pieces) == text
    assert "" in pieces  # some ids completed no character yet
    assert all("\ufffd" not in p for p in pieces)


def test_special_tokens_are_skipped_when_streaming() -> None:
    """The EOS token contributes no text."""
    codec = TextCodec(_byte_level_tokenizer(), {"eos_token": "<|eos|>"})
    eos = codec.token_id("<|eos|>")
    assert eos is not None
    decoder = codec.decoder()
    assert "".join(decoder.step(i) for i in [*codec.encode("hello"), eos]) == "hello"
