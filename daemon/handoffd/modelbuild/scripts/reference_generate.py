"""Greedy generation with the REFERENCE generator of a layout (runs ONLY in a build venv).

    python reference_generate.py --layout genai|optimum --model DIR --input-ids '[1, 2, 3]' \
        --max-new-tokens N

genai: onnxruntime-genai's own ``og.Generator``; optimum: ``ORTModelForCausalLM.generate``
with ``do_sample=False``. Prints one line ``RESULT {"ids": [...]}``: the new token ids only,
at most N of them, ending early at (and including) an EOS token. ``--input-ids`` may also be
a list of prompts (``[[1, 2], [3]]``), each generated on its own (batch size 1), which prints
``RESULT {"batch": [[...], [...]]}`` and pays the library import once.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

from _common import fail, greedy_genai, result


def greedy_optimum(model_dir: Path, input_ids: list[int], max_new_tokens: int) -> list[int]:
    import torch
    from optimum.onnxruntime import ORTModelForCausalLM

    with contextlib.redirect_stdout(sys.stderr):
        model = ORTModelForCausalLM.from_pretrained(str(model_dir), use_cache=True)
        ids = torch.tensor([input_ids], dtype=torch.int64)
        gen = model.generation_config
        out = model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=max_new_tokens,
            min_new_tokens=0,
            do_sample=False,
            num_beams=1,
            eos_token_id=gen.eos_token_id,
            pad_token_id=gen.pad_token_id if gen.pad_token_id is not None else gen.eos_token_id,
        )
    return [int(t) for t in out[0, len(input_ids) :].tolist()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layout", choices=["genai", "optimum"], required=True)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--input-ids", required=True, help="JSON list of token ids")
    parser.add_argument("--max-new-tokens", type=int, required=True)
    args = parser.parse_args()
    given = json.loads(args.input_ids)
    single = isinstance(given, list) and all(isinstance(t, int) for t in given)
    prompts = [given] if single else given
    if not (
        isinstance(prompts, list)
        and prompts
        and all(
            isinstance(p, list) and p and all(isinstance(t, int) and t >= 0 for t in p)
            for p in prompts
        )
    ):
        fail(
            "--input-ids must be a non-empty JSON list of non-negative integers (or of such lists)"
        )
    if args.max_new_tokens < 1:
        fail("--max-new-tokens must be at least 1")
    generate = greedy_genai if args.layout == "genai" else greedy_optimum
    outputs = [generate(args.model, p, args.max_new_tokens) for p in prompts]
    result({"ids": outputs[0]} if single else {"batch": outputs})


if __name__ == "__main__":
    main()
