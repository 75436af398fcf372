"""Process exit codes the unit file relies on.

``RestartPreventExitStatus=78`` in ``handoffd.service``: a configuration error exits with 78
(EX_CONFIG from sysexits.h) and systemd does not restart a daemon that cannot start until an
administrator fixes a file. Anything else that kills the daemon exits non-zero and is restarted.
"""

from __future__ import annotations

from handoffd.errors import ConfigError

EX_OK = 0
#: an internal error (a bug); systemd restarts the service
EX_SOFTWARE = 70
#: the config, a policy or the model folder is invalid; systemd does not restart (see the unit)
EX_CONFIG = 78


def exit_code_for(exc: BaseException) -> int:
    """The exit code for an exception that ends the daemon."""
    if isinstance(exc, ConfigError):  # includes ModelError
        return EX_CONFIG
    return EX_SOFTWARE
