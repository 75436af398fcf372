"""The audit ledger the pipeline writes to: durable, hash-chained, group-committed.

Every ``record_*`` call queues its entry and waits; one drain task hands whatever has queued up to
the owner thread, which writes it in ONE transaction (``synchronous=FULL``) and only then answers
every caller in the batch. So each call returns only once its entry is durable, and concurrent
calls share one fsync (group commit). A call that cannot be written raises
:class:`handoffd.errors.Unavailable`: the pipeline then does not hand the request off.

    ledger = await AuditLedger.open(path, hmac_key=..., signing_key=...)
    intent_id = await ledger.record_intent(HandoffIntent(...))     # before sending anything
    ...
    await ledger.record_outcome(intent_id, HandoffOutcome(Outcome.SENT, ...))
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import sqlite3
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from hashlib import sha256
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from handoffd.errors import ConfigError, HandoffdError, InvalidRequest, Unavailable
from handoffd.ledger.chain_writer import ChainWriter, QueuedEntry
from handoffd.ledger.checkpoints import Checkpoint, export_checkpoint
from handoffd.ledger.entries import (
    HandoffIntent,
    HandoffOutcome,
    HandoffRefusal,
    check_outcome,
    intent_body,
    refusal_body,
)
from handoffd.ledger.migrations import migrate
from handoffd.ledger.owner_thread import OwnerThread
from handoffd.ledger.reader import AsyncLedgerReader
from handoffd.ledger.store import connect_writer
from handoffd.ledger.times import format_time
from handoffd.ledger.ulid import UlidGenerator, is_ulid
from handoffd.logsetup import get_logger

log = get_logger(__name__)

#: most entries in one transaction
MAX_BATCH = 512
#: intents kept in memory until their outcome arrives (older ones are read back from the file)
_INTENT_CACHE = 4096
_MIN_HMAC_KEY = 32


@dataclass(slots=True)
class _Pending:
    item: QueuedEntry
    future: asyncio.Future[str] = field(repr=False)


class AuditLedger:
    """Append-only audit ledger of cloud handoffs. Build it with :meth:`open`."""

    def __init__(
        self,
        *,
        path: Path,
        owner: OwnerThread,
        writer: ChainWriter,
        hmac_key: bytes,
        signing_key: Ed25519PrivateKey | None,
        store_redacted_prompt: bool,
        checkpoint_dir: Path | None,
        checkpoint_every_s: float,
        clock: Callable[[], datetime],
    ) -> None:
        self.path = path
        self._clock = clock
        self._owner = owner
        self._writer = writer
        self._hmac_key = hmac_key
        self._signing_key = signing_key
        self._store_redacted = store_redacted_prompt
        self._checkpoint_dir = checkpoint_dir
        self._ids = UlidGenerator()
        self._queue: list[_Pending] = []
        self._wakeup = asyncio.Event()
        self._closing = False
        self._closed = False
        self._intents: OrderedDict[str, Mapping[str, Any]] = OrderedDict()
        self._count = writer.count
        self._checkpointed = -1
        self._reader: AsyncLedgerReader | None = None
        #: transactions committed with entries (for tests and benchmarks)
        self.commit_count = 0
        self._drain_task = asyncio.create_task(self._drain(), name="ledger-drain")
        self._periodic_task: asyncio.Task[None] | None = None
        if checkpoint_every_s > 0 and signing_key is not None:
            self._periodic_task = asyncio.create_task(
                self._periodic(checkpoint_every_s), name="ledger-checkpoints"
            )

    @classmethod
    async def open(
        cls,
        path: Path,
        *,
        hmac_key: bytes,
        signing_key: Ed25519PrivateKey | None,
        store_redacted_prompt: bool = False,
        checkpoint_dir: Path | None = None,
        checkpoint_every_s: float = 0.0,
        busy_timeout_s: float = 5.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> AuditLedger:
        """Open (creating and migrating as needed) the ledger at ``path``.

        ``checkpoint_every_s`` > 0 writes a signed checkpoint that often when entries were added
        (and one on close); ``checkpoint_dir`` also exports each checkpoint there as a file.
        """
        if len(hmac_key) < _MIN_HMAC_KEY:
            raise ConfigError(
                f"the ledger HMAC key is {len(hmac_key)} bytes; use at least {_MIN_HMAC_KEY}"
            )
        owner = OwnerThread("handoffd-ledger")

        def _open() -> ChainWriter:
            db = connect_writer(path, busy_timeout_s=busy_timeout_s)
            try:
                applied = migrate(db, where=str(path))
            except sqlite3.Error as exc:
                db.close()
                raise Unavailable(f"cannot migrate the audit ledger at {path}: {exc}") from exc
            except BaseException:
                db.close()
                raise
            if applied:
                log.info("ledger.migrated", path=str(path), migrations=applied)
            return ChainWriter(db, where=str(path))

        try:
            writer = await owner.run(_open)
        except BaseException:
            owner.shutdown()
            raise
        log.info("ledger.opened", path=str(path), entries=writer.count)
        return cls(
            path=path,
            owner=owner,
            writer=writer,
            hmac_key=hmac_key,
            signing_key=signing_key,
            store_redacted_prompt=store_redacted_prompt,
            checkpoint_dir=checkpoint_dir,
            checkpoint_every_s=checkpoint_every_s,
            clock=clock,
        )

    # --- writing ---------------------------------------------------------------------------------

    def prompt_digest(self, text: str) -> str:
        """Keyed hash (HMAC-SHA256, per-device key) of a prompt: equal prompts match, text stays."""
        return hmac.new(self._hmac_key, text.encode("utf-8"), sha256).hexdigest()

    async def record_intent(self, intent: HandoffIntent) -> str:
        """Write an intent; returns its id once it is durable. Send nothing before this returns."""
        entry_id, time = self._ids.new(), format_time(self._clock())
        body = intent_body(
            intent, entry_id=entry_id, time=time, keep_redacted_prompt=self._store_redacted
        )
        await self._submit(QueuedEntry(entry_id=entry_id, time=time, body=body))
        self._intents[entry_id] = body
        while len(self._intents) > _INTENT_CACHE:
            self._intents.popitem(last=False)
        return entry_id

    async def record_outcome(self, intent_id: str, outcome: HandoffOutcome) -> str:
        """Write what came of the intent ``intent_id``; returns the outcome entry's id."""
        if not isinstance(intent_id, str) or not is_ulid(intent_id):
            raise InvalidRequest(
                f"{intent_id!r} is not a ledger entry id: pass the id record_intent returned",
                field="intent_id",
            )
        check_outcome(outcome)
        cached = self._intents.pop(intent_id, None)
        entry_id, time = self._ids.new(), format_time(self._clock())
        item = QueuedEntry(
            entry_id=entry_id, time=time, outcome=outcome, intent_id=intent_id, intent_body=cached
        )
        try:
            return await self._submit(item)
        except HandoffdError:
            if cached is not None:
                self._intents[intent_id] = cached
            raise

    async def record_refusal(self, refusal: HandoffRefusal) -> str:
        """Write a handoff refused by policy, budget or rate limit (no intent needed)."""
        entry_id, time = self._ids.new(), format_time(self._clock())
        body = refusal_body(
            refusal, entry_id=entry_id, time=time, keep_redacted_prompt=self._store_redacted
        )
        return await self._submit(QueuedEntry(entry_id=entry_id, time=time, body=body))

    async def _submit(self, item: QueuedEntry) -> str:
        if self._closing:
            raise Unavailable("the audit ledger is closed; nothing was handed off")
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(item, future))
        self._wakeup.set()
        return await future

    async def _drain(self) -> None:
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            batch = self._queue[:MAX_BATCH]
            del self._queue[:MAX_BATCH]
            try:
                results = await self._owner.run(
                    self._writer.write_batch, [pending.item for pending in batch]
                )
            except (sqlite3.Error, OSError, HandoffdError) as exc:
                log.error(
                    "ledger.write_failed",
                    path=str(self.path),
                    entries=len(batch),
                    error=f"{type(exc).__name__}: {exc}",
                )
                error = (
                    exc
                    if isinstance(exc, Unavailable)
                    else Unavailable(
                        "the audit ledger cannot be written, so nothing was handed off; "
                        "the daemon log (ledger.write_failed) has the cause"
                    )
                )
                for pending in batch:
                    if not pending.future.done():
                        pending.future.set_exception(error)
                continue
            self.commit_count += 1
            self._count = self._writer.count
            for pending, result in zip(batch, results, strict=True):
                if pending.future.done():
                    continue
                if isinstance(result, str):
                    pending.future.set_result(result)
                else:
                    pending.future.set_exception(result)

    # --- checkpoints ----------------------------------------------------------------------------

    async def checkpoint(self, out_dir: Path | None = None, *, kind: str = "manual") -> Checkpoint:
        """Sign and store a checkpoint of the current head; export it to ``out_dir`` (default:
        the configured checkpoint directory, if any)."""
        if self._signing_key is None:
            raise ConfigError(
                "the audit ledger was opened without a signing key, so it cannot sign "
                "checkpoints: give AuditLedger.open a signing_key (see load_or_create_signing_key)"
            )
        if self._closed:
            raise Unavailable("the audit ledger is closed")
        try:
            checkpoint = await self._owner.run(self._writer.checkpoint, self._signing_key, kind)
        except sqlite3.Error as exc:
            raise Unavailable(f"cannot store a ledger checkpoint: {exc}") from exc
        self._checkpointed = checkpoint.entry_count
        target = out_dir or self._checkpoint_dir
        exported = None
        if target is not None:
            exported = await self._owner.run(export_checkpoint, checkpoint, target)
        log.info(
            "ledger.checkpoint",
            kind=kind,
            entries=checkpoint.entry_count,
            file=str(exported) if exported else None,
        )
        return checkpoint

    async def _periodic(self, every_s: float) -> None:
        while True:
            await asyncio.sleep(every_s)
            if self._count != self._checkpointed:
                try:
                    await self.checkpoint(kind="periodic")
                except (HandoffdError, OSError) as exc:
                    log.error("ledger.checkpoint_failed", error=f"{type(exc).__name__}: {exc}")

    # --- reading and closing --------------------------------------------------------------------

    @property
    def entry_count(self) -> int:
        """Entries written so far (the head's position in the chain)."""
        return self._count

    def reader(self) -> AsyncLedgerReader:
        """A read-only view of this ledger with its own connection and thread."""
        if self._reader is None:
            self._reader = AsyncLedgerReader(self.path)
        return self._reader

    async def aclose(self) -> None:
        """Write what is queued, checkpoint if periodic checkpoints are on, close the file."""
        if self._closing:
            return
        self._closing = True
        self._wakeup.set()
        await self._drain_task
        if self._periodic_task is not None:
            self._periodic_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._periodic_task
            if self._count != self._checkpointed:
                try:
                    await self.checkpoint(kind="periodic")
                except (HandoffdError, OSError) as exc:
                    log.error("ledger.checkpoint_failed", error=f"{type(exc).__name__}: {exc}")
        self._closed = True
        if self._reader is not None:
            await self._reader.aclose()
        await self._owner.run(self._writer.close)
        self._owner.shutdown()
        log.info("ledger.closed", path=str(self.path), entries=self._count)
