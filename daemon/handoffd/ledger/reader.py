"""Read-only access to a ledger: listing with filters, single entries, export, stats.

:class:`LedgerReader` is synchronous (for the CLI); :class:`AsyncLedgerReader` runs the same
calls in one owner thread of its own (for the gRPC service). Both open the file ``mode=ro`` and
work while the daemon writes.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from handoffd.errors import InvalidRequest, NotFound
from handoffd.ledger.checkpoints import Checkpoint
from handoffd.ledger.entries import EntryKind, LedgerEntry, Outcome
from handoffd.ledger.owner_thread import OwnerThread
from handoffd.ledger.stats import DayStats, RuleCount, day_stats, refusal_reasons
from handoffd.ledger.store import chain_head, connect_reader, ledger_uid, load_checkpoints
from handoffd.ledger.times import normalize_bound

_ROUTES = ("local", "cloud", "local_fallback", "denied")


@dataclass(frozen=True, slots=True)
class EntryFilter:
    """Which entries to read; every set field must match. Times: ISO dates or date-times."""

    app: str | None = None
    since: str | None = None
    until: str | None = None
    route: str | None = None
    outcome: str | None = None
    rule_id: str | None = None
    kind: str | None = None

    def where(self, table: str = "entries") -> tuple[str, list[Any]]:
        """The SQL condition on ``table`` and its parameters; InvalidRequest for a bad value."""
        t = table
        clauses: list[str] = []
        params: list[Any] = []
        if self.app:
            clauses.append(f"{t}.app = ?")
            params.append(self.app)
        since = normalize_bound(self.since, field="since")
        if since:
            clauses.append(f"{t}.time >= ?")
            params.append(since)
        until = normalize_bound(self.until, field="until")
        if until:
            clauses.append(f"{t}.time < ?")
            params.append(until)
        if self.route:
            _choice("route", self.route, _ROUTES)
            clauses.append(f"{t}.route = ?")
            params.append(self.route)
        if self.outcome:
            _choice("outcome", self.outcome, tuple(o.value for o in Outcome))
            clauses.append(f"{t}.outcome = ?")
            params.append(self.outcome)
        if self.kind:
            _choice("kind", self.kind, tuple(k.value for k in EntryKind))
            clauses.append(f"{t}.kind = ?")
            params.append(self.kind)
        if self.rule_id:
            clauses.append(
                f"EXISTS (SELECT 1 FROM json_each({t}.body, '$.rule_ids') AS r "  # noqa: S608
                "WHERE r.value = ?)"
            )
            params.append(self.rule_id)
        return (" AND ".join(clauses) or "1"), params


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise InvalidRequest(f"{name} {value!r} is not one of: {', '.join(allowed)}", field=name)


_COLUMNS = "seq, prev_hash, entry_hash, body"
_BY_ID = "SELECT seq, prev_hash, entry_hash, body FROM entries WHERE id = ?"
_BY_PREFIX = "SELECT seq, prev_hash, entry_hash, body FROM entries WHERE id >= ? AND id < ? LIMIT 2"


class LedgerReader:
    """A read-only connection to the ledger at ``path`` (raises NotFound if there is none)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = connect_reader(path)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> LedgerReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _rows(self, sql: str, params: list[Any]) -> Iterator[LedgerEntry]:
        for seq, prev, digest, body in self._db.execute(sql, params):
            yield LedgerEntry.from_row(int(seq), str(prev), str(digest), str(body))

    def entries(
        self,
        where: EntryFilter | None = None,
        *,
        limit: int = 50,
        before_seq: int | None = None,
        newest_first: bool = True,
    ) -> list[LedgerEntry]:
        """Up to ``limit`` matching entries (0: all), newest first unless told otherwise;
        ``before_seq`` pages backwards (entries older than that position)."""
        condition, params = (where or EntryFilter()).where()
        if before_seq is not None:
            condition += " AND seq < ?"
            params.append(before_seq)
        order = "DESC" if newest_first else "ASC"
        sql = f"SELECT {_COLUMNS} FROM entries WHERE {condition} ORDER BY seq {order}"  # noqa: S608
        if limit > 0:
            sql += " LIMIT ?"
            params.append(limit)
        return list(self._rows(sql, params))

    def iter_entries(self, where: EntryFilter | None = None) -> Iterator[LedgerEntry]:
        """Every matching entry, oldest first, streamed (for exports)."""
        condition, params = (where or EntryFilter()).where()
        sql = f"SELECT {_COLUMNS} FROM entries WHERE {condition} ORDER BY seq"  # noqa: S608
        yield from self._rows(sql, params)

    def get(self, entry_id: str) -> LedgerEntry:
        """The entry with this id, or with this unique id prefix (at least 6 characters)."""
        key = entry_id.strip().upper()
        rows = list(self._rows(_BY_ID, [key]))
        if not rows and len(key) >= 6:
            rows = list(
                self._rows(
                    _BY_PREFIX,
                    [key, key + "~"],
                )
            )
            if len(rows) > 1:
                raise InvalidRequest(
                    f"{entry_id!r} matches more than one ledger entry: give more characters "
                    "of the id (see `handoffctl audit list`)",
                    field="id",
                )
        if not rows:
            raise NotFound(
                f"no ledger entry with id {entry_id!r}; list recent ids with "
                "`handoffctl audit list`"
            )
        return rows[0]

    def stats(self, where: EntryFilter | None = None) -> list[DayStats]:
        return day_stats(self._db, where or EntryFilter())

    def refusal_reasons(self, where: EntryFilter | None = None, top: int = 10) -> list[RuleCount]:
        return refusal_reasons(self._db, where or EntryFilter(), top=top)

    def checkpoints(self) -> list[Checkpoint]:
        return load_checkpoints(self._db)

    def head(self) -> tuple[int, str]:
        """(count, hash) of the newest entry."""
        return chain_head(self._db)

    def ledger_uid(self) -> str:
        return ledger_uid(self._db)

    def count(self, where: EntryFilter | None = None) -> int:
        """How many entries match."""
        condition, params = (where or EntryFilter()).where()
        sql = f"SELECT count(*) FROM entries WHERE {condition}"  # noqa: S608
        return int(self._db.execute(sql, params).fetchone()[0])


class AsyncLedgerReader:
    """:class:`LedgerReader` for the event loop: one owner thread, connection opened lazily."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._owner = OwnerThread("handoffd-ledger-read")
        self._reader: LedgerReader | None = None

    def _open(self) -> LedgerReader:
        if self._reader is None:
            self._reader = LedgerReader(self.path)
        return self._reader

    async def entries(
        self, where: EntryFilter | None = None, *, limit: int = 50, before_seq: int | None = None
    ) -> list[LedgerEntry]:
        return await self._owner.run(
            lambda: self._open().entries(where, limit=limit, before_seq=before_seq)
        )

    async def get(self, entry_id: str) -> LedgerEntry:
        return await self._owner.run(lambda: self._open().get(entry_id))

    async def head(self) -> tuple[int, str]:
        return await self._owner.run(lambda: self._open().head())

    async def aclose(self) -> None:
        def _close() -> None:
            if self._reader is not None:
                self._reader.close()
                self._reader = None

        with contextlib.suppress(sqlite3.Error):
            await self._owner.run(_close)
        self._owner.shutdown()
