"""The tamper-evident audit ledger of cloud handoffs (component; SQLite lives only here).

- :class:`AuditLedger`: the daemon's writer (durable, group-committed, hash-chained).
- :class:`HandoffIntent`, :class:`HandoffOutcome`, :class:`HandoffRefusal`: what the pipeline
  records; :class:`LedgerEntry`: what is read back.
- :class:`LedgerReader` / :class:`AsyncLedgerReader`: read-only views (CLI, gRPC service).
- :func:`verify_ledger`, :class:`Checkpoint`: tamper evidence (see :mod:`.chain`, :mod:`.verify`).
- :func:`prune_ledger`, :func:`checkpoint_current_head`: administrator operations.
- :func:`load_or_create_hmac_key`, :func:`load_or_create_signing_key`: per-device keys.
"""

from handoffd.ledger.admin_ops import PruneResult, checkpoint_current_head, prune_ledger
from handoffd.ledger.audit_ledger import AuditLedger
from handoffd.ledger.checkpoints import Checkpoint, write_checkpoint_file
from handoffd.ledger.entries import (
    EntryKind,
    HandoffIntent,
    HandoffOutcome,
    HandoffRefusal,
    LedgerEntry,
    Outcome,
)
from handoffd.ledger.keys import (
    load_or_create_hmac_key,
    load_or_create_signing_key,
    load_signing_key,
    read_public_key,
)
from handoffd.ledger.reader import AsyncLedgerReader, EntryFilter, LedgerReader
from handoffd.ledger.stats import DayStats, RuleCount
from handoffd.ledger.verify import VerifyReport, verify_ledger

__all__ = [
    "AsyncLedgerReader",
    "AuditLedger",
    "Checkpoint",
    "DayStats",
    "EntryFilter",
    "EntryKind",
    "HandoffIntent",
    "HandoffOutcome",
    "HandoffRefusal",
    "LedgerEntry",
    "LedgerReader",
    "Outcome",
    "PruneResult",
    "RuleCount",
    "VerifyReport",
    "checkpoint_current_head",
    "load_or_create_hmac_key",
    "load_or_create_signing_key",
    "load_signing_key",
    "prune_ledger",
    "read_public_key",
    "verify_ledger",
    "write_checkpoint_file",
]
