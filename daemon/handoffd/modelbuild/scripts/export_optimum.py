"""HF checkpoint -> Optimum ONNX export, fp32 (runs ONLY in the "optimum" build venv).

    python export_optimum.py --hf DIR --out DIR [--golden-prompt P --golden-expected S]

``--task text-generation-with-past``: inputs input_ids, attention_mask, position_ids,
past_key_values.N.key/value; outputs logits, present.N.key/value. The tokenizer files and the
chat template are copied from the checkpoint. With a golden prompt, Optimum's own
``ORTModelForCausalLM.generate`` (greedy) must answer with the expected text.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

from _common import export_optimum, fail, normalize_tokenizer_files, progress, result, versions

GOLDEN_TOKENS = 32
TOOLS = ("torch", "transformers", "optimum", "optimum-onnx", "onnx", "onnxruntime", "tokenizers")


def export(hf_dir: Path, out: Path) -> None:
    export_optimum(hf_dir, out)
    config = json.loads((hf_dir / "tokenizer_config.json").read_text("utf-8"))
    template = config.get("chat_template")
    if not isinstance(template, str):
        fail(f"{hf_dir}/tokenizer_config.json has no chat_template to carry over")
    normalize_tokenizer_files(out, template)


def golden_check(out: Path, prompt: str, expected: str) -> None:
    import torch
    from optimum.onnxruntime import ORTModelForCausalLM
    from transformers import AutoTokenizer

    with contextlib.redirect_stdout(sys.stderr):
        tokenizer = AutoTokenizer.from_pretrained(str(out))
        model = ORTModelForCausalLM.from_pretrained(str(out), use_cache=True)
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=False
        )
        ids = torch.tensor([tokenizer.encode(text, add_special_tokens=False)], dtype=torch.int64)
        new = model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=GOLDEN_TOKENS,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
        )[0, ids.shape[1] :]
    answer = tokenizer.decode(new, skip_special_tokens=True)
    if expected not in answer:
        fail(
            f"golden check failed: Optimum's greedy answer does not contain {expected!r} "
            f"(got {answer[:80]!r}); the export is broken"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hf", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--golden-prompt", default=None)
    parser.add_argument("--golden-expected", default=None)
    args = parser.parse_args()
    out: Path = args.out
    if not (args.hf / "config.json").is_file():
        fail(f"{args.hf} is not a Hugging Face checkpoint (no config.json)")
    if out.exists() and any(out.iterdir()):
        fail(f"{out} is not empty; give an empty or new folder")
    progress(0.05, "exporting with Optimum (fp32, text-generation-with-past)")
    export(args.hf, out)
    golden = None
    if args.golden_prompt and args.golden_expected:
        progress(0.85, "golden check with Optimum's generate")
        golden_check(out, args.golden_prompt, args.golden_expected)
        golden = {"prompt": args.golden_prompt, "expected_substring": args.golden_expected}
    progress(1.0, "Optimum export ready")
    result({"precision": "fp32", "build_tools": versions(*TOOLS), "golden": golden})


if __name__ == "__main__":
    main()
