"""``handoffctl policy check | schema`` and ``handoffctl budget``: policies without the daemon.

``policy check FILE...`` validates the files exactly as the daemon does (every problem as
FILE:LINE:COL with the fix) and runs their embedded ``tests:`` with the real privacy scanner;
it exits 1 when a file is invalid or a case fails. ``budget`` reads the budget store read-only
and shows spend, open reservations and what is left per budget.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from handoffd.cli.output import echo_json
from handoffd.errors import ConfigError
from handoffd.policy import (
    CaseResult,
    EntitySummary,
    LoadedPolicy,
    PolicyEvaluator,
    load_policy,
    run_cases,
    summarize,
)
from handoffd.policy.budget import default_budget_path
from handoffd.policy.budget_report import BudgetSnapshot, budget_snapshot, open_readonly
from handoffd.privacy import PiiScanner
from handoffd.schema.cloud import CloudSettings
from handoffd.schema.policy import PolicySettings, policy_json_schema
from handoffd.schema.privacy import PrivacyConfig
from handoffd.settings import Settings, load_settings

config_option = click.option(
    "--config",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="HANDOFFD_CONFIG",
    default=None,
    help="Daemon config file [$HANDOFFD_CONFIG].",
)


def _settings(config: Path | None) -> Settings | None:
    return load_settings(config) if config is not None else None


def _cloud(settings: Settings | None) -> CloudSettings | None:
    return settings.cloud if settings is not None else None


def _policy_settings(settings: Settings | None) -> PolicySettings:
    return settings.policy if settings is not None else PolicySettings()


class _Scanners:
    """The real privacy scanner, one per distinct privacy section."""

    def __init__(self) -> None:
        self._by_config: dict[int, tuple[PrivacyConfig, PiiScanner]] = {}

    def __call__(self, text: str, config: PrivacyConfig) -> Mapping[str, EntitySummary]:
        entry = self._by_config.get(id(config))
        if entry is None or entry[0] is not config:
            entry = self._by_config[id(config)] = (config, PiiScanner(config))
        return summarize(entry[1].scan(text))


@click.group("policy")
def policy() -> None:
    """Check policy files and print their schema (no daemon needed)."""


@policy.command("check")
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path)
)
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def check(files: tuple[Path, ...], config: Path | None, as_json: bool) -> None:
    """Validate FILES (combined in order) and run their embedded tests.

    With --config, cloud target names are checked against the daemon's targets and costs are
    evaluated at their prices. Exits 1 if anything is wrong.
    """
    cloud = _cloud(_settings(config))
    known: Collection[str] | None = set(cloud.targets) if cloud is not None else None
    prices = (
        {name: t.price_usd_per_mtok for name, t in cloud.targets.items()}
        if cloud is not None
        else None
    )
    try:
        loaded = load_policy(files, known_targets=known)
    except ConfigError as exc:
        _report_invalid(files, exc, as_json)
        raise SystemExit(1) from None
    results = run_cases(loaded, _Scanners(), PolicyEvaluator(prices, log_shadow=False))
    failed = [r for r in results if not r.passed]
    if as_json:
        echo_json(
            {
                "valid": True,
                "files": [str(f) for f in files],
                "hash": loaded.hash,
                "apps": list(loaded.app_names),
                "cases": [
                    {
                        "name": r.name,
                        "passed": r.passed,
                        "problems": list(r.problems),
                        "outcome": r.verdict.outcome.value,
                        "rule_ids": list(r.verdict.rule_ids),
                    }
                    for r in results
                ],
            }
        )
    else:
        _print_check(files, loaded, results)
    if failed:
        raise SystemExit(1)


def _report_invalid(files: Sequence[Path], exc: ConfigError, as_json: bool) -> None:
    lines = exc.message.splitlines()
    if as_json:
        echo_json({"valid": False, "files": [str(f) for f in files], "errors": lines})
        return
    click.echo(f"invalid policy ({len(lines)} problem{'s' if len(lines) != 1 else ''}):", err=True)
    for line in lines:
        click.echo(f"  {line}", err=True)


def _print_check(
    files: Sequence[Path], loaded: LoadedPolicy, results: Sequence[CaseResult]
) -> None:
    doc = loaded.document
    rules = len(doc.labels) + len(doc.rate_limits) + len(doc.budgets.limits if doc.budgets else ())
    rules += sum(
        len(a.labels) + len(a.rate_limits) + len(a.budgets.limits if a.budgets else ())
        for a in doc.apps.values()
    )
    click.echo(
        f"{', '.join(str(f) for f in files)}: valid (hash {loaded.hash[:12]}, "
        f"{len(doc.apps)} app section(s), {rules} rule(s), {len(results)} test(s))"
    )
    for result in results:
        mark = "PASS" if result.passed else "FAIL"
        click.echo(f"  {mark}  {result.name}")
        for problem in result.problems:
            click.echo(f"        - {problem}")
    passed = sum(1 for r in results if r.passed)
    if results:
        click.echo(f"{passed} passed, {len(results) - passed} failed")


@policy.command("schema")
def schema() -> None:
    """Print the JSON Schema of policy files (for editors: yaml-language-server)."""
    click.echo(json.dumps(policy_json_schema(), indent=2, ensure_ascii=False))


@click.command("budget")
@config_option
@click.option(
    "--policy",
    "policy_files",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Policy file(s) (default: policy.files of the config).",
)
@click.option(
    "--db",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Budget store (default: policy.budget_db of the config, or <state dir>/budget.sqlite3).",
)
@click.option("--app", "apps", multiple=True, help="Only these apps (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def budget(
    config: Path | None,
    policy_files: tuple[Path, ...],
    db: Path | None,
    apps: tuple[str, ...],
    as_json: bool,
) -> None:
    """Show cloud spend, open reservations and what is left per budget."""
    settings = _settings(config)
    section = _policy_settings(settings)
    files = tuple(f.expanduser() for f in (policy_files or section.files))
    loaded = load_policy(files) if files else None
    path = (db or section.budget_db or default_budget_path()).expanduser()
    snapshot = asyncio.run(_snapshot(path, loaded, apps or None))
    if as_json:
        echo_json(snapshot.to_dict())
        return
    _print_snapshot(snapshot, has_policy=loaded is not None)


async def _snapshot(
    path: Path, loaded: LoadedPolicy | None, apps: Sequence[str] | None
) -> BudgetSnapshot:
    conn = await open_readonly(path)
    try:
        return await budget_snapshot(conn, loaded, time.time(), apps)
    finally:
        await conn.close()


def _usd(value: float) -> str:
    return f"${value:,.4f}"


def _duration(seconds: float) -> str:
    if seconds >= 86_400:
        return f"{seconds / 86_400:.1f} d"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.0f} min"


def _print_snapshot(snapshot: BudgetSnapshot, *, has_policy: bool) -> None:
    console = Console(file=sys.stdout)
    if snapshot.budgets:
        table = Table(title=f"Budgets ({snapshot.timezone})")
        table.add_column("budget", no_wrap=True)
        table.add_column("applies to")
        table.add_column("period", no_wrap=True)
        for column in ("limit", "settled", "reserved", "left"):
            table.add_column(column, justify="right", no_wrap=True)
        table.add_column("resets in", no_wrap=True)
        for s in snapshot.budgets:
            table.add_row(
                s.rule_id + (" (shadow)" if s.shadow else ""),
                s.app if s.app is not None else "all apps",
                s.period_label,
                _usd(s.limit_usd),
                _usd(s.settled_usd),
                _usd(s.reserved_usd),
                _usd(s.left_usd),
                _duration(s.resets_in_s),
            )
        console.print(table)
    elif not has_policy:
        console.print("no policy given (--policy FILE or policy.files): showing spend only")
    else:
        console.print("the policy defines no budgets")
    spend = Table(title="Settled spend per app")
    for column in ("app", "today", "this week", "this month"):
        spend.add_column(column)
    for row in snapshot.spend:
        spend.add_row(row.app, _usd(row.day_usd), _usd(row.week_usd), _usd(row.month_usd))
    console.print(spend)
    if snapshot.open_reservations:
        table = Table(title="Open reservations")
        for column in ("id", "app", "target", "reserved", "age", "expires in"):
            table.add_column(column)
        for r in snapshot.open_reservations:
            table.add_row(
                r.id[:12],
                r.app,
                r.target,
                _usd(r.reserved_usd),
                _duration(r.age_s),
                _duration(r.expires_in_s),
            )
        console.print(table)
    else:
        console.print("no open reservations")
