"""The ``handoffd.v1.Audit`` servicer: read the audit ledger over gRPC, scoped by caller.

An admin sees every entry and may verify and checkpoint the ledger; an app sees only its own
entries (asking for another app's is PERMISSION_DENIED); any other role is refused. Register:

    audit_pb2_grpc.add_AuditServicer_to_server(
        AuditServicer(ledger, resolve_caller=resolver), server)
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import grpc

from handoffd.domain import Caller, CallerRole
from handoffd.errors import InvalidRequest, PermissionDenied
from handoffd.ledger import AuditLedger, Checkpoint, EntryFilter, LedgerEntry, verify_ledger
from handoffd.rpc.errors import unary_errors
from handoffd.v1 import audit_pb2 as pb
from handoffd.v1 import audit_pb2_grpc as pb_grpc

Context = grpc.aio.ServicerContext[Any, Any]
CallerResolver = Callable[[Context], Caller]

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


def entry_to_proto(entry: LedgerEntry) -> pb.AuditEntry:
    message = pb.AuditEntry(
        id=entry.id,
        seq=entry.seq,
        time=entry.time,
        kind=entry.kind,
        intent_id=entry.intent_id or "",
        app=entry.app,
        client_request_id=entry.client_request_id,
        route=entry.route,
        strategy=entry.strategy,
        scores=dict(entry.scores),
        rule_ids=list(entry.rule_ids),
        policy_hash=entry.policy_hash,
        redaction=dict(entry.redaction),
        prompt_hmac=entry.prompt_hmac,
        cloud_target=entry.cloud_target,
        cloud_model=entry.cloud_model,
        tokens_in=entry.tokens_in,
        tokens_out=entry.tokens_out,
        estimated_cost_usd=entry.estimated_cost_usd,
        settled_cost_usd=entry.settled_cost_usd,
        latency_ms=entry.latency_ms,
        outcome=entry.outcome,
        error_class=entry.error_class,
        prev_hash=entry.prev_hash,
        entry_hash=entry.entry_hash,
    )
    if entry.redacted_prompt is not None:
        message.redacted_prompt = entry.redacted_prompt
    return message


def checkpoint_to_proto(checkpoint: Checkpoint) -> pb.LedgerCheckpoint:
    return pb.LedgerCheckpoint(
        ledger_uid=checkpoint.ledger_uid,
        entry_count=checkpoint.entry_count,
        head_hash=checkpoint.head_hash,
        time=checkpoint.time,
        kind=checkpoint.kind,
        public_key=checkpoint.public_key,
        signature=checkpoint.signature,
        checkpoint_json=checkpoint.to_json(),
    )


def _page(request: pb.ListEntriesRequest) -> tuple[int, int | None]:
    size = request.page_size or DEFAULT_PAGE_SIZE
    if not 0 < size <= MAX_PAGE_SIZE:
        raise InvalidRequest(
            f"page_size {request.page_size} is out of range: use 1..{MAX_PAGE_SIZE} "
            f"(0 means {DEFAULT_PAGE_SIZE})",
            field="page_size",
        )
    if not request.page_token:
        return size, None
    if not request.page_token.isdigit():
        raise InvalidRequest(
            f"page_token {request.page_token!r} is not one this server gave out: pass the "
            "previous response's next_page_token unchanged",
            field="page_token",
        )
    return size, int(request.page_token)


class AuditServicer(pb_grpc.AuditServicer):
    def __init__(self, ledger: AuditLedger, *, resolve_caller: CallerResolver) -> None:
        self._ledger = ledger
        self._reader = ledger.reader()
        self._resolve_caller = resolve_caller

    def _caller(self, context: Context) -> Caller:
        caller = self._resolve_caller(context)
        if caller.role not in (CallerRole.ADMIN, CallerRole.APP):
            raise PermissionDenied(f"role {caller.role!r} may not read the audit ledger")
        return caller

    def _admin(self, context: Context, what: str) -> Caller:
        caller = self._caller(context)
        if not caller.is_admin:
            raise PermissionDenied(
                f"app {caller.app!r} may not {what}: it needs the admin role "
                "(handoffctl apps add NAME --role admin)"
            )
        return caller

    @unary_errors
    async def ListEntries(
        self, request: pb.ListEntriesRequest, context: Context
    ) -> pb.ListEntriesResponse:
        caller = self._caller(context)
        app = request.app or None
        if not caller.is_admin:
            if app is not None and app != caller.app:
                raise PermissionDenied(
                    f"app {caller.app!r} may only read its own ledger entries, not {app!r}"
                )
            app = caller.app
        where = EntryFilter(
            app=app,
            since=request.since or None,
            until=request.until or None,
            route=request.route or None,
            outcome=request.outcome or None,
            rule_id=request.rule_id or None,
            kind=request.kind or None,
        )
        where.where()  # validate before touching the file
        size, before = _page(request)
        entries = await self._reader.entries(where, limit=size + 1, before_seq=before)
        more = len(entries) > size
        page = entries[:size]
        return pb.ListEntriesResponse(
            entries=[entry_to_proto(e) for e in page],
            next_page_token=str(page[-1].seq) if more and page else "",
        )

    @unary_errors
    async def GetEntry(self, request: pb.GetEntryRequest, context: Context) -> pb.AuditEntry:
        caller = self._caller(context)
        if not request.id:
            raise InvalidRequest("id is empty: pass an entry id from ListEntries", field="id")
        entry = await self._reader.get(request.id)
        if not caller.is_admin and entry.app != caller.app:
            raise PermissionDenied(
                f"app {caller.app!r} may only read its own ledger entries; "
                f"{request.id!r} is not one"
            )
        return entry_to_proto(entry)

    @unary_errors
    async def Verify(self, request: pb.VerifyRequest, context: Context) -> pb.VerifyResponse:
        self._admin(context, "verify the audit ledger")
        external = [
            Checkpoint.from_json(text, where=f"checkpoints_json[{i}]")
            for i, text in enumerate(request.checkpoints_json)
        ]
        pinned = bytes(request.public_key) or None
        if pinned is not None and len(pinned) != 32:
            raise InvalidRequest(
                f"public_key is {len(pinned)} bytes; an Ed25519 public key is 32 raw bytes",
                field="public_key",
            )
        # CPU-bound over the whole file: its own thread and connection, off the event loop
        report = await asyncio.to_thread(
            verify_ledger, self._ledger.path, external=external, public_key=pinned
        )
        return pb.VerifyResponse(
            ok=report.ok,
            entries_checked=report.entries_checked,
            head_seq=report.head_seq,
            head_hash=report.head_hash,
            checkpoints_checked=report.checkpoints_checked,
            problems=list(report.problems),
            first_bad_seq=report.first_bad_seq or 0,
            first_bad_id=report.first_bad_id or "",
            summary=report.summary(),
        )

    @unary_errors
    async def Checkpoint(
        self, request: pb.CheckpointRequest, context: Context
    ) -> pb.LedgerCheckpoint:
        self._admin(context, "checkpoint the audit ledger")
        return checkpoint_to_proto(await self._ledger.checkpoint())
