"""Durations (``"30d"`` and Go durations) and RFC 3339 timestamps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from mockserver.domain.timeutil import format_duration, format_timestamp, parse_duration, parse_timestamp

US = 1_000
MS = 1_000_000
S = 1_000_000_000
M = 60 * S
H = 60 * M
D = 24 * H


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        pytest.param("30d", 30 * D, id="days"),
        pytest.param("1d", D, id="one-day"),
        pytest.param("365d", 365 * D, id="a-year"),
        pytest.param("12h", 12 * H, id="hours"),
        pytest.param("90m", 90 * M, id="minutes"),
        pytest.param("45s", 45 * S, id="seconds"),
        pytest.param("250ms", 250 * MS, id="milliseconds"),
        pytest.param("3us", 3 * US, id="microseconds-us"),
        pytest.param("3\u00b5s", 3 * US, id="microseconds-micro-sign"),
        pytest.param("3\u03bcs", 3 * US, id="microseconds-greek-mu"),
        pytest.param("7ns", 7, id="nanoseconds"),
        pytest.param("1.5h", 90 * M, id="fraction"),
        pytest.param("0.5s", 500 * MS, id="fraction-below-one"),
        pytest.param(".5s", 500 * MS, id="fraction-without-leading-digit"),
        pytest.param("2.s", 2 * S, id="fraction-without-digits"),
        pytest.param("1.000000001s", S + 1, id="fraction-to-the-nanosecond"),
        pytest.param("1h30m", 90 * M, id="hours-and-minutes"),
        pytest.param("2h45m30.5s", 2 * H + 45 * M + 30 * S + 500 * MS, id="three-terms"),
        pytest.param("1m1s1ms1us1ns", M + S + MS + US + 1, id="every-small-unit"),
        pytest.param("30m1h", 90 * M, id="terms-in-any-order"),
        pytest.param("1h1h", 2 * H, id="repeated-unit"),
        pytest.param("-1.5h", -90 * M, id="negative"),
        pytest.param("+2h", 2 * H, id="plus-sign"),
        pytest.param("-1h30m", -90 * M, id="negative-applies-to-all-terms"),
        pytest.param("0", 0, id="bare-zero"),
        pytest.param("-0", 0, id="negative-zero"),
        pytest.param("+0", 0, id="plus-zero"),
        pytest.param("0s", 0, id="zero-seconds"),
        pytest.param("0d", 0, id="zero-days"),
        pytest.param("8760h", 365 * D, id="a-year-in-hours"),
    ],
)
def test_parse_duration(text: str, ns: int) -> None:
    assert parse_duration(text) == ns


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("abc", id="letters"),
        pytest.param("1x", id="unknown-unit"),
        pytest.param("h", id="unit-without-number"),
        pytest.param("10", id="number-without-unit"),
        pytest.param("1.5", id="fraction-without-unit"),
        pytest.param("-", id="sign-only"),
        pytest.param("+", id="plus-only"),
        pytest.param("++1h", id="two-signs"),
        pytest.param("+-1h", id="mixed-signs"),
        pytest.param("1h-30m", id="sign-inside"),
        pytest.param("1d2h", id="days-with-other-units"),
        pytest.param("1.5d", id="fractional-days"),
        pytest.param("-30d", id="negative-days"),
        pytest.param("1H", id="upper-case-unit"),
        pytest.param(" 1h", id="leading-space"),
        pytest.param("1h ", id="trailing-space"),
        pytest.param("1 h", id="space-before-unit"),
        pytest.param(".s", id="dot-without-digits"),
        pytest.param("0.0", id="zero-fraction-without-unit"),
    ],
)
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("ns", "text"),
    [
        pytest.param(30 * D, "30d", id="whole-days"),
        pytest.param(365 * D, "365d", id="a-year"),
        pytest.param(H, "1h", id="an-hour"),
        pytest.param(90 * M, "1h30m", id="hours-and-minutes"),
        pytest.param(25 * H, "25h", id="hours-past-a-day"),
        pytest.param(D + M, "24h1m", id="a-day-and-a-minute"),
        pytest.param(90 * S, "1m30s", id="minutes-and-seconds"),
        pytest.param(H + S, "1h1s", id="skips-empty-units"),
        pytest.param(S + 5, "1s5ns", id="seconds-and-nanoseconds"),
        pytest.param(1500, "1500ns", id="below-a-second"),
        pytest.param(0, "0ns", id="zero"),
        pytest.param(-30 * D, "-30d", id="negative-days"),
        pytest.param(-H, "-1h", id="negative-hour"),
        pytest.param(-90 * M, "-1h30m", id="negative-hours-and-minutes"),
    ],
)
def test_format_duration(ns: int, text: str) -> None:
    assert format_duration(ns) == text


@pytest.mark.parametrize(
    "ns",
    [30 * D, H, 90 * M, 25 * H, S + 5, 1500, 0, -H, -90 * M, 3 * H + 7 * S + 12],
    ids=lambda ns: f"{ns}ns",
)
def test_format_duration_parses_back(ns: int) -> None:
    assert parse_duration(format_duration(ns)) == ns


NOON = datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        pytest.param("2026-11-26T12:00:00Z", NOON, id="z"),
        pytest.param("2026-11-26T12:00:00+00:00", NOON, id="zero-offset"),
        pytest.param("2026-11-26T14:00:00+02:00", NOON, id="positive-offset"),
        pytest.param("2026-11-26T06:30:00-05:30", NOON, id="negative-offset"),
        pytest.param("2026-11-27T01:00:00+13:00", NOON, id="offset-across-a-day"),
        pytest.param("2026-11-26t12:00:00z", NOON, id="lower-case-t-and-z"),
        pytest.param("2026-11-26 12:00:00Z", NOON, id="space-separator"),
        pytest.param("2026-11-26T12:00:00.123456Z", NOON.replace(microsecond=123456), id="microseconds"),
        pytest.param("2026-11-26T12:00:00.5Z", NOON.replace(microsecond=500000), id="fraction"),
        pytest.param("2026-11-26T14:00:00.25+02:00", NOON.replace(microsecond=250000), id="fraction-and-offset"),
    ],
)
def test_parse_timestamp(text: str, value: datetime) -> None:
    parsed = parse_timestamp(text)
    assert parsed == value
    assert parsed.tzinfo is UTC
    assert parsed.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("2026-11-26T12:00:00", "no time zone offset", id="no-offset"),
        pytest.param("2026-11-26", "no time zone offset", id="date-only"),
        pytest.param("garbage", "is not an RFC 3339 date-time", id="garbage"),
        pytest.param("", "is not an RFC 3339 date-time", id="empty"),
        pytest.param("2026-13-01T00:00:00Z", "is not an RFC 3339 date-time", id="month-13"),
        pytest.param("2026-11-26T25:00:00Z", "is not an RFC 3339 date-time", id="hour-25"),
        pytest.param("2026-11-26T12:00:00+25:00", "is not an RFC 3339 date-time", id="offset-out-of-range"),
        pytest.param("2026-11-26T12:00:00ZZ", "is not an RFC 3339 date-time", id="two-zones"),
    ],
)
def test_parse_timestamp_rejects(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_timestamp(text)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        pytest.param(NOON, "2026-11-26T12:00:00Z", id="whole-seconds"),
        pytest.param(NOON.replace(microsecond=123456), "2026-11-26T12:00:00.123456Z", id="microseconds"),
        pytest.param(NOON.replace(microsecond=1000), "2026-11-26T12:00:00.001000Z", id="one-millisecond"),
        pytest.param(NOON.replace(microsecond=1), "2026-11-26T12:00:00.000001Z", id="one-microsecond"),
        pytest.param(
            datetime(2026, 11, 26, 14, 0, 0, tzinfo=timezone(timedelta(hours=2))),
            "2026-11-26T12:00:00Z",
            id="converted-to-utc",
        ),
        pytest.param(
            datetime(2026, 11, 26, 23, 30, 0, 5, tzinfo=timezone(timedelta(hours=-1))),
            "2026-11-27T00:30:00.000005Z",
            id="converted-across-a-day",
        ),
    ],
)
def test_format_timestamp(value: datetime, text: str) -> None:
    assert format_timestamp(value) == text


@pytest.mark.parametrize(
    "value",
    [NOON, NOON.replace(microsecond=123456), NOON.replace(microsecond=1), datetime(2000, 2, 29, 0, 0, tzinfo=UTC)],
    ids=["whole-seconds", "microseconds", "one-microsecond", "leap-day"],
)
def test_format_timestamp_parses_back(value: datetime) -> None:
    assert parse_timestamp(format_timestamp(value)) == value
