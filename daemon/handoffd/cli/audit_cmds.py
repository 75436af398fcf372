"""``handoffctl audit ...``: review, verify, export and prune the audit ledger.

Everything but ``prune`` opens the ledger read-only and works while the daemon runs. ``audit``
alone (or with only filters, e.g. ``audit --app kiosk``) runs ``audit list``. The ledger is
``--ledger PATH``, else ``ledger.path`` from the daemon config, else
``<state dir>/ledger.sqlite3``. ``checkpoint`` and ``prune`` sign with the device key, so run
them as the daemon's user (or root).
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, ParamSpec, TypeVar

import click
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
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
from handoffd.ledger.export import FORMATS, write_entries
from handoffd.ledger.html_report import render_html_report
from handoffd.ledger.keys import read_signing_key
from handoffd.ledger.times import format_time, normalize_bound, parse_moment
from handoffd.schema.ledger import LedgerSettings
from handoffd.settings import load_settings, state_dir

P = ParamSpec("P")
T = TypeVar("T")
_EXISTING_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


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
        takes_value = {o for p in self.params if isinstance(p, click.Option) for o in p.opts}
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


def _options(*options: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def apply(fn: Any) -> Any:
        for option in reversed(options):
            fn = option(fn)
        return fn

    return apply


_filters = _options(
    click.option("--app", help="only this app's entries"),
    click.option("--since", help="from this date/time, UTC (2026-11-03 or ...T14:30Z)"),
    click.option("--until", help="before this date/time, UTC"),
)
_entry_filters = _options(
    _filters,
    click.option("--route", type=click.Choice(["cloud", "local_fallback", "denied"])),
    click.option("--outcome", type=click.Choice(["sent", "refused", "failed", "fallback"])),
    click.option("--rule", "rule_id", help="only entries that name this rule id"),
    click.option("--kind", type=click.Choice(["intent", "outcome"])),
)


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


def _print_table(title: str, columns: str, rows: list[list[str]]) -> None:
    """``columns``: space-separated names; a trailing ``>`` right-aligns, ``!`` never wraps."""
    table = Table(title=title)
    for name in columns.split():
        justify: Literal["left", "right"] = "right" if name.endswith(">") else "left"
        table.add_column(name.rstrip(">!").replace("_", " "), justify=justify, no_wrap="!" in name)
    for row in rows:
        table.add_row(*row)
    _console().print(table)


def _entry_row(e: LedgerEntry) -> list[str]:
    cost = e.settled_cost_usd if e.kind == "outcome" else e.estimated_cost_usd
    target = "/".join(x for x in (e.cloud_target, e.cloud_model) if x) or "-"
    when = e.time[:19].replace("T", " ")
    tokens, rules = f"{e.tokens_in}/{e.tokens_out}", _short(", ".join(e.rule_ids), 32)
    return [when, e.id, e.app, e.kind, e.route, e.outcome or "-", _short(target), tokens,
            f"{cost:.4f}", rules]  # fmt: skip


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
        write_entries(entries, "jsonl", sys.stdout)
        return
    if not entries:
        click.echo(
            f"no entries match (the ledger holds {total}); widen the filters, "
            "or see `handoffctl audit stats`",
            err=True,
        )
        return
    _print_table(
        f"audit ledger: {len(entries)} of {total} entries, newest first",
        "time_(UTC)! id! app kind route outcome target/model tokens> cost_$> rules",
        [_entry_row(e) for e in entries],
    )


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
    _print_table(
        "handoffs per app and day (UTC)",
        "day app handoffs> sent> refused> fallback> failed> tokens> spend_$> top_rules",
        [
            [r.day, r.app]
            + [str(n) for n in (r.handoffs, r.sent, r.refusals, r.fallbacks, r.failed)]
            + [f"{r.tokens_in + r.tokens_out:,}", f"{r.spend_usd:.4f}"]
            + [", ".join(f"{t.rule_id} ({t.count})" for t in r.top_rules)]
            for r in rows
        ],
    )


@audit.command("export")
@_entry_filters
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="jsonl")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="default: stdout")
@click.pass_obj
@_friendly
def export(obj: _AuditContext, /, fmt: str, out: Path | None, **filters: str | None) -> None:
    """Export entries, oldest first (streamed), as JSON lines or CSV."""
    with obj.reader() as reader:
        entries = reader.iter_entries(EntryFilter(**filters))
        if out is None:
            write_entries(entries, fmt, sys.stdout)
            return
        with open(out, "w", encoding="utf-8", newline="") as handle:
            count = write_entries(entries, fmt, handle)
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
    "--checkpoint", "checkpoint_files", multiple=True, type=_EXISTING_FILE,
    help="an exported checkpoint kept off the device (repeatable)",
)  # fmt: skip
@click.option(
    "--public-key", type=_EXISTING_FILE,
    help="the device's Ed25519 public key; every checkpoint must be signed by it",
)  # fmt: skip
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
@_friendly
def verify(
    obj: _AuditContext, checkpoint_files: tuple[Path, ...], public_key: Path | None, as_json: bool
) -> None:
    """Check the hash chain and signed checkpoints; exit 1 if the ledger was tampered with."""
    external = [Checkpoint.read(path) for path in checkpoint_files]
    pinned = read_public_key(public_key) if public_key else None
    result = verify_ledger(obj.path(), external=external, public_key=pinned)
    if as_json:
        echo_json(result.to_dict())
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


def _signing_key(key_file: Path | None) -> Ed25519PrivateKey:
    return read_signing_key(key_file) if key_file else load_signing_key(state_dir())


_KEY_OPTION = click.option(
    "--signing-key",
    "key_file",
    type=_EXISTING_FILE,
    help="Ed25519 key (default: $CREDENTIALS_DIRECTORY/ledger-signing-key or the state dir's)",
)


@audit.command("checkpoint")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="file or directory")
@click.option("--latest", is_flag=True, help="export the newest stored checkpoint (no key needed)")
@_KEY_OPTION
@click.pass_obj
@_friendly
def checkpoint(obj: _AuditContext, out: Path, latest: bool, key_file: Path | None) -> None:
    """Sign the verified head and export it: copy the file off the device."""
    if latest:
        with obj.reader() as reader:
            stored = reader.checkpoints()
        if not stored:
            raise click.ClickException("no stored checkpoint yet; drop --latest to sign one now")
        made = stored[-1]
    else:
        made, _ = checkpoint_current_head(obj.path(), _signing_key(key_file))
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
    obj: _AuditContext, before: str, yes: bool, checkpoint_dir: Path | None, key_file: Path | None
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
        obj.path(), before=moment, signing_key=_signing_key(key_file), checkpoint_dir=target
    )
    click.echo(
        f"removed {result.removed} entries; anchor: "
        f"{result.anchor.entry_count if result.anchor else 0} entries, exported to "
        f"{result.anchor_file}"
    )
