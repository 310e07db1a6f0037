"""WAIT's time inputs: `duration` ("10s", "5m", "1 days 3 hours", or seconds) and `until`
("yyyy-MM-dd HH:mm", "yyyy-MM-dd HH:mm <zone>", "yyyy-MM-dd"; UTC when no zone is given)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# Conductor's DateTimeUtils.parseDuration pattern; a bare number of seconds is accepted too.
_DURATION = re.compile(
    r"\s*(?:(\d+)\s*(?:days?|d))?"
    r"\s*(?:(\d+)\s*(?:hours?|hrs?|h))?"
    r"\s*(?:(\d+)\s*(?:minutes?|mins?|m))?"
    r"\s*(?:(\d+)\s*(?:seconds?|secs?|s))?\s*",
    re.IGNORECASE | re.ASCII,
)
_SECONDS = re.compile(r"\s*\d+\s*", re.ASCII)
_OFFSET = re.compile(r"([+-])(\d{2}):?(\d{2})", re.ASCII)


def parse_duration(value: object) -> int | None:
    """Seconds of a WAIT duration, None if unparseable."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value if value >= 0 else None
    if not isinstance(value, str):
        return None
    if _SECONDS.fullmatch(value):
        return int(value)
    match = _DURATION.fullmatch(value)
    if match is None or not any(match.groups()):
        return None
    days, hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


def _zone(name: str) -> timezone | ZoneInfo | None:
    offset = _OFFSET.fullmatch(name)
    if offset:
        sign = -1 if offset.group(1) == "-" else 1
        delta = timedelta(hours=int(offset.group(2)), minutes=int(offset.group(3)))
        return timezone(sign * delta)
    if name.upper() in ("UTC", "GMT", "Z"):
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def parse_until(value: object) -> int | None:
    """Epoch milliseconds of a WAIT `until`, None if unparseable."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    for fmt in ("%Y-%m-%d %H:%M", "%Y-%m-%d"):
        try:
            return int(datetime.strptime(text, fmt).replace(tzinfo=UTC).timestamp() * 1000)
        except ValueError:
            pass
    head, _, zone_name = text.rpartition(" ")
    zone = _zone(zone_name)
    if zone is None:
        return None
    try:
        local = datetime.strptime(head.strip(), "%Y-%m-%d %H:%M").replace(tzinfo=zone)
    except ValueError:
        return None
    return int(local.timestamp() * 1000)
