"""``handoffctl apps ...``: create, list and revoke app identities (bearer tokens).

Tokens live hashed in the token file (``auth.token_file``, default ``<state dir>/tokens.json``);
``apps add`` prints a new token once, on stdout alone, so that ``TOKEN=$(handoffctl apps add
myapp)`` works. The running daemon notices added and revoked apps within ``auth.token_refresh_s``
(1 s by default): no restart or reload is needed. Run as root or as the daemon's user.
"""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from handoffd.auth import TokenStore
from handoffd.auth.tokens import default_token_file
from handoffd.cli.output import echo_json
from handoffd.domain import CallerRole
from handoffd.schema.auth import AuthSettings
from handoffd.settings import load_settings, state_dir


def _configured_auth(config: Path | None) -> AuthSettings:
    return load_settings(config).auth


def resolve_token_file(token_file: Path | None, config: Path | None) -> Path:
    """``--token-file``, else ``auth.token_file`` from the config, else the state dir's."""
    if token_file is not None:
        return token_file
    configured = _configured_auth(config).token_file
    return configured if configured is not None else default_token_file(state_dir())


class _AppsContext:
    def __init__(self, token_file: Path | None, config: Path | None) -> None:
        self.token_file = token_file
        self.config = config

    def store(self) -> TokenStore:
        return TokenStore(resolve_token_file(self.token_file, self.config))


@click.group()
@click.option(
    "--config",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="HANDOFFD_CONFIG",
    help="daemon config file, for auth.token_file and app sockets [$HANDOFFD_CONFIG]",
)
@click.option(
    "--token-file",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="HANDOFFD_TOKEN_FILE",
    help="token file to edit (default: auth.token_file, or <state dir>/tokens.json)",
)
@click.pass_context
def apps(ctx: click.Context, config: Path | None, token_file: Path | None) -> None:
    """Manage app identities: tokens for TCP (and optionally Unix) callers.

    Apps send their token as gRPC metadata 'authorization: Bearer hfd_...'. Per-app Unix
    sockets need no token: they are configured under auth.apps in the daemon config.
    """
    ctx.obj = _AppsContext(token_file, config)


@apps.command("add")
@click.argument("name")
@click.option(
    "--role",
    type=click.Choice([r.value for r in CallerRole]),
    default=CallerRole.APP.value,
    show_default=True,
    help="app: chat, explain, list models; admin: also status, audit ledger, policy reload",
)
@click.pass_obj
def add(obj: _AppsContext, name: str, role: str) -> None:
    """Create app NAME and print its token (shown this once, never stored in clear)."""
    store = obj.store()
    token = store.add(name, CallerRole(role))
    click.echo(token)
    click.echo(
        f"Created app {name!r} with role {role!r} in {store.path}.\n"
        "This token is shown once: store it now (e.g. in the app's secret store). "
        "The app sends it as 'authorization: Bearer <token>'.",
        err=True,
    )


@apps.command("list")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@click.pass_obj
def list_apps(obj: _AppsContext, as_json: bool) -> None:
    """List apps: those with tokens and those with their own socket."""
    records = obj.store().list()
    sockets = _configured_auth(obj.config).apps
    rows: list[dict[str, str]] = [
        {
            "name": r.app,
            "role": r.role.value,
            "via": "token",
            "token": r.hint + "…",
            "created": r.created,
        }
        for r in records
    ]
    rows += [
        {
            "name": name,
            "role": app.role,
            "via": "socket",
            "token": "",
            "created": "",
            "socket": str(app.socket) if app.socket else "(runtime dir)/apps/" + name,
            "group": app.group,
        }
        for name, app in sorted(sockets.items())
    ]
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("no apps yet: create one with `handoffctl apps add NAME`", err=True)
        return
    table = Table("name", "role", "via", "token / socket", "created")
    for row in rows:
        where = row["token"] if row["via"] == "token" else f"{row['socket']} (group {row['group']})"
        table.add_row(row["name"], row["role"], row["via"], where, row["created"])
    Console().print(table)


@apps.command("revoke")
@click.argument("name")
@click.pass_obj
def revoke(obj: _AppsContext, name: str) -> None:
    """Delete app NAME's token: the daemon refuses it within auth.token_refresh_s seconds."""
    store = obj.store()
    record = store.revoke(name)
    click.echo(f"Revoked the token of app {record.app!r} ({record.hint}…) in {store.path}.")
