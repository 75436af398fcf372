"""Ledger timestamps: UTC, ISO 8601 with microseconds and a ``Z``, so text order is time order."""

from __future__ import annotations

from datetime import UTC, datetime

from handoffd.errors import InvalidRequest

_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def format_time(moment: datetime) -> str:
    """``moment`` as stored in the ledger (naive datetimes are taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime(_FORMAT)


def now_text() -> str:
    return format_time(datetime.now(UTC))


def parse_moment(text: str, *, field: str = "time") -> datetime:
    """Parse a date (``2026-11-03``, midnight UTC) or an ISO 8601 date-time (UTC if no offset).

    Raises :class:`InvalidRequest` naming ``field`` and an example of what is accepted.
    """
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidRequest(
            f"{field}: cannot read {text!r} as a date or time; "
            "write e.g. 2026-11-03 or 2026-11-03T14:30:00Z",
            field=field,
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def normalize_bound(text: str | None, *, field: str) -> str | None:
    """A user-given ``--since``/``--until`` as ledger time text (for comparisons in SQL)."""
    if text is None or text == "":
        return None
    return format_time(parse_moment(text, field=field))
