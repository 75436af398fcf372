"""Local engine speed: handoffd vs onnxruntime-genai's generator vs Optimum vs transformers.

    python bench/engine.py [--group all|default|optimum] [--runs 5] [--new-tokens 128]

Two model folders of the same checkpoint (SmolLM2-135M-Instruct):

* the default model (onnxruntime-genai builder, int8): handoffd in-process, handoffd over gRPC
  streaming (a real ``handoffd`` daemon on a Unix socket, ``LOCAL_ONLY``), onnxruntime-genai's own
  generator (genai build venv), and a naive onnxruntime loop (``InferenceSession.run`` with the
  KV fed back as numpy, the graph concatenating);
* an Optimum fp32 export (built once into the build cache from the same GGUF): handoffd
  in-process, Optimum's ``ORTModelForCausalLM.generate``, transformers eager on the fp32
  checkpoint, and the naive loop.

Every contender runs in its own process (peak RSS is that process's VmHWM) and they are driven
round-robin, one generation each per round, so that load from other work on the machine hits
them alike. Each generation: greedy, a ~200-token chat prompt, exactly ``--new-tokens`` new
tokens (the prompt is one the model answers at length; the references force the length).
TTFT runs from the call to the first new token; decode tok/s counts the tokens after the first.
One warm-up generation per contender, then the median of ``--runs``. handoffd in-process also
measures the event loop's lag (a 5 ms sleep loop) while generating.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from benchdoc import load_average, machine, today, write_section  # noqa: E402

PROMPT = (
    "Here are my notes about the history of printing. Movable type was first made in China "
    "around 1040 by Bi Sheng, using baked clay. Metal movable type appeared in Korea in the "
    "thirteenth century. In Europe, Johannes Gutenberg built a printing press in Mainz around "
    "1450 and printed his famous Bible with oil-based ink and a hand mould for casting letters. "
    "Printing spread to Venice, Paris and London within fifty years, books became cheaper, "
    "literacy rose, and scientists could share exact copies of their results. Newspapers "
    "appeared in the seventeenth century, steam-powered presses in the nineteenth, and offset "
    "lithography in the twentieth. Today most text is printed digitally or read on screens. "
    "Please write a long, detailed essay based on these notes, with an introduction, a section "
    "for each period, and a conclusion about what printing changed for ordinary people."
)


# -- the driver --------------------------------------------------------------------------------


@dataclass
class Contender:
    label: str
    group: str
    command: list[str]
    proc: subprocess.Popen[str] | None = None
    log: Path | None = None
    runs: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def start(self) -> None:
        env = {**os.environ, "PYTHONWARNINGS": "ignore", "TOKENIZERS_PARALLELISM": "false"}
        self.log = Path(tempfile.mkstemp(prefix="bench-engine-", suffix=".log")[1])
        with self.log.open("w") as log:
            self.proc = subprocess.Popen(
                self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=log, text=True, env=env, cwd=ROOT,
            )
        self.ask(None)

    def ask(self, request: dict[str, Any] | None) -> dict[str, Any]:
        if self.proc is None or self.proc.stdin is None or self.proc.stdout is None:
            raise RuntimeError(f"{self.label}: not started")
        if request is not None:
            self.proc.stdin.write(json.dumps(request) + "\n")
            self.proc.stdin.flush()
        while True:
            line = self.proc.stdout.readline()
            if not line:
                tail = self.log.read_text(errors="replace")[-3000:] if self.log else ""
                raise RuntimeError(f"{self.label}: worker exited ({self.command}); its log "
                                   f"{self.log} ends with:\n{tail}")
            if line.startswith("{"):
                reply: dict[str, Any] = json.loads(line)
                return reply

    def stop(self) -> None:
        if self.proc is not None:
            assert self.proc.stdin
            self.proc.stdin.close()
            self.proc.wait(60)
        if self.log is not None:
            self.log.unlink(missing_ok=True)

    def median(self, key: str) -> float:
        return statistics.median(r[key] for r in self.runs)


def default_model_folder(path: str | None) -> Path:
    from handoffd.engine.manifest import verify_manifest
    from handoffd.modelbuild.default_model import build_default_model, is_built
    from handoffd.settings import default_model_dir

    if path:
        return Path(path)
    dest = default_model_dir()
    if not is_built(dest):
        print(f"building the default model into {dest} (minutes, once)", file=sys.stderr)
        build_default_model(dest)
    verify_manifest(dest)
    return dest


def _optimum_export() -> tuple[Path, Path, Path]:
    """(HF fp32 checkpoint, Optimum export of it, optimum venv python), built once, cached."""
    from handoffd.modelbuild.buildenv import ensure_build_env
    from handoffd.modelbuild.cache import cache_dir
    from handoffd.modelbuild.runner import SCRIPTS_DIR, isolated_env
    from handoffd.modelbuild.source import fetch_gguf

    root = cache_dir("bench")
    hf, onnx_dir = root / "smollm2-135m-hf-fp32", root / "smollm2-135m-optimum-fp32"
    optimum_python = ensure_build_env("optimum")
    if not (hf / "config.json").is_file():
        print("converting the GGUF to an fp32 checkpoint (genai build venv)", file=sys.stderr)
        tmp = hf.with_name(hf.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        subprocess.run(
            [str(ensure_build_env("genai")), str(ROOT / "bench" / "_gguf_to_hf.py"),
             str(SCRIPTS_DIR), str(fetch_gguf()), str(tmp)],
            check=True, env=isolated_env(), stdout=subprocess.DEVNULL,
        )
        tmp.rename(hf)
    if not (onnx_dir / "model.onnx").is_file():
        print("exporting it with optimum-cli (optimum build venv)", file=sys.stderr)
        tmp = onnx_dir.with_name(onnx_dir.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        subprocess.run(
            [str(optimum_python), "-m", "optimum.commands.optimum_cli", "export", "onnx",
             "--model", str(hf), "--task", "text-generation-with-past", str(tmp)],
            check=True, env=isolated_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        for name in ("chat_template.jinja", "tokenizer.json", "tokenizer_config.json",
                     "generation_config.json"):
            if (hf / name).is_file():
                shutil.copy2(hf / name, tmp / name)
        tmp.rename(onnx_dir)
    return hf, onnx_dir, optimum_python


def _prompt_ids(model: Path) -> list[int]:
    from handoffd.domain import Message, Role
    from handoffd.engine.chat_template import ChatTemplate, find_template_source
    from handoffd.engine.folder import read_json_if_exists
    from handoffd.engine.text import TextCodec

    config = read_json_if_exists(model / "tokenizer_config.json")
    codec = TextCodec.from_folder(model, config)
    source = find_template_source(model, config)
    assert source, f"{model} has no chat template"
    template = ChatTemplate(source, bos_token=codec.bos_token, eos_token=codec.eos_token)
    return codec.encode(template.render([Message(Role.USER, PROMPT)]))


def _table(contenders: list[Contender], baseline: str, note: str) -> str:
    base = next(c for c in contenders if c.label == baseline)
    rows = [
        "| contender | TTFT ms (median) | decode tok/s (median) | vs " + baseline
        + " | peak RSS MB |",
        "|---|---:|---:|---:|---:|",
    ]
    for c in contenders:
        speed = c.median("decode_tok_s")
        rows.append(
            f"| {c.label} | {c.median('ttft_ms'):.0f} | {speed:.1f} | "
            f"{speed / base.median('decode_tok_s'):.2f}x | {c.extra.get('peak_rss_mb', 0):.0f} |"
        )
    return "\n".join(rows) + ("\n\n" + note if note else "")


def _contenders(group: str, args: argparse.Namespace) -> tuple[Path, list[Contender]]:
    from handoffd.modelbuild.buildenv import ensure_build_env

    me = [sys.executable, str(ROOT / "bench" / "_engine_workers.py")]
    worker = str(ROOT / "bench" / "_ref_worker.py")
    if group == "default":
        model = default_model_folder(args.model)
        genai_python = str(ensure_build_env("genai"))
        return model, [
            Contender("handoffd (in-process)", group, [*me, "handoffd", "--model", str(model)]),
            Contender("handoffd (gRPC stream)", group, [*me, "grpc", "--model", str(model)]),
            Contender("onnxruntime-genai generator", group,
                      [genai_python, worker, "--kind", "genai", "--model", str(model)]),
            Contender("naive onnxruntime loop", group, [*me, "naive", "--model", str(model)]),
        ]
    hf, onnx_dir, optimum_python = _optimum_export()
    return onnx_dir, [
        Contender("handoffd (in-process)", group, [*me, "handoffd", "--model", str(onnx_dir)]),
        Contender("Optimum ORTModelForCausalLM.generate", group,
                  [str(optimum_python), worker, "--kind", "optimum", "--model", str(onnx_dir)]),
        Contender("transformers eager (torch, fp32)", group,
                  [str(optimum_python), worker, "--kind", "transformers", "--model", str(hf)]),
        Contender("naive onnxruntime loop", group, [*me, "naive", "--model", str(onnx_dir)]),
    ]


def run_group(group: str, args: argparse.Namespace) -> str:
    """Measure one model folder's contenders round-robin; its markdown section."""
    folder, contenders = _contenders(group, args)
    ids = _prompt_ids(folder)
    request = {"text": PROMPT, "ids": ids, "new_tokens": args.new_tokens}
    failed: list[str] = []
    try:
        for c in list(contenders):
            print(f"[{group}] starting {c.label}", file=sys.stderr)
            try:
                c.start()
                c.ask(request)  # warm-up
            except RuntimeError as exc:
                if c is contenders[0] or "genai" in c.label or "Optimum" in c.label:
                    raise  # handoffd itself and the baseline are not optional
                print(f"[{group}] {c.label} did not start, left out: {exc}", file=sys.stderr)
                failed.append(c.label)
                contenders.remove(c)
        for round_ in range(args.runs):
            for c in contenders:
                c.runs.append(c.ask(request))
                last = c.runs[-1]
                print(f"[{group}] round {round_ + 1}/{args.runs} {c.label}: "
                      f"{last['decode_tok_s']:.1f} tok/s, ttft {last['ttft_ms']:.0f} ms, "
                      f"{last['tokens']} tokens", file=sys.stderr)
        for c in contenders:
            c.extra = c.ask({"cmd": "rss"})
    finally:
        for c in contenders:
            c.stop()
    lag = contenders[0].extra
    lag_note = (f"Event-loop lag while handoffd generates (5 ms sleep probe on its loop): p99 "
                f"{lag.get('lag_p99_ms', 0):.1f} ms, max {lag.get('lag_max_ms', 0):.1f} ms.")
    if group == "default":
        title = (f"## Local engine, default model: decode speed and TTFT\n\n"
                 f"Model folder {folder.name} (onnxruntime-genai builder, int8).")
        table = _table(contenders, "onnxruntime-genai generator", lag_note)
    else:
        title = ("## Local engine, Optimum fp32 export of the same checkpoint\n\n"
                 f"Model folder {folder.name} (optimum-cli, text-generation-with-past); "
                 "transformers eager runs the fp32 checkpoint it was exported from.")
        table = _table(contenders, "Optimum ORTModelForCausalLM.generate", lag_note)
    method = (
        f"`python bench/engine.py --group {group} --runs {args.runs} --new-tokens "
        f"{args.new_tokens}` on {machine()}, {today()}; load average at the end "
        f"{load_average()} (a shared machine: contenders run round-robin, one generation each "
        f"per round, so that load from other work hits them alike). Greedy, CPU execution "
        f"provider, {len(ids)}-token chat prompt, {args.new_tokens} new tokens, median of "
        f"{args.runs} runs after one warm-up; each contender in its own process (peak RSS = its "
        "VmHWM; for gRPC, the daemon's)."
    )
    if failed:
        table += f"\n\nLeft out because it did not start in this run: {', '.join(failed)}."
    return f"{title}\n\n{method}\n\n{table}\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--model", help="default-model folder (default: the daemon's)")
    parser.add_argument("--group", choices=["all", "default", "optimum"], default="all")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    for group, section in (("default", "engine"), ("optimum", "engine-optimum")):
        if args.group not in ("all", group):
            continue
        markdown = run_group(group, args)
        print(markdown)
        if not args.no_write:
            write_section(section, markdown)


if __name__ == "__main__":
    main()
