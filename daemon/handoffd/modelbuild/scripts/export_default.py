"""GGUF -> fp32 HF checkpoint -> onnxruntime-genai build (runs ONLY in the "genai" build venv).

    python export_default.py --gguf FILE --out DIR [--precision int8|int4|fp32] [--work DIR]
                             [--builder-option KEY=VALUE ...]
    python export_default.py --gguf FILE --out DIR --checkpoint-only

``--checkpoint-only`` stops at the fp32 HF checkpoint (for the Optimum route, which runs in the
other venv: ``export_optimum.py``); its config.json also carries ``rope_theta`` at the top
level, since transformers 4.x does not read transformers 5's ``rope_parameters`` and would
silently fall back to rope_theta 10000 (this model uses 100000).

Traps handled here (transformers 5.24, onnxruntime-genai 0.18, onnxruntime 1.31/1.32):
- transformers refuses ``save_pretrained`` on a GGUF-loaded model until the gguf quantization
  config and quantizer are removed (the weights are already dequantized to fp32).
- transformers 5 writes the chat template only to ``chat_template.jinja`` and names its own
  ``TokenizersBackend`` class; ``tokenizer_config.json`` is rewritten to carry both.
- the builder options (asymmetric int8, pruned LM head) come from the daemon side
  (``handoffd.modelbuild.default_model.BUILDER_OPTIONS``, where the reasons are written down) as
  ``--builder-option`` arguments. The golden check with onnxruntime-genai's own generator fails
  the build if the answer is wrong.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from _common import (
    fail,
    greedy_genai,
    normalize_tokenizer_files,
    progress,
    result,
    run_genai_builder,
    versions,
)

EXPECTED_EOS = "<|im_end|>"
GOLDEN_PROMPT = "What is the capital of France?"
GOLDEN_EXPECTED = "Paris"
GOLDEN_TOKENS = 32
PRECISIONS = ("int8", "int4", "fp32")
TOOLS = (
    "torch",
    "transformers",
    "gguf",
    "accelerate",
    "onnxruntime",
    "onnxruntime-genai",
    "onnx",
    "onnx-ir",
    "tokenizers",
)


def gguf_to_checkpoint(gguf: Path, hf_dir: Path) -> dict[str, Any]:
    """Load the GGUF (dequantized to fp32) and save a plain HF checkpoint; return token facts."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with contextlib.redirect_stdout(sys.stderr):
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(
            str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
        )
    if tokenizer.eos_token != EXPECTED_EOS:
        fail(
            f"the GGUF tokenizer came out with eos {tokenizer.eos_token!r}, not {EXPECTED_EOS!r}:"
            " transformers < 5 converts this GGUF wrongly; rebuild the genai build venv"
        )
    template = tokenizer.chat_template
    if not isinstance(template, str) or "<|im_start|>" not in template:
        fail("the GGUF carries no ChatML chat template; is it SmolLM2-Instruct?")
    # The weights are plain fp32 now; drop what makes transformers refuse to save them.
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.hf_quantizer = None
    with contextlib.redirect_stdout(sys.stderr):
        model.save_pretrained(str(hf_dir))
        tokenizer.save_pretrained(str(hf_dir))
    return {
        "chat_template": template,
        "bos_token": tokenizer.bos_token,
        "eos_token": tokenizer.eos_token,
        "pad_token": tokenizer.pad_token,
        "unk_token": tokenizer.unk_token,
        "eos_token_id": tokenizer.eos_token_id,
        "bos_token_id": tokenizer.bos_token_id,
        "config": json.loads((hf_dir / "config.json").read_text("utf-8")),
    }


