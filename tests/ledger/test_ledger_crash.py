"""Durability: a writer process is killed with SIGKILL at random points, again and again."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from handoffd.ledger import verify_ledger

ROOT = Path(__file__).resolve().parents[2]
RUNS = 20


def _kill_after_random_acks(path: Path, rng: random.Random) -> set[str]:
    """Start a writer, let it acknowledge a random number of entries, SIGKILL it mid-stream.
    Returns every id it acknowledged."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.ledger.crash_writer", str(path), str(rng.choice([1, 8]))],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
        env=env,
        text=True,
    )
    acked: set[str] = set()
    assert proc.stdout is not None

    def take(line: str) -> None:
        kind, _, rest = line.partition(" ")
        if kind in ("I", "O") and rest:
            acked.add(rest.split()[0])

    try:
        for line in proc.stdout:  # log lines come first; READY once the ledger is open
            if line.strip() == "READY":
                break
        wanted = rng.randint(1, 120)
        while len(acked) < wanted:
            line = proc.stdout.readline()
            if not line:
                break
            take(line)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    # ids the killed process printed before it died were acknowledged too
    for line in proc.stdout.read().splitlines():
        take(line)
    proc.stdout.close()
    return acked


def test_every_acknowledged_entry_survives_sigkill(tmp_path: Path) -> None:
    """20 times: a writer (1 or 8 concurrent tasks) is SIGKILLed after a random number of
    acknowledgements. Every id it printed is in the file, no outcome lacks its intent, every
    row is whole, and the chain verifies, across all restarts on the same file."""
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    path = tmp_path / "ledger.sqlite3"
    acked: set[str] = set()
    for run in range(RUNS):
        acked |= _kill_after_random_acks(path, rng)
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        stored = {row[0] for row in db.execute("SELECT id FROM entries")}
        orphans = db.execute(
            "SELECT count(*) FROM entries o WHERE o.kind = 'outcome' AND NOT EXISTS "
            "(SELECT 1 FROM entries i WHERE i.id = o.intent_id AND i.kind = 'intent')"
        ).fetchone()[0]
        db.close()
        missing = acked - stored
        assert not missing, f"seed {seed}, run {run}: acknowledged but lost: {sorted(missing)[:3]}"
        assert orphans == 0, f"seed {seed}, run {run}"
        report = verify_ledger(path)
        assert report.ok, f"seed {seed}, run {run}: {report.problems}"
    assert len(acked) >= RUNS
