"""The hash chain: canonical serialization of an entry and the hash that links it to the last one.

Canonical serialization (version 1)
-----------------------------------
An entry's *body* is the JSON object of its fields (see :mod:`handoffd.ledger.entries`), written
with keys sorted by code point, no insignificant whitespace (separators ``,`` and ``:``), non-ASCII
characters as themselves (not ``\\u`` escapes), floats in Python's shortest round-trip form, and
no NaN or infinity. The body is stored verbatim (column ``entries.body``), so a verifier hashes
the stored text and never needs to re-serialize anything: any tool that can read SQLite and
compute SHA-256 can check a ledger.

Entry hash
----------
``entry_hash = hex(SHA-256(ascii(seq) || "\\n" || prev_hash || "\\n" || utf8(body)))`` where
``seq`` is the entry's 1-based position in the ledger as a decimal string and ``prev_hash`` is the
64-hex-digit hash of entry ``seq - 1`` (:data:`GENESIS_HASH` for the first entry). Changing,
deleting, inserting or reordering an entry breaks the link at that point. A plain chain cannot see
its tail being cut off, nor the whole chain being recomputed after a change: signed checkpoints
(:mod:`handoffd.ledger.checkpoints`) kept off the device close both gaps.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping

from handoffd.errors import InvalidRequest

#: the ``prev_hash`` of the first entry
GENESIS_HASH = "0" * 64
#: version of the body format; stored in every body as ``"v"``
BODY_VERSION = 1


def canonical_json(fields: Mapping[str, object]) -> str:
    """Serialize ``fields`` canonically (see the module docstring)."""
    try:
        return json.dumps(
            fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
    except ValueError as exc:  # NaN or infinity somewhere
        bad = sorted(k for k, v in fields.items() if _has_non_finite(v))
        raise InvalidRequest(
            f"ledger entry field(s) {', '.join(bad) or '?'} hold NaN or infinity: "
            "pass finite numbers",
            field=bad[0] if bad else None,
        ) from exc


def _has_non_finite(value: object) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, Mapping):
        return any(_has_non_finite(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_has_non_finite(v) for v in value)
    return False


def entry_hash(seq: int, prev_hash: str, body: str) -> str:
    """The hash of the entry at position ``seq`` whose predecessor hashes to ``prev_hash``."""
    digest = hashlib.sha256(f"{seq}\n{prev_hash}\n".encode("ascii"))
    digest.update(body.encode("utf-8"))
    return digest.hexdigest()