def make_checkpoint_portable(hf_dir: Path, chat_template: str) -> None:
    """Let transformers 4.x read the checkpoint the same way (rope, tokenizer class, template)."""
    path = hf_dir / "config.json"
    config = json.loads(path.read_text("utf-8"))
    rope = config.get("rope_parameters")
    if isinstance(rope, dict) and "rope_theta" in rope:
        config.setdefault("rope_theta", rope["rope_theta"])
        if rope.get("rope_type", "default") == "default":
            config.setdefault("rope_scaling", None)
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    normalize_tokenizer_files(hf_dir, chat_template)


def golden_check(out: Path, chat_template_ok: bool) -> str:
    """Greedy answer to the golden prompt with onnxruntime-genai's own generator."""
    import onnxruntime_genai as og

    model = og.Model(str(out))
    tokenizer = og.Tokenizer(model)
    messages = json.dumps([{"role": "user", "content": GOLDEN_PROMPT}])
    prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True)
    if chat_template_ok and not prompt.endswith("<|im_start|>assistant\n"):
        fail("onnxruntime-genai rendered the chat template without the assistant prompt")
    ids = [int(t) for t in tokenizer.encode(prompt)]
    answer_ids = greedy_genai(out, ids, GOLDEN_TOKENS)
    answer: str = tokenizer.decode(answer_ids)
    if GOLDEN_EXPECTED not in answer:
        fail(
            f"golden check failed: the built model's greedy answer to {GOLDEN_PROMPT!r} does not "
            f"contain {GOLDEN_EXPECTED!r} (got {answer[:80]!r}); the graph is broken"
        )
    return answer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gguf", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--precision", choices=PRECISIONS, default="int8")
    parser.add_argument(
        "--builder-option", action="append", default=[], metavar="KEY=VALUE",
        help="an onnxruntime-genai builder extra option (repeatable)",
    )
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (~600 MB)")
    parser.add_argument("--checkpoint-only", action="store_true", help="stop at the HF checkpoint")
    args = parser.parse_args()
    gguf: Path = args.gguf
    out: Path = args.out
    if not gguf.is_file():
        fail(f"GGUF file {gguf} not found")
    if out.exists() and any(out.iterdir()):
        fail(f"{out} is not empty; give an empty or new folder")
    if args.work is not None:
        args.work.mkdir(parents=True, exist_ok=True)
    if args.checkpoint_only:
        progress(0.05, "loading the GGUF (dequantizing to fp32)")
        facts = gguf_to_checkpoint(gguf, out)
        make_checkpoint_portable(out, facts["chat_template"])
        progress(1.0, "fp32 checkpoint written")
        result({"precision": "fp32", "build_tools": versions(*TOOLS), **_token_facts(facts)})
        return

    with tempfile.TemporaryDirectory(prefix="hf-ckpt-", dir=args.work) as tmp:
        hf_dir = Path(tmp)
        progress(0.02, "loading the GGUF (dequantizing to fp32)")
        facts = gguf_to_checkpoint(gguf, hf_dir)
        progress(0.40, f"building the ONNX graph ({args.precision}) with onnxruntime-genai")
        out.mkdir(parents=True, exist_ok=True)
        run_genai_builder(hf_dir, out, args.precision, args.builder_option)
        progress(0.85, "writing tokenizer files")
        normalize_tokenizer_files(out, facts["chat_template"])
        shutil.copy2(hf_dir / "generation_config.json", out / "generation_config.json")
    progress(0.90, "golden check with onnxruntime-genai")
    golden_check(out, chat_template_ok=True)
    progress(1.0, "default model built")
    result(
        {
            "precision": args.precision,
            "build_tools": versions(*TOOLS),
            "golden": {"prompt": GOLDEN_PROMPT, "expected_substring": GOLDEN_EXPECTED},
            **_token_facts(facts),
        }
    )


def _token_facts(facts: dict[str, Any]) -> dict[str, Any]:
    keys = ("bos_token", "eos_token", "pad_token", "unk_token", "bos_token_id", "eos_token_id")
    return {"chat_template": facts["chat_template"], **{k: facts[k] for k in keys}}


if __name__ == "__main__":
    main()
