"""The ``ledger:`` section of the daemon config: where the audit ledger lives and how it behaves."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field

from handoffd.schema.base import Frozen


class LedgerSettings(Frozen):
    #: the SQLite ledger file; default: ``<state dir>/ledger.sqlite3``
    path: Path | None = None
    #: seconds between automatic signed checkpoints (only when new entries were written);
    #: 0 turns periodic checkpoints off (``handoffctl audit checkpoint`` still makes them)
    checkpoint_every_s: Annotated[float, Field(ge=0, le=7 * 24 * 3600)] = 300.0
    #: where checkpoints are exported as files, to be shipped off the device;
    #: default: ``<state dir>/checkpoints``
    checkpoint_dir: Path | None = None
    #: device-wide opt-in: store the *redacted* prompt of a handoff when its policy asks for it.
    #: Off: only the keyed hash (HMAC-SHA256) of the prompt is stored, whatever the policy says.
    store_redacted_prompt: bool = False

    def resolved_path(self, state_dir: Path) -> Path:
        return self.path if self.path is not None else state_dir / "ledger.sqlite3"

    def resolved_checkpoint_dir(self, state_dir: Path) -> Path:
        return self.checkpoint_dir if self.checkpoint_dir is not None else state_dir / "checkpoints"
