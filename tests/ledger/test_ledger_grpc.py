"""The Audit gRPC service on a real grpc.aio server (temp Unix socket), scoped by caller."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from handoffd.domain import Caller, CallerRole
from handoffd.ledger import AuditLedger, Checkpoint, verify_ledger
from handoffd.rpc.audit_servicer import AuditServicer
from handoffd.v1 import audit_pb2 as pb
from handoffd.v1 import audit_pb2_grpc as pb_grpc

from tests.ledger.conftest import PopulatedLedger
from tests.ledger.ledger_testkit import attacker, open_ledger


def metadata_caller(context: grpc.aio.ServicerContext[Any, Any]) -> Caller:
    """Test resolver: identity from metadata (the real server resolves it from the socket or a
    bearer token)."""
    md = dict(context.invocation_metadata() or ())
    return Caller(app=str(md.get("x-app", "")), role=CallerRole(str(md.get("x-role", "app"))))


@dataclass
class Service:
    stub: pb_grpc.AuditStub
    ledger: AuditLedger
    populated: PopulatedLedger

    def as_(self, app: str, role: str = "app") -> tuple[tuple[str, str], ...]:
        return (("x-app", app), ("x-role", role))


@pytest.fixture
async def service(populated: PopulatedLedger, tmp_path: Path) -> AsyncIterator[Service]:
    ledger = await open_ledger(populated.path, populated.key)
    server = grpc.aio.server()
    pb_grpc.add_AuditServicer_to_server(
        AuditServicer(ledger, resolve_caller=metadata_caller), server
    )
    socket = tmp_path / "audit.sock"
    server.add_insecure_port(f"unix://{socket}")
    await server.start()
    channel = grpc.aio.insecure_channel(f"unix://{socket}")
    try:
        yield Service(pb_grpc.AuditStub(channel), ledger, populated)
    finally:
        await channel.close(None)
        await server.stop(None)
        await ledger.aclose()


async def _code(call: Any) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    return info.value.code()


async def test_admin_pages_through_every_entry(service: Service) -> None:
    """An admin lists all 60 entries newest first, in pages linked by next_page_token."""
    seen: list[int] = []
    token = ""
    while True:
        page = await service.stub.ListEntries(
            pb.ListEntriesRequest(page_size=25, page_token=token),
            metadata=service.as_("ops", "admin"),
        )
        seen += [e.seq for e in page.entries]
        token = page.next_page_token
        if not token:
            break
    assert seen == list(range(60, 0, -1))


async def test_app_sees_only_its_own_entries(service: Service) -> None:
    """An app's listing is limited to its entries; filters still apply."""
    page = await service.stub.ListEntries(
        pb.ListEntriesRequest(page_size=1000), metadata=service.as_("kiosk")
    )
    assert len(page.entries) == 21
    assert {e.app for e in page.entries} == {"kiosk"}
    refused = await service.stub.ListEntries(
        pb.ListEntriesRequest(outcome="refused"), metadata=service.as_("kiosk")
    )
    assert [e.rule_ids[0] for e in refused.entries] == ["privacy.ssn.block"] * 3


async def test_app_asking_for_another_app_is_denied(service: Service) -> None:
    """Naming another app in ListEntries, or fetching its entry, is PERMISSION_DENIED; its own
    entry is returned."""
    denied = service.stub.ListEntries(
        pb.ListEntriesRequest(app="notes"), metadata=service.as_("kiosk")
    )
    assert await _code(denied) == grpc.StatusCode.PERMISSION_DENIED
    ids = service.populated.population.ids
    notes_entry, kiosk_entry = ids[7], ids[0]
    other = service.stub.GetEntry(pb.GetEntryRequest(id=notes_entry), metadata=service.as_("kiosk"))
    assert await _code(other) == grpc.StatusCode.PERMISSION_DENIED
    own = await service.stub.GetEntry(
        pb.GetEntryRequest(id=kiosk_entry), metadata=service.as_("kiosk")
    )
    assert own.app == "kiosk"
    assert own.kind == "intent"
    assert own.scores["confidence"] == 0.31


async def test_only_admins_verify_and_checkpoint(service: Service) -> None:
    """Verify and Checkpoint are PERMISSION_DENIED to apps."""
    assert await _code(service.stub.Verify(pb.VerifyRequest(), metadata=service.as_("kiosk"))) == (
        grpc.StatusCode.PERMISSION_DENIED
    )
    assert (
        await _code(service.stub.Checkpoint(pb.CheckpointRequest(), metadata=service.as_("kiosk")))
        == grpc.StatusCode.PERMISSION_DENIED
    )


async def test_admin_checkpoint_then_verify_detects_tampering(service: Service) -> None:
    """Checkpoint returns a signed, exportable checkpoint; Verify passes with it, then reports
    the modified entry after tampering."""
    admin = service.as_("ops", "admin")
    made = await service.stub.Checkpoint(pb.CheckpointRequest(), metadata=admin)
    exported = Checkpoint.from_json(made.checkpoint_json)
    assert made.entry_count == 60
    assert exported.signature_valid(bytes(made.public_key))
    request = pb.VerifyRequest(checkpoints_json=[made.checkpoint_json], public_key=made.public_key)
    ok = await service.stub.Verify(request, metadata=admin)
    assert ok.ok, ok.problems
    assert ok.entries_checked == 60
    db = attacker(service.populated.path)
    db.execute("UPDATE entries SET body = json_set(body, '$.app', 'x') WHERE seq = 30")
    db.close()
    bad = await service.stub.Verify(request, metadata=admin)
    assert not bad.ok
    assert bad.first_bad_seq == 30
    assert bad.first_bad_id == service.populated.population.ids[29]
    assert not verify_ledger(service.populated.path).ok


async def test_bad_requests_map_to_grpc_statuses(service: Service) -> None:
    """Bad page tokens, sizes and dates are INVALID_ARGUMENT; unknown ids NOT_FOUND."""
    admin = service.as_("ops", "admin")
    for request in (
        pb.ListEntriesRequest(page_token="abc"),
        pb.ListEntriesRequest(page_size=5000),
        pb.ListEntriesRequest(since="last tuesday"),
        pb.ListEntriesRequest(outcome="exploded"),
    ):
        assert await _code(service.stub.ListEntries(request, metadata=admin)) == (
            grpc.StatusCode.INVALID_ARGUMENT
        )
    missing = service.stub.GetEntry(
        pb.GetEntryRequest(id="01ZZZZZZZZZZZZZZZZZZZZZZZZ"), metadata=admin
    )
    assert await _code(missing) == grpc.StatusCode.NOT_FOUND
