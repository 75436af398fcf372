"""``handoffctl audit`` on a populated ledger (click's CliRunner, real files)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result
from cryptography.hazmat.primitives import serialization
from handoffd.cli.audit_cmds import audit
from handoffd.ledger import Checkpoint

from tests.ledger.conftest import PopulatedLedger
from tests.ledger.ledger_testkit import attacker, intent, open_ledger


def run(populated: PopulatedLedger, *args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(audit, ["--ledger", str(populated.path), *args], input=input)


def key_file(populated: PopulatedLedger, tmp_path: Path) -> Path:
    path = tmp_path / "signing.pem"
    path.write_bytes(
        populated.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


def test_list_is_the_default_subcommand(populated: PopulatedLedger) -> None:
    """`audit` alone and `audit --app X` list entries, like `audit list`."""
    bare = run(populated, "--limit", "5", "--json")
    assert bare.exit_code == 0, bare.output
    assert len(json.loads(bare.output)) == 5
    filtered = run(populated, "--app", "notes", "--limit", "0", "--json")
    assert filtered.exit_code == 0, filtered.output
    apps = {e["app"] for e in json.loads(filtered.output)}
    assert apps == {"notes"}
    table = CliRunner().invoke(audit, ["--ledger", str(populated.path)])
    assert table.exit_code == 0
    assert "50 of 60 entries" in table.output


def test_list_filters_and_formats(populated: PopulatedLedger) -> None:
    """Filters combine (outcome, rule, route, kind, since/until); --json is newest first and
    --jsonl is one object per line."""

    def ids(*args: str) -> list[dict[str, Any]]:
        result = run(populated, "list", "--limit", "0", "--json", *args)
        assert result.exit_code == 0, result.output
        return list(json.loads(result.output))

    assert len(ids()) == 60
    refused = ids("--outcome", "refused")
    assert len(refused) == 6
    assert {e["route"] for e in refused} == {"denied"}
    assert len(ids("--rule", "budget.daily")) == 3
    assert len(ids("--route", "local_fallback")) == 9
    assert len(ids("--kind", "intent", "--app", "kiosk")) == 9
    day2 = ids("--since", "2026-11-02", "--until", "2026-11-03")
    assert len(day2) == 20
    assert all(str(e["time"]).startswith("2026-11-02") for e in day2)
    newest = ids()
    assert [e["seq"] for e in newest] == sorted((e["seq"] for e in newest), reverse=True)
    lines = run(populated, "list", "--jsonl", "--limit", "3").output.splitlines()
    assert [json.loads(line)["seq"] for line in lines] == [60, 59, 58]


def test_table_shows_ids_and_bad_input_says_what_to_type(populated: PopulatedLedger) -> None:
    """The rich table shows full ids; a bad date names an accepted form."""
    result = run(populated, "list", "--limit", "2")
    assert result.exit_code == 0
    assert populated.population.ids[-1] in result.output
    bad = run(populated, "list", "--since", "yesterday")
    assert bad.exit_code == 1
    assert "2026-11-03" in bad.output


def test_show_by_id_and_prefix(populated: PopulatedLedger) -> None:
    """show takes a full id or a unique prefix; an unknown id says how to find ids."""
    target = populated.population.ids[6]
    full = run(populated, "show", target, "--json")
    assert full.exit_code == 0, full.output
    data = json.loads(full.output)
    assert data["id"] == target
    assert data["outcome"] == "refused"
    table = run(populated, "show", target)
    assert table.exit_code == 0
    assert "privacy.ssn.block" in table.output
    missing = run(populated, "show", "01ZZZZZZZZZZZZZZZZZZZZZZZZ")
    assert missing.exit_code == 1
    assert "handoffctl audit list" in missing.output


def test_stats_per_app_and_day(populated: PopulatedLedger) -> None:
    """stats counts handoffs, refusals, fallbacks, tokens and spend per app and day, with the
    top rules."""
    result = run(populated, "stats", "--json")
    assert result.exit_code == 0, result.output
    rows = {(r["app"], r["day"]): r for r in json.loads(result.output)}
    pop = populated.population
    assert set(rows) == set(pop.handoffs)
    for key, row in rows.items():
        assert row["handoffs"] == pop.handoffs[key]
        assert row["refusals"] == pop.refusals.get(key, 0)
        assert row["fallbacks"] == 1
        assert row["tokens_in"] == 300
        assert row["tokens_out"] == 100
        assert abs(row["spend_usd"] - pop.spend[key]) < 1e-12
    kiosk = rows[("kiosk", "2026-11-01")]["top_rules"]
    assert kiosk[0] == {"rule_id": "router.cascade.low_confidence", "count": 3}
    assert {"rule_id": "privacy.ssn.block", "count": 1} in kiosk
    table = run(populated, "stats", "--app", "robot")
    assert table.exit_code == 0
    assert "robot" in table.output
    assert "kiosk" not in table.output


def test_export_jsonl_and_csv(populated: PopulatedLedger, tmp_path: Path) -> None:
    """export writes every matching entry, oldest first, as JSON lines or CSV."""
    out = tmp_path / "all.jsonl"
    result = run(populated, "export", "--out", str(out))
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [e["id"] for e in lines] == populated.population.ids
    csv_run = run(populated, "export", "--format", "csv", "--app", "kiosk")
    assert csv_run.exit_code == 0
    rows = list(csv.DictReader(io.StringIO(csv_run.output)))
    assert len(rows) == 21
    assert {r["app"] for r in rows} == {"kiosk"}
    assert json.loads(rows[0]["scores"]) == {"confidence": 0.31, "threshold": 0.5}


def test_html_report_is_one_offline_page(populated: PopulatedLedger, tmp_path: Path) -> None:
    """report --html writes one page with inline SVG charts per app, the refusal reasons and
    the verification result, and references nothing outside itself."""
    page = tmp_path / "report.html"
    result = run(populated, "report", "--html", str(page))
    assert result.exit_code == 0, result.output
    html = page.read_text()
    assert html.count("<svg") == 4
    assert html.count('class="series"') == 9  # 3 apps x (spend, handoffs, refusals)
    assert "privacy.ssn.block" in html
    assert "budget.daily" in html
    assert "OK: 60 entries" in html
    for outside in ("<script", "src=", "href=", "http:", "https:", "@import", "url("):
        assert outside not in html, outside


def test_verify_exit_codes_and_first_bad_entry(populated: PopulatedLedger) -> None:
    """verify exits 0 on an intact ledger and 1 after tampering, naming the entry."""
    ok = run(populated, "verify", "--checkpoint", str(populated.exported_file))
    assert ok.exit_code == 0, ok.output
    assert ok.output.startswith("OK: 60 entries")
    db = attacker(populated.path)
    db.execute("UPDATE entries SET body = json_set(body, '$.tokens_out', 1) WHERE seq = 12")
    db.close()
    bad = run(populated, "verify", "--json")
    assert bad.exit_code == 1
    report = json.loads(bad.output)
    assert report["first_bad_seq"] == 12
    assert report["first_bad_id"] == populated.population.ids[11]
    text = run(populated, "verify")
    assert "TAMPERED" in text.output
    assert populated.population.ids[11] in text.output


def test_checkpoint_export_and_verify_with_it(populated: PopulatedLedger, tmp_path: Path) -> None:
    """checkpoint --out signs the verified head with the device key; --latest exports the
    newest stored one; both verify the ledger (with the public key pinned)."""
    out = tmp_path / "cp.json"
    made = run(
        populated,
        "checkpoint",
        "--out",
        str(out),
        "--signing-key",
        str(key_file(populated, tmp_path)),
    )
    assert made.exit_code == 0, made.output
    assert Checkpoint.read(out).entry_count == 60
    latest = tmp_path / "latest.json"
    assert run(populated, "checkpoint", "--out", str(latest), "--latest").exit_code == 0
    assert Checkpoint.read(latest) == populated.exported
    pub = tmp_path / "device.pub"
    pub.write_text(populated.exported.public_key.hex())
    check = run(
        populated,
        "verify",
        "--checkpoint",
        str(out),
        "--checkpoint",
        str(latest),
        "--public-key",
        str(pub),
    )
    assert check.exit_code == 0, check.output


def test_prune_asks_and_then_removes(populated: PopulatedLedger, tmp_path: Path) -> None:
    """prune asks before removing (no: nothing happens), then removes and anchors."""
    args = [
        "prune",
        "--before",
        "2026-11-02",
        "--signing-key",
        str(key_file(populated, tmp_path)),
        "--checkpoint-dir",
        str(tmp_path / "cps"),
    ]
    declined = run(populated, *args, input="n\n")
    assert declined.exit_code == 1
    assert len(json.loads(run(populated, "--limit", "0", "--json").output)) == 60
    done = run(populated, *args, "--yes")
    assert done.exit_code == 0, done.output
    assert "removed 20 entries" in done.output
    assert len(json.loads(run(populated, "--limit", "0", "--json").output)) == 40
    assert run(populated, "verify").exit_code == 0


def test_missing_ledger_says_where_it_looked(tmp_path: Path) -> None:
    """Pointing at no ledger explains who creates it and how to pass another path."""
    result = CliRunner().invoke(audit, ["--ledger", str(tmp_path / "none.db"), "list"])
    assert result.exit_code == 1
    assert "--ledger PATH" in result.output


async def test_review_works_while_the_daemon_writes(tmp_path: Path) -> None:
    """The read-only CLI lists and verifies a ledger that an open AuditLedger is writing."""
    path = tmp_path / "live.db"
    ledger = await open_ledger(path)
    try:
        await ledger.record_intent(intent(ledger, "live"))
        listed = CliRunner().invoke(audit, ["--ledger", str(path), "--json"])
        assert listed.exit_code == 0, listed.output
        assert [e["app"] for e in json.loads(listed.output)] == ["live"]
        await ledger.record_intent(intent(ledger, "live"))
        verified = CliRunner().invoke(audit, ["--ledger", str(path), "verify"])
        assert verified.exit_code == 0
        assert "OK: 2 entries" in verified.output
    finally:
        await ledger.aclose()
