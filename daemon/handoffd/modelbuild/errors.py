"""The error raised when a model or a build environment cannot be built."""

from __future__ import annotations

from handoffd.errors import ModelError


class ModelBuildError(ModelError):
    """A build step failed; the message names the step, the cause and the fix."""
