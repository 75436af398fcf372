"""Writing entries out as JSON lines or CSV (streamed: a million entries never sit in memory)."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from dataclasses import fields
from typing import Any, TextIO

from handoffd.ledger.entries import LedgerEntry

FORMATS = ("jsonl", "csv")
CSV_FIELDS = [f.name for f in fields(LedgerEntry)]


def _csv_row(entry: LedgerEntry) -> dict[str, Any]:
    row = entry.to_dict()
    for key in ("scores", "redaction", "rule_ids"):
        row[key] = json.dumps(row[key], ensure_ascii=False, sort_keys=True)
    return row


def write_entries(entries: Iterable[LedgerEntry], fmt: str, out: TextIO) -> int:
    """Write ``entries`` to ``out`` as ``jsonl`` (one object per line) or ``csv`` (a header,
    then one row per entry; mappings and lists as JSON text). Returns how many were written."""
    count = 0
    if fmt == "csv":
        writer = csv.DictWriter(out, fieldnames=CSV_FIELDS)
        writer.writeheader()
        for entry in entries:
            writer.writerow(_csv_row(entry))
            count += 1
        return count
    for entry in entries:
        out.write(json.dumps(entry.to_dict(), ensure_ascii=False) + "\n")
        count += 1
    return count
