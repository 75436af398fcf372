"""The ``handoffctl`` command group. Subcommands live in small modules, one area each."""

from __future__ import annotations

import sys

import click

from handoffd import __version__
from handoffd.cli.apps_cmds import apps
from handoffd.cli.audit_cmds import audit
from handoffd.cli.chat_cmds import chat, explain, models, status
from handoffd.cli.model_cmds import model
from handoffd.cli.policy_cmds import budget, policy
from handoffd.cli.router_cmds import router
from handoffd.errors import HandoffdError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="handoffctl")
def cli() -> None:
    """Talk to and administer a running handoffd.

    The daemon is found at $HANDOFFD_SOCKET, or the default socket
    ($XDG_RUNTIME_DIR/handoffd/handoffd.sock, /run/handoffd/handoffd.sock as root).
    """


for command in (chat, explain, status, models, model, policy, budget, audit, apps, router):
    cli.add_command(command)


def main() -> None:
    try:
        code = cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except HandoffdError as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
