"""Build a tiny RANDOM Llama-style model and export it to ONNX (runs ONLY in a build venv).

    python make_tiny.py --layout genai|optimum --out DIR [--seed N]

2 layers, hidden 64, 4 heads over 2 KV heads (GQA), intermediate 128, 512 positions, and a
byte-level BPE tokenizer (vocab 512) trained deterministically on a fixed corpus, with the
ChatML special tokens and chat template of SmolLM2-Instruct. Same seed, same files.
The ``genai`` layout goes through the onnxruntime-genai builder (``-p fp32 -e cpu``), the
``optimum`` layout through Optimum's ``text-generation-with-past`` export (fp32).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

from _common import (
    export_optimum,
    fail,
    normalize_tokenizer_files,
    progress,
    result,
    run_genai_builder,
    versions,
)

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]  # ids 0, 1, 2 as in SmolLM2
VOCAB_SIZE = 512
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a tiny test model.<|im_end|>\\n' }}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
_WORD_TEXT = (
    "the a an of to in is was for on that with as by at from it this be are or not have has "
    "what which who where when why how capital city country river mountain number answer "
    "question model device cloud local policy budget request token tokens stream paris france "
    "london berlin rome madrid water fire earth air one two three four five six seven eight "
    "nine ten hello world please thank you yes no maybe answer small large quick brown fox "
    "jumps over lazy dog 0 1 2 3 4 5 6 7 8 9 + - * / = ? ! . , ; : ( ) é ü ß 東京 😀"
)
_WORDS = _WORD_TEXT.split()


def corpus() -> list[str]:
    """A fixed corpus (no randomness): every word pair, plus some ChatML-shaped lines."""
    lines = [f"{a} {b}" for a in _WORDS for b in _WORDS[::7]]
    lines += [
        "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n",
        "<|im_start|>assistant\nThe capital of France is Paris.<|im_end|>\n",
        "The quick brown fox jumps over the lazy dog. 12 + 30 = 42.",
    ]
    return lines


def train_tokenizer(out: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus(), trainer=trainer)
    special = {  # as in SmolLM2-Instruct
        "bos_token": "<|im_start|>",
        "eos_token": "<|im_end|>",
        "unk_token": "<|endoftext|>",
        "pad_token": "<|im_end|>",
    }
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, model_max_length=512, **special)
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(str(out))
    normalize_tokenizer_files(out, CHAT_TEMPLATE)


def build_checkpoint(out: Path, seed: int, vocab_size: int) -> None:
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=512,
        rms_norm_eps=1e-5,
        rope_theta=10000.0,
        # A wide init spreads the logits, so greedy picks are far from ties and parity tests
        # between implementations do not hinge on the last float bit.
        initializer_range=0.25,
        tie_word_embeddings=False,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=2,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).to(torch.float32).eval()
    model.generation_config = GenerationConfig(bos_token_id=1, eos_token_id=2, pad_token_id=2)
    model.save_pretrained(str(out))


def export_tiny_optimum(hf_dir: Path, out: Path) -> None:
    export_optimum(hf_dir, out)
    normalize_tokenizer_files(out, CHAT_TEMPLATE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layout", choices=["genai", "optimum"], required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    out: Path = args.out
    if out.exists() and any(out.iterdir()):
        fail(f"{out} is not empty; give an empty or new folder")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    with tempfile.TemporaryDirectory(prefix="tiny-hf-") as tmp:
        hf_dir = Path(tmp)
        progress(0.05, "training the tiny tokenizer")
        train_tokenizer(hf_dir)
        vocab = len(json.loads((hf_dir / "tokenizer.json").read_text("utf-8"))["model"]["vocab"])
        progress(0.25, "building the random checkpoint")
        build_checkpoint(hf_dir, args.seed, vocab)
        out.mkdir(parents=True, exist_ok=True)
        progress(0.40, f"exporting with the {args.layout} route")
        if args.layout == "genai":
            run_genai_builder(hf_dir, out, "fp32")
            normalize_tokenizer_files(out, CHAT_TEMPLATE)
        else:
            export_tiny_optimum(hf_dir, out)
    progress(1.0, "tiny model ready")
    tools = (
        "torch",
        "transformers",
        "tokenizers",
        "onnxruntime",
        "onnxruntime-genai",
        "optimum",
        "optimum-onnx",
        "onnx",
    )
    result(
        {
            "layout": args.layout,
            "seed": args.seed,
            "vocab_size": vocab,
            "build_tools": versions(*tools),
        }
    )


if __name__ == "__main__":
    main()
