"""Reference generators for bench/engine.py, run INSIDE a model-build venv (not the project's).

    <build-venv>/bin/python bench/_ref_worker.py --kind genai|optimum|transformers --model DIR

Loads the model once, prints ``{"ready": true}``, then answers JSON lines on stdin:
``{"ids": [...], "new_tokens": N}`` -> one greedy generation of exactly N new tokens, timed
(TTFT from the call to the first new token; decode tok/s over the tokens after the first);
``{"cmd": "rss"}`` -> the process's peak RSS. Standalone: imports nothing from handoffd.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any


def peak_rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


class GenaiRunner:
    def __init__(self, model: str) -> None:
        import onnxruntime_genai as og

        self.og = og
        self.model = og.Model(model)

    def run(self, ids: list[int], new_tokens: int) -> dict[str, Any]:
        og = self.og
        params = og.GeneratorParams(self.model)
        total = len(ids) + new_tokens
        params.set_search_options(max_length=total, min_length=total, do_sample=False)
        start = time.perf_counter()
        generator = og.Generator(self.model, params)
        generator.append_tokens(ids)
        out: list[int] = []
        first = 0.0
        while not generator.is_done():
            generator.generate_next_token()
            out.append(int(generator.get_next_tokens()[0]))
            if not first:
                first = time.perf_counter()
        end = time.perf_counter()
        return _timing(start, first, end, out)


class HfRunner:
    """ORTModelForCausalLM (optimum) or AutoModelForCausalLM eager (transformers)."""

    def __init__(self, model: str, kind: str) -> None:
        import torch

        self.torch = torch
        if kind == "optimum":
            from optimum.onnxruntime import ORTModelForCausalLM

            self.model = ORTModelForCausalLM.from_pretrained(model, provider="CPUExecutionProvider")
        else:
            from transformers import AutoModelForCausalLM

            self.model = AutoModelForCausalLM.from_pretrained(
                model, torch_dtype=torch.float32, attn_implementation="eager"
            )
            self.model.eval()

    def run(self, ids: list[int], new_tokens: int) -> dict[str, Any]:
        torch = self.torch
        times: list[float] = []
        tokens: list[int] = []

        class Clock:
            prompt_seen = False

            def put(self, value: Any) -> None:
                if not self.prompt_seen:
                    self.prompt_seen = True  # the first call carries the prompt
                    return
                times.append(time.perf_counter())
                tokens.extend(int(v) for v in value.reshape(-1).tolist())

            def end(self) -> None:
                pass

        inputs = torch.tensor([ids], dtype=torch.long)
        start = time.perf_counter()
        with torch.inference_mode():
            self.model.generate(
                inputs, attention_mask=torch.ones_like(inputs), do_sample=False,
                max_new_tokens=new_tokens, min_new_tokens=new_tokens, streamer=Clock(),
                pad_token_id=0,
            )
        end = time.perf_counter()
        return _timing(start, times[0], end, tokens)


def _timing(start: float, first: float, end: float, out: list[int]) -> dict[str, Any]:
    decode_s = end - first
    return {
        "ttft_ms": (first - start) * 1000.0,
        "decode_tok_s": (len(out) - 1) / decode_s if decode_s > 0 else 0.0,
        "tokens": len(out),
        "head": out[:16],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kind", choices=["genai", "optimum", "transformers"], required=True)
    parser.add_argument("--model", required=True)
    args = parser.parse_args()
    runner: GenaiRunner | HfRunner = (
        GenaiRunner(args.model) if args.kind == "genai" else HfRunner(args.model, args.kind)
    )
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        if request.get("cmd") == "rss":
            reply: dict[str, Any] = {"peak_rss_mb": peak_rss_mb()}
        else:
            reply = runner.run(request["ids"], int(request["new_tokens"]))
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
