"""Monotonic ULIDs for ledger entry ids (https://github.com/ulid/spec).

26 characters of Crockford base32: 48 bits of milliseconds since the epoch, then 80 random bits.
Within one millisecond the random part is incremented, so ids made by one generator sort in the
order they were made. A few lines here instead of a dependency.
"""

from __future__ import annotations

import base64
import secrets
import threading
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_RANDOM_BITS = 80
_RANDOM_MAX = (1 << _RANDOM_BITS) - 1
ULID_LENGTH = 26


# RFC 4648 base32 (C-speed in the stdlib) re-lettered to Crockford's alphabet
_TO_CROCKFORD = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", _ALPHABET)


def _encode(value: int) -> str:
    # 20 bytes = 160 bits = 32 base32 digits; a ULID is the last 26 (130 bits, top 2 zero)
    return base64.b32encode(value.to_bytes(20, "big")).decode("ascii")[-ULID_LENGTH:].translate(
        _TO_CROCKFORD
    )


def is_ulid(text: str) -> bool:
    """Whether ``text`` has the shape of a ULID (26 Crockford base32 characters, upper case)."""
    return len(text) == ULID_LENGTH and text[0] in "01234567" and all(c in _ALPHABET for c in text)


class UlidGenerator:
    """Makes strictly increasing ULIDs; safe to share between threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms = -1
        self._last_random = 0

    def new(self) -> str:
        with self._lock:
            now_ms = time.time_ns() // 1_000_000
            if now_ms <= self._last_ms:
                # same millisecond, or the clock stepped back: keep ordering by incrementing
                now_ms = self._last_ms
                if self._last_random == _RANDOM_MAX:
                    now_ms += 1
                    self._last_random = secrets.randbits(_RANDOM_BITS - 1)
                else:
                    self._last_random += 1
            else:
                # leave headroom so increments within one millisecond cannot overflow
                self._last_random = secrets.randbits(_RANDOM_BITS - 1)
            self._last_ms = now_ms
            return _encode((now_ms << _RANDOM_BITS) | self._last_random)
