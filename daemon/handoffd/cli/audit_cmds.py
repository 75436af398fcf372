"""``handoffctl audit ...``: review, verify, export and prune the audit ledger.

Everything but ``prune`` opens the ledger read-only and works while the daemon runs. ``audit``
alone (or with only filters, e.g. ``audit --app kiosk``) runs ``audit list``. The ledger is
``--ledger PATH``, else ``ledger.path`` from the daemon config, else
``<state dir>/ledger.sqlite3``. ``checkpoint`` and ``prune`` sign with the device key, so run
them as the daemon's user (or root).
"""

from __future__ import annotations

import csv
import functools
import json
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import click
from rich.console import Console
from rich.table import Table

from handoffd.cli.output import echo_json
from handoffd.errors import HandoffdError
from handoffd.ledger import (
    Checkpoint,
    EntryFilter,
    LedgerEntry,
    LedgerReader,
    checkpoint_current_head,
    load_signing_key,
    prune_ledger,
    read_public_key,
    verify_ledger,
    write_checkpoint_file,
)
from handoffd.ledger.html_report import render_html_report
from handoffd.ledger.keys import parse_signing_key
from handoffd.ledger.times import format_time, normalize_bound, parse_moment
from handoffd.schema.ledger import LedgerSettings
from handoffd.settings import load_settings, state_dir

P = ParamSpec("P")
T = TypeVar("T")


