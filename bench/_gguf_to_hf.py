"""GGUF -> plain fp32 HF checkpoint, run INSIDE the genai build venv (bench/engine.py uses it).

    <genai-venv>/bin/python bench/_gguf_to_hf.py SCRIPTS_DIR GGUF OUT_DIR

Reuses the default-model build's own conversion (``export_default.gguf_to_checkpoint``), then
writes the checkpoint's config in the form transformers 4.x (the optimum build venv) reads too:
a top-level ``rope_theta`` besides transformers 5's ``rope_parameters``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main() -> None:
    scripts, gguf, out = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    sys.path.insert(0, str(scripts))
    from export_default import gguf_to_checkpoint

    out.mkdir(parents=True, exist_ok=True)
    facts = gguf_to_checkpoint(gguf, out)
    config_path = out / "config.json"
    config = json.loads(config_path.read_text("utf-8"))
    rope = config.get("rope_parameters") or {}
    if "rope_theta" not in config and "rope_theta" in rope:
        config["rope_theta"] = rope["rope_theta"]
    config.setdefault("torch_dtype", "float32")
    config_path.write_text(json.dumps(config, indent=2), "utf-8")
    template = facts.get("chat_template")
    if isinstance(template, str):
        (out / "chat_template.jinja").write_text(template, "utf-8")
    print(json.dumps({"ok": True, "eos_token": facts.get("eos_token")}))


if __name__ == "__main__":
    main()
