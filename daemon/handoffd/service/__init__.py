"""Running under systemd: the sd_notify protocol, the event-loop watchdog, SIGHUP reloads,
credentials and exit codes.

Used only by the server entry point. Nothing here imports a component: the server passes in the
callbacks (policy reload, health checks) that these helpers call.
"""

from handoffd.service.credentials import read_credential
from handoffd.service.exitcodes import EX_CONFIG, EX_SOFTWARE, exit_code_for
from handoffd.service.lifecycle import ServiceLifecycle
from handoffd.service.notify import Notifier
from handoffd.service.reload import ReloadHandler
from handoffd.service.watchdog import LoopWatchdog

__all__ = [
    "EX_CONFIG",
    "EX_SOFTWARE",
    "LoopWatchdog",
    "Notifier",
    "ReloadHandler",
    "ServiceLifecycle",
    "exit_code_for",
    "read_credential",
]
