"""Base class for every config and policy model."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Frozen(BaseModel):
    """Frozen, unknown keys rejected, validated on assignment never (it is frozen)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
