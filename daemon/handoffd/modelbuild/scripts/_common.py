"""Helpers shared by the build scripts (runs ONLY inside a build virtualenv).

The scripts talk to their parent (``handoffd.modelbuild.runner``) over stdout with two kinds of
machine-readable lines; everything else a script or a library prints goes to stderr, which the
parent keeps in a log file:

    PROGRESS <fraction 0..1> <message>
    RESULT <one JSON object>
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

# Files that transformers writes while loading but that describe the loader, not the tokenizer.
_LOADER_KEYS = ("is_local", "local_files_only", "name_or_path", "_commit_hash")


def progress(fraction: float, message: str) -> None:
    """Tell the parent how far the build is (fraction in [0, 1])."""
    clean = " ".join(message.split())
    sys.stdout.write(f"PROGRESS {min(max(fraction, 0.0), 1.0):.3f} {clean}\n")
    sys.stdout.flush()


def result(payload: Mapping[str, Any]) -> None:
    """Hand the parent one JSON object (the last RESULT line wins)."""
    sys.stdout.write("RESULT " + json.dumps(payload, sort_keys=True) + "\n")
    sys.stdout.flush()


def fail(message: str) -> None:
    """Stop with a message the parent shows to the user (exit code 2)."""
    sys.stderr.write(f"ERROR {message}\n")
    sys.stdout.write(f"ERROR {' '.join(message.split())}\n")
    sys.stdout.flush()
    raise SystemExit(2)


def versions(*dists: str) -> dict[str, str]:
    """Installed versions of the named distributions (for the manifest)."""
    found: dict[str, str] = {}
    for dist in dists:
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return found


def normalize_tokenizer_files(folder: Path, chat_template: str) -> dict[str, Any]:
    """Make ``tokenizer_config.json`` self-contained and loadable by transformers 4 and 5.

    transformers 5 saves the chat template to ``chat_template.jinja`` only and names its own
    ``TokenizersBackend`` class; older readers (transformers 4.x, onnxruntime-genai) look for
    ``chat_template`` in ``tokenizer_config.json`` and a class they know. Both files end up
    holding the same template.
    """
    path = folder / "tokenizer_config.json"
    config: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    for key in _LOADER_KEYS:
        config.pop(key, None)
    config["chat_template"] = chat_template
    if config.get("tokenizer_class") in (None, "TokenizersBackend", "PreTrainedTokenizerFast"):
        config["tokenizer_class"] = "GPT2Tokenizer"
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    (folder / "chat_template.jinja").write_text(chat_template, encoding="utf-8")
    return config


def export_optimum(hf_dir: Path, out: Path) -> None:
    """Optimum ``text-generation-with-past`` export of ``hf_dir`` into ``out``, with the tokenizer
    files copied over (only in the "optimum" build venv; the caller normalizes the template)."""
    from optimum.exporters.onnx import main_export

    with contextlib.redirect_stdout(sys.stderr):
        main_export(
            model_name_or_path=str(hf_dir),
            output=str(out),
            task="text-generation-with-past",
            device="cpu",
            do_validation=False,
        )
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (hf_dir / name).is_file():
            shutil.copy2(hf_dir / name, out / name)


def run_genai_builder(
    hf_dir: Path, out_dir: Path, precision: str, extra_options: Sequence[str] = ()
) -> None:
    """Run the onnxruntime-genai model builder CLI (its stable interface) on a local checkpoint."""
    with tempfile.TemporaryDirectory(prefix="genai-cache-") as cache:
        cmd = [
            sys.executable,
            "-m",
            "onnxruntime_genai.models.builder",
            "-i",
            str(hf_dir),
            "-o",
            str(out_dir),
            "-p",
            precision,
            "-e",
            "cpu",
            "-c",
            cache,
        ]
        if extra_options:
            cmd += ["--extra_options", *extra_options]
        env = dict(os.environ, TQDM_DISABLE="1")
        done = subprocess.run(cmd, stdout=sys.stderr, stderr=sys.stderr, env=env, check=False)
    if done.returncode != 0:
        fail(
            f"the onnxruntime-genai model builder failed (exit {done.returncode}); "
            "its output is in the build log above"
        )


def greedy_genai(model_dir: Path, input_ids: Sequence[int], max_new_tokens: int) -> list[int]:
    """Greedy generation with onnxruntime-genai's own generator (the reference)."""
    import onnxruntime_genai as og

    model = og.Model(str(model_dir))
    params = og.GeneratorParams(model)
    params.set_search_options(
        max_length=len(input_ids) + max_new_tokens, do_sample=False, min_length=0
    )
    generator = og.Generator(model, params)
    generator.append_tokens(list(input_ids))
    out: list[int] = []
    while not generator.is_done() and len(out) < max_new_tokens:
        generator.generate_next_token()
        out.append(int(generator.get_next_tokens()[0]))
    return out
