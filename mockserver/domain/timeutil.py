"""Durations and timestamps as the API writes them (Go durations, RFC 3339)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal

NS_PER_UNIT = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,  # micro sign
    "μs": 1_000,  # greek mu
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60 * 1_000_000_000,
    "h": 3600 * 1_000_000_000,
}
NS_PER_DAY = 24 * NS_PER_UNIT["h"]
_DAYS = re.compile(r"([0-9]+)d")
_TERM = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h)")


def parse_duration(text: str) -> int:
    """``"30d"`` or a Go duration (``"1h30m"``, ``"-1.5h"``) as integer nanoseconds."""
    days = _DAYS.fullmatch(text)
    if days:
        return int(days.group(1)) * NS_PER_DAY
    sign, rest = (-1, text[1:]) if text[:1] == "-" else (1, text[1:] if text[:1] == "+" else text)
    if rest == "0":
        return 0
    pos, total = 0, Decimal(0)
    while pos < len(rest):
        term = _TERM.match(rest, pos)
        if term is None or not rest:
            raise ValueError(f"{text!r} is not a duration such as '30d', '12h' or '1h30m'")
        total += Decimal(term.group(1)) * NS_PER_UNIT[term.group(2)]
        pos = term.end()
    if pos == 0:
        raise ValueError(f"{text!r} is not a duration such as '30d', '12h' or '1h30m'")
    return sign * int(total)


def format_duration(ns: int) -> str:
    """Nanoseconds in the shortest readable form (``"30d"``, ``"1h30m"``), for messages."""
    if ns < 0:
        return "-" + format_duration(-ns)
    if ns and ns % NS_PER_DAY == 0:
        return f"{ns // NS_PER_DAY}d"
    parts = []
    for unit in ("h", "m", "s"):
        size = NS_PER_UNIT[unit]
        if ns >= size:
            parts.append(f"{ns // size}{unit}")
            ns %= size
    if ns or not parts:
        parts.append(f"{ns}ns")
    return "".join(parts)


def parse_timestamp(text: str) -> datetime:
    """An RFC 3339 date-time as an aware UTC datetime."""
    normalised = text.upper().replace(" ", "T")
    try:
        value = datetime.fromisoformat(normalised)
    except ValueError:
        raise ValueError(f"{text!r} is not an RFC 3339 date-time") from None
    if value.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone offset")
    return value.astimezone(UTC)


def format_timestamp(value: datetime) -> str:
    """``2026-11-26T14:54:48.123456Z`` (microseconds only when there are some)."""
    value = value.astimezone(UTC)
    spec = "microseconds" if value.microsecond else "seconds"
    return value.replace(tzinfo=None).isoformat(timespec=spec) + "Z"
