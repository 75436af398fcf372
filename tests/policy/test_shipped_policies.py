"""The shipped policies pass `handoffctl policy check`, the JSON Schema file is current, and the
CLI commands report problems, test results and budgets as documented."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from handoffd.cli.policy_cmds import budget, policy
from handoffd.policy import BudgetLedger, load_policy
from handoffd.schema.cloud import CloudPrices
from handoffd.schema.policy import policy_json_schema

POLICIES = Path(__file__).resolve().parents[2] / "policies"
SHIPPED = sorted(POLICIES.glob("*.yaml"))


def test_the_five_policies_are_shipped() -> None:
    """default, strict-privacy, metered-cloud, offline-only and per-app are all there."""
    names = {p.stem for p in SHIPPED}
    assert {"default", "strict-privacy", "metered-cloud", "offline-only", "per-app"} <= names


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_policy_passes_policy_check(path: Path) -> None:
    """Each shipped policy is valid and every embedded test passes with the real scanner."""
    result = CliRunner().invoke(policy, ["check", str(path)])
    assert result.exit_code == 0, result.output
    assert "valid" in result.output
    assert " 0 failed" in result.output
    assert len(load_policy([path]).cases) >= 3


def test_schema_file_is_up_to_date() -> None:
    """policies/policy.schema.json equals what the models generate (regenerate it with
    `handoffctl policy schema > policies/policy.schema.json`)."""
    shipped = json.loads((POLICIES / "policy.schema.json").read_text(encoding="utf-8"))
    assert shipped == policy_json_schema(), (
        "policies/policy.schema.json is stale (a config model changed): regenerate it with "
        "`handoffctl policy schema > policies/policy.schema.json`"
    )
    printed = CliRunner().invoke(policy, ["schema"])
    assert json.loads(printed.output) == shipped


def test_check_reports_invalid_file_with_location(tmp_path: Path) -> None:
    """An invalid file makes `policy check` exit 1 and print FILE:LINE:COL with the key."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nbudgets:\n  limits:\n    - {id: b, period: day, usd: -1}\n")
    result = CliRunner().invoke(policy, ["check", str(bad)])
    assert result.exit_code == 1
    assert f"{bad}:4:" in result.stderr
    assert "budgets.limits.0.usd" in result.stderr


def test_check_shows_failing_cases_and_exits_1(tmp_path: Path) -> None:
    """A failing embedded test is shown as FAIL with what differed, and the exit status is 1."""
    path = tmp_path / "p.yaml"
    path.write_text(
        "version: 1\ncloud: {allow: [lan]}\ntests:\n"
        "  - name: mail is pseudonymized\n"
        "    input: {prompt: 'write to bob@example.com'}\n"
        "    expect: {outcome: cloud, actions: {EMAIL: pseudonymize}}\n"
        "  - name: stays local\n"
        "    input: {prompt: 'hi'}\n"
        "    expect: {outcome: local}\n"
    )
    result = CliRunner().invoke(policy, ["check", str(path)])
    assert result.exit_code == 1
    assert "FAIL  mail is pseudonymized" in result.output
    assert "EMAIL action is redact (found 1), expected pseudonymize" in result.output
    assert "outcome is cloud" in result.output
    assert "0 passed, 2 failed" in result.output


def test_check_json_output(tmp_path: Path) -> None:
    """--json prints a machine-readable result: validity, hash and each case's outcome."""
    result = CliRunner().invoke(policy, ["check", "--json", str(POLICIES / "offline-only.yaml")])
    assert result.exit_code == 0
    data = json.loads(result.output)
    assert data["valid"] is True
    assert len(data["hash"]) == 64
    assert all(case["passed"] and case["outcome"] == "local" for case in data["cases"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 7\n")
    result = CliRunner().invoke(policy, ["check", "--json", str(bad)])
    assert result.exit_code == 1
    assert json.loads(result.output)["errors"][0].startswith(f"{bad}:1:")


def test_budget_command_shows_spend_and_left(tmp_path: Path) -> None:
    """`handoffctl budget` reads the store and shows each budget's spend and what is left."""
    db = tmp_path / "budget.sqlite3"
    pol_file = tmp_path / "p.yaml"
    pol_file.write_text(
        "version: 1\ncloud: {allow: [cheap]}\nbudgets:\n  limits:\n"
        "    - {id: budget.all, scope: global, period: month, usd: 10}\n"
    )
    loaded = load_policy([pol_file])

    async def spend() -> None:
        ledger = await BudgetLedger.open(
            db, {"cheap": CloudPrices(input=1.0, output=1.0)}, durable=False
        )
        try:
            res = await ledger.reserve(
                loaded.for_app("notes"), app="notes", target="cheap",
                prompt_tokens=500_000, max_tokens=500_000,
            )
            await ledger.settle(res, prompt_tokens=500_000, completion_tokens=250_000)
        finally:
            await ledger.aclose()

    asyncio.run(spend())
    result = CliRunner().invoke(budget, ["--db", str(db), "--policy", str(pol_file), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    [status] = data["budgets"]
    assert status["rule_id"] == "budget.all"
    assert status["settled_usd"] == pytest.approx(0.75)
    assert status["left_usd"] == pytest.approx(9.25)
    table = CliRunner(env={"COLUMNS": "200"}).invoke(
        budget, ["--db", str(db), "--policy", str(pol_file)]
    )
    assert table.exit_code == 0
    assert "budget.all" in table.output
    assert "$9.2500" in table.output
    assert "notes" in table.output


def test_budget_command_without_store_says_what_to_do(tmp_path: Path) -> None:
    """With no budget store yet, the command fails with a message saying why."""
    result = CliRunner().invoke(budget, ["--db", str(tmp_path / "none.sqlite3")])
    assert result.exit_code != 0
    assert "no budget store" in str(result.exception)


def test_check_with_config_checks_target_names_and_prices(tmp_path: Path) -> None:
    """With --config, target names are checked against the daemon's cloud targets, and the
    per-request ceiling is evaluated at their prices."""
    config = tmp_path / "config.yaml"
    config.write_text(
        "cloud:\n  targets:\n    cheap:\n      base_url: http://127.0.0.1:9/v1\n"
        "      model: m\n      no_api_key: true\n"
        "      price_usd_per_mtok: {input: 1.0, output: 1.0}\n"
    )
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("version: 1\ncloud: {allow: [cheap, premium]}\n")
    result = CliRunner().invoke(policy, ["check", "--config", str(config), str(unknown)])
    assert result.exit_code == 1
    assert f"{unknown}:2:" in result.stderr
    assert "unknown cloud target 'premium'" in result.stderr
    ceiling = tmp_path / "ceiling.yaml"
    ceiling.write_text(
        "version: 1\ncloud: {allow: [cheap]}\nbudgets:\n  max_cost_per_request: {usd: 0.001}\n"
        "tests:\n  - name: too big for the ceiling\n"
        "    input: {prompt: hi, prompt_tokens: 900, max_tokens: 200}\n"
        "    expect: {outcome: local, rule_ids: [budget.max_cost_per_request]}\n"
    )
    result = CliRunner().invoke(policy, ["check", "--config", str(config), str(ceiling)])
    assert result.exit_code == 0, result.output
