"""``handoffd`` with its imports done ahead of time: ``python -m tests.system.prewarmed_daemon
CONFIG`` imports :mod:`handoffd.server`, then waits for one line on stdin and runs the daemon's
real entry point, ``handoffd.server.main(["--config", CONFIG])``, in this same process.

Importing the daemon costs seconds of CPU (the OpenAI SDK's types alone take ~2 s on a busy
2-core machine) and holds no state: the crash test starts the next daemon's imports while the
current one is under load, so each restart only pays for what a restart really does (open the
ledger and budget store, load the model). The process that is killed and restarted is the daemon.
"""

from __future__ import annotations

import sys

import handoffd.server


def run() -> int:
    config = sys.argv[1]
    if not sys.stdin.readline():  # the test went away before saying go
        return 0
    return handoffd.server.main(["--config", config])


if __name__ == "__main__":
    sys.exit(run())
