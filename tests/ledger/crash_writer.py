"""A ledger writer to be killed: prints every id as soon as record_* returned it (acknowledged).

Usage: python -m tests.ledger.crash_writer LEDGER_PATH WRITERS
Lines: "I <intent id>" and "O <outcome id> <intent id>", flushed one by one.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from handoffd.ledger import AuditLedger, HandoffIntent, HandoffOutcome, Outcome


async def _writer(ledger: AuditLedger, n: int) -> None:
    while True:
        intent_id = await ledger.record_intent(
            HandoffIntent(
                app=f"app{n % 3}",
                prompt_hmac=ledger.prompt_digest(f"prompt {n}"),
                cloud_target="openai",
                cloud_model="m",
                rule_ids=("router.cascade",),
            )
        )
        sys.stdout.write(f"I {intent_id}\n")
        sys.stdout.flush()
        outcome_id = await ledger.record_outcome(
            intent_id, HandoffOutcome(Outcome.SENT, tokens_in=10, tokens_out=5)
        )
        sys.stdout.write(f"O {outcome_id} {intent_id}\n")
        sys.stdout.flush()


async def main(path: Path, writers: int) -> None:
    ledger = await AuditLedger.open(path, hmac_key=b"k" * 32, signing_key=None)
    sys.stdout.write("READY\n")
    sys.stdout.flush()
    await asyncio.gather(*(_writer(ledger, n) for n in range(writers)))


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), int(sys.argv[2])))