def _friendly(fn: Callable[P, T]) -> Callable[P, T]:
    """Show project errors as one-line click errors (their messages say what to do next)."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return fn(*args, **kwargs)
        except HandoffdError as exc:
            raise click.ClickException(exc.message) from None

    return wrapper


class _DefaultGroup(click.Group):
    """A group that runs ``list`` when no subcommand is named."""

    default_command = "list"

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        takes_value = {
            opt for p in self.params if isinstance(p, click.Option) for opt in p.opts
        }
        i = 0
        while i < len(args):
            arg = args[i]
            if arg in ("-h", "--help"):
                return super().parse_args(ctx, args)
            if arg in takes_value:
                i += 2
            elif arg.split("=", 1)[0] in takes_value:
                i += 1
            else:
                break
        if i >= len(args) or args[i] not in self.commands:
            args = [*args[:i], self.default_command, *args[i:]]
        return super().parse_args(ctx, args)


class _AuditContext:
    def __init__(self, ledger: Path | None, config: Path | None) -> None:
        self._ledger = ledger
        self._config = config

    def settings(self) -> LedgerSettings:
        settings = load_settings(self._config)
        # TODO(wiring): becomes `settings.ledger` once Settings has the ledger section
        section = getattr(settings, "ledger", None)
        return section if isinstance(section, LedgerSettings) else LedgerSettings()

    def path(self) -> Path:
        if self._ledger is not None:
            return self._ledger
        return self.settings().resolved_path(state_dir())

    def reader(self) -> LedgerReader:
        return LedgerReader(self.path())


def _filters(fn: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--app", help="only this app's entries"),
        click.option("--since", help="from this date/time, UTC (2026-11-03 or ...T14:30Z)"),
        click.option("--until", help="before this date/time, UTC"),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _entry_filters(fn: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--route", type=click.Choice(["cloud", "local_fallback", "denied"])),
        click.option("--outcome", type=click.Choice(["sent", "refused", "failed", "fallback"])),
        click.option("--rule", "rule_id", help="only entries that name this rule id"),
        click.option("--kind", type=click.Choice(["intent", "outcome"])),
    ]
    for option in reversed(options):
        fn = option(fn)
    return _filters(fn)


@click.group(cls=_DefaultGroup)
@click.option(
    "--ledger",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="HANDOFFD_LEDGER",
    help="ledger file (default: ledger.path from the config, or <state dir>/ledger.sqlite3)",
)
@click.option(
    "--config",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="HANDOFFD_CONFIG",
    help="daemon config file, for ledger.path [$HANDOFFD_CONFIG]",
)
@click.pass_context
def audit(ctx: click.Context, ledger: Path | None, config: Path | None) -> None:
    """Review the audit ledger of cloud handoffs (default: `audit list`)."""
    ctx.obj = _AuditContext(ledger, config)


def _console() -> Console:
    """Rich output; piped output gets a wide fixed width so ids are never folded."""
    return Console() if sys.stdout.isatty() else Console(width=200)


def _short(text: str, width: int = 24) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


@audit.command("list")
@_entry_filters
@click.option("--limit", default=50, show_default=True, help="newest N entries (0: all)")
@click.option("--json", "as_json", is_flag=True, help="a JSON array")
@click.option("--jsonl", "as_jsonl", is_flag=True, help="one JSON object per line")
@click.pass_obj
@_friendly
def list_entries(
    obj: _AuditContext, /, limit: int, as_json: bool, as_jsonl: bool, **filters: str | None
) -> None:
    """List entries, newest first."""
    with obj.reader() as reader:
        entries = reader.entries(EntryFilter(**filters), limit=max(limit, 0))
        total = reader.count()
    if as_json:
        echo_json([e.to_dict() for e in entries])
        return
    if as_jsonl:
        for entry in entries:
            click.echo(json.dumps(entry.to_dict(), ensure_ascii=False))
        return
    if not entries:
        click.echo(
            f"no entries match (the ledger holds {total}); widen the filters, "
            "or see `handoffctl audit stats`",
            err=True,
        )
        return
    table = Table(title=f"audit ledger: {len(entries)} of {total} entries, newest first")
    table.add_column("time (UTC)", no_wrap=True)
    table.add_column("id", no_wrap=True, min_width=26)
    for column in ("app", "kind", "route", "outcome", "target/model"):
        table.add_column(column)
    for column in ("tokens", "cost $"):
        table.add_column(column, justify="right")
    table.add_column("rules")
    for e in entries:
        cost = e.settled_cost_usd if e.kind == "outcome" else e.estimated_cost_usd
        table.add_row(
            e.time[:19].replace("T", " "),
            e.id,
            e.app,
            e.kind,
            e.route,
            e.outcome or "-",
            _short("/".join(x for x in (e.cloud_target, e.cloud_model) if x) or "-"),
            f"{e.tokens_in}/{e.tokens_out}",
            f"{cost:.4f}",
            _short(", ".join(e.rule_ids), 32),
        )
    _console().print(table)


@audit.command("show")
@click.argument("entry_id")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
@_friendly
def show(obj: _AuditContext, entry_id: str, as_json: bool) -> None:
    """Show one entry (its id or a unique prefix of it)."""
    with obj.reader() as reader:
        entry = reader.get(entry_id)
    if as_json:
        echo_json(entry.to_dict())
        return
    table = Table(title=f"ledger entry #{entry.seq}", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for key, value in entry.to_dict().items():
        shown = json.dumps(value, ensure_ascii=False) if isinstance(value, dict | list) else value
        table.add_row(key, "" if shown is None else str(shown))
    _console().print(table)


@audit.command("stats")
@_filters
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
@_friendly
def stats(obj: _AuditContext, /, as_json: bool, **filters: str | None) -> None:
    """Per app and day: handoffs, refusals, fallbacks, tokens, spend, top rules."""
    with obj.reader() as reader:
        rows = reader.stats(EntryFilter(**filters))
    if as_json:
        echo_json([row.to_dict() for row in rows])
        return
    table = Table(title="handoffs per app and day (UTC)")
    table.add_column("day")
    table.add_column("app")
    for column in ("handoffs", "sent", "refused", "fallback", "failed", "tokens", "spend $"):
        table.add_column(column, justify="right")
    table.add_column("top rules")
    for r in rows:
        table.add_row(
            r.day,
            r.app,
            str(r.handoffs),
            str(r.sent),
            str(r.refusals),
            str(r.fallbacks),
            str(r.failed),
            f"{r.tokens_in + r.tokens_out:,}",
            f"{r.spend_usd:.4f}",
            ", ".join(f"{t.rule_id} ({t.count})" for t in r.top_rules),
        )
    _console().print(table)


_CSV_FIELDS = [f for f in LedgerEntry.__dataclass_fields__]


def _csv_row(entry: LedgerEntry) -> dict[str, Any]:
    row = entry.to_dict()
    for key in ("scores", "redaction", "rule_ids"):
        row[key] = json.dumps(row[key], ensure_ascii=False, sort_keys=True)
    return row


def _write_export(entries: Iterator[LedgerEntry], fmt: str, out: Any) -> int:
    count = 0
    if fmt == "csv":
        writer = csv.DictWriter(out, fieldnames=_CSV_FIELDS)
        writer.writeheader()
        for entry in entries:
            writer.writerow(_csv_row(entry))
            count += 1
    else:
        for entry in entries:
            out.write(json.dumps(entry.to_dict(), ensure_ascii=False) + "\n")
            count += 1
    return count


@audit.command("export")
@_entry_filters
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="default: stdout")
@click.pass_obj
@_friendly
def export(obj: _AuditContext, /, fmt: str, out: Path | None, **filters: str | None) -> None:
    """Export entries, oldest first (streamed), as JSON lines or CSV."""
    with obj.reader() as reader:
        entries = reader.iter_entries(EntryFilter(**filters))
        if out is None:
            _write_export(entries, fmt, sys.stdout)
            return
        with open(out, "w", encoding="utf-8", newline="") as handle:
            count = _write_export(entries, fmt, handle)
    click.echo(f"wrote {count} entries to {out}", err=True)


@audit.command("report")
@_filters
@click.option("--html", "html_file", required=True, type=click.Path(path_type=Path))
@click.option("--no-verify", is_flag=True, help="skip verifying the chain (faster)")
@click.pass_obj
@_friendly
def report(obj: _AuditContext, /, html_file: Path, no_verify: bool, **filters: str | None) -> None:
    """Write ONE self-contained HTML page: spend, handoffs, refusal reasons (offline)."""
    where = EntryFilter(**filters)
    path = obj.path()
    with obj.reader() as reader:
        rows = reader.stats(where)
        reasons = reader.refusal_reasons(where)
    verdict = None if no_verify else verify_ledger(path)
    scope = ", ".join(f"{k}={v}" for k, v in filters.items() if v) or "all entries"
    page = render_html_report(
        rows,
        reasons,
        ledger_path=str(path),
        generated_at=format_time(datetime.now(UTC))[:19] + "Z",
        scope=scope,
        verify_summary=verdict.summary() if verdict else None,
        verify_ok=verdict.ok if verdict else None,
    )
    html_file.write_text(page, encoding="utf-8")
    click.echo(f"wrote {html_file} ({len(rows)} app-days); open it in any browser", err=True)


@audit.command("verify")
@click.option(
    "--checkpoint",
    "checkpoint_files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="an exported checkpoint kept off the device (repeatable)",
)
@click.option(
    "--public-key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="the device's Ed25519 public key; every checkpoint must be signed by it",
)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
@_friendly
def verify(
    obj: _AuditContext,
    checkpoint_files: tuple[Path, ...],
    public_key: Path | None,
    as_json: bool,
) -> None:
    """Check the hash chain and signed checkpoints; exit 1 if the ledger was tampered with."""
    external = [Checkpoint.read(path) for path in checkpoint_files]
    pinned = read_public_key(public_key) if public_key else None
    result = verify_ledger(obj.path(), external=external, public_key=pinned)
    if as_json:
        echo_json(
            {
                "ok": result.ok,
                "entries_checked": result.entries_checked,
                "head_seq": result.head_seq,
                "head_hash": result.head_hash,
                "checkpoints_checked": result.checkpoints_checked,
                "first_bad_seq": result.first_bad_seq,
                "first_bad_id": result.first_bad_id,
                "problems": list(result.problems),
                "notes": list(result.notes),
            }
        )
    else:
        click.echo(result.summary())
        for problem in result.problems[1:]:
            click.echo(f"  also: {problem}")
        for note in result.notes:
            click.echo(f"  note: {note}")
        if result.ok and not external:
            click.echo(
                "  hint: only an exported checkpoint kept off the device can prove the tail "
                "was not cut and the chain not recomputed: pass --checkpoint FILE"
            )
    if not result.ok:
        sys.exit(1)


def _signing_key(signing_key: Path | None) -> Any:
    if signing_key is None:
        return load_signing_key(state_dir())
    return parse_signing_key(signing_key.read_bytes(), str(signing_key))


_KEY_OPTION = click.option(
    "--signing-key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Ed25519 key (default: $CREDENTIALS_DIRECTORY/ledger-signing-key or the state dir's)",
)


@audit.command("checkpoint")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="file or directory")
@click.option("--latest", is_flag=True, help="export the newest stored checkpoint (no key needed)")
@_KEY_OPTION
@click.pass_obj
@_friendly
def checkpoint(obj: _AuditContext, out: Path, latest: bool, signing_key: Path | None) -> None:
    """Sign the verified head and export it: copy the file off the device."""
    if latest:
        with obj.reader() as reader:
            stored = reader.checkpoints()
        if not stored:
            raise click.ClickException(
                "the ledger has no stored checkpoint yet; drop --latest to sign one now "
                "(as the daemon's user)"
            )
        made = stored[-1]
    else:
        made, _ = checkpoint_current_head(obj.path(), _signing_key(signing_key))
    written = write_checkpoint_file(made, out)
    click.echo(
        f"checkpoint of {made.entry_count} entries ({made.kind}, {made.time}) written to "
        f"{written}; later: handoffctl audit verify --checkpoint {written}"
    )


@audit.command("prune")
@click.option("--before", required=True, help="remove entries older than this date (UTC)")
@click.option("--yes", is_flag=True, help="do not ask for confirmation")
@click.option(
    "--checkpoint-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="also export the prune anchor here (default: ledger.checkpoint_dir)",
)
@_KEY_OPTION
@click.pass_obj
@_friendly
def prune(
    obj: _AuditContext,
    before: str,
    yes: bool,
    checkpoint_dir: Path | None,
    signing_key: Path | None,
) -> None:
    """Remove old entries; a signed anchor keeps the rest verifiable."""
    moment = parse_moment(before, field="--before")
    with obj.reader() as reader:
        cutoff = normalize_bound(before, field="--before")
        older = reader.count(EntryFilter(until=cutoff))
    if not older:
        click.echo(f"nothing to prune: no entries before {format_time(moment)}")
        return
    if not yes:
        click.confirm(
            f"remove {older} entries before {format_time(moment)} from {obj.path()}?",
            abort=True,
        )
    target = checkpoint_dir or obj.settings().resolved_checkpoint_dir(state_dir())
    result = prune_ledger(
        obj.path(), before=moment, signing_key=_signing_key(signing_key), checkpoint_dir=target
    )
    click.echo(
        f"removed {result.removed} entries; anchor: "
        f"{result.anchor.entry_count if result.anchor else 0} entries, exported to "
        f"{result.anchor_file}"
    )
