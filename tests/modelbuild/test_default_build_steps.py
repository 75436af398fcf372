"""build_default_model's own logic with the slow steps faked: atomic, idempotent, cleaned up.

The real build runs in test_default_model.py (-m default_model); here the GGUF download, the
venv and the export script are replaced so the folder handling is checked in milliseconds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from handoffd.engine.manifest import MANIFEST_FILENAME, verify_manifest
from handoffd.modelbuild import default_model
from handoffd.modelbuild.default_model import build_default_model
from handoffd.modelbuild.errors import ModelBuildError

FACTS = {
    "build_tools": {"onnxruntime-genai": "0.18.0", "transformers": "5.24.0"},
    "golden": {"prompt": "What is the capital of France?", "expected_substring": "Paris"},
}


class FakeExport:
    """Stands in for export_default.py: writes a few files into --out, or dies half-way."""

    def __init__(self, *, die: bool = False) -> None:
        self.calls = 0
        self.die = die
        self.args: list[str] = []

    def __call__(self, python: Path, script: str, args: list[str], **kwargs: Any) -> Any:
        self.calls += 1
        self.args = args
        out = Path(args[args.index("--out") + 1])
        out.mkdir(parents=True)
        (out / "model.onnx").write_bytes(b"graph")
        (out / "genai_config.json").write_text("{}", encoding="utf-8")
        kwargs["on_progress"](0.5, "building")
        if self.die:
            raise ModelBuildError("export_default.py failed: killed")
        return FACTS


@pytest.fixture
def fakes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeExport:
    monkeypatch.setenv("HANDOFFD_BUILD_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(default_model, "fetch_gguf", lambda **_: tmp_path / "x.gguf")
    monkeypatch.setattr(default_model, "ensure_build_env", lambda *_, **__: Path("/bin/true"))
    export = FakeExport()
    monkeypatch.setattr(default_model, "run_script", export)
    return export


def test_builds_then_reuses(tmp_path: Path, fakes: FakeExport) -> None:
    """The first call builds and writes the manifest; the second returns without building."""
    dest = tmp_path / "models" / "smollm2"
    seen: list[float] = []
    assert build_default_model(dest, on_progress=lambda f, m: seen.append(f)) == dest
    manifest = verify_manifest(dest)
    assert manifest.name == "smollm2-135m-instruct"
    assert manifest.precision == "int8"
    assert set(manifest.files) == {"model.onnx", "genai_config.json"}
    assert seen == sorted(seen)
    assert seen[-1] == 1.0
    assert build_default_model(dest) == dest
    assert fakes.calls == 1
    assert [p.name for p in dest.parent.iterdir() if ".tmp-" in p.name or ".work-" in p.name] == []


def test_force_and_tampering_rebuild(tmp_path: Path, fakes: FakeExport) -> None:
    """force=True rebuilds; so does a folder whose files no longer match the manifest."""
    dest = tmp_path / "m"
    build_default_model(dest)
    build_default_model(dest, force=True)
    assert fakes.calls == 2
    (dest / "model.onnx").write_bytes(b"tampered")
    build_default_model(dest)
    assert fakes.calls == 3
    verify_manifest(dest)


def test_a_changed_recipe_or_precision_rebuilds(
    tmp_path: Path, fakes: FakeExport, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The builder options reach the export script and the manifest; a model built with other
    options (an older version's recipe) or at another precision is rebuilt."""
    dest = tmp_path / "m"
    build_default_model(dest)
    assert "--builder-option=prune_lm_head=true" in fakes.args
    assert verify_manifest(dest).builder_options == default_model.BUILDER_OPTIONS["int8"]
    monkeypatch.setitem(default_model.BUILDER_OPTIONS, "int8", ("is_symmetric=false",))
    build_default_model(dest)
    assert fakes.calls == 2
    build_default_model(dest, precision="int4")
    build_default_model(dest, precision="int4")
    assert fakes.calls == 3
    assert verify_manifest(dest).precision == "int4"


def test_killed_build_leaves_no_half_model(
    tmp_path: Path, fakes: FakeExport, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A build that dies half-way leaves neither dest nor its temp folders; an old model stays."""
    dest = tmp_path / "m"
    monkeypatch.setattr(default_model, "run_script", FakeExport(die=True))
    with pytest.raises(ModelBuildError, match="killed"):
        build_default_model(dest)
    assert not dest.exists()
    assert [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name or ".work-" in p.name] == []
    # with a good model in place, a failed forced rebuild keeps it
    monkeypatch.setattr(default_model, "run_script", fakes)
    build_default_model(dest)
    monkeypatch.setattr(default_model, "run_script", FakeExport(die=True))
    with pytest.raises(ModelBuildError):
        build_default_model(dest, force=True)
    assert (dest / MANIFEST_FILENAME).is_file()
    verify_manifest(dest)


def test_leftovers_of_a_killed_process_are_removed(tmp_path: Path, fakes: FakeExport) -> None:
    """Temp folders left by a process killed with SIGKILL are deleted by the next build."""
    dest = tmp_path / "m"
    (tmp_path / "m.tmp-deadbeef").mkdir()
    (tmp_path / ".m.work-deadbeef").mkdir()
    build_default_model(dest)
    assert not (tmp_path / "m.tmp-deadbeef").exists()
    assert not (tmp_path / ".m.work-deadbeef").exists()
