"""Cron expressions in the dialect of Spring's `CronExpression`, which Orkes schedules use.

Format: six whitespace-separated fields, seconds first::

    second minute hour day-of-month month    day-of-week
    0-59   0-59   0-23 1-31         1-12     0-7
                                    JAN-DEC  MON-SUN

- `*` is any value; `?` is any value too, but only as the whole day-of-month or day-of-week field.
- `a-b` ranges, `*/n`, `a/n` (a to the field's maximum) and `a-b/n` steps, `a,b,c` lists.
- Day-of-week 0 and 7 are both Sunday and 1 is Monday (not Quartz's 1 = Sunday); names are the
  first three letters in any case. As a range start, Sunday counts as 0, so `SUN-FRI` is 0-5.
- Day-of-month also takes `L` (last day), `L-n` (n days before the last), `LW` (last weekday) and
  `nW` (the weekday nearest to day n: Saturday moves back to Friday, Sunday forward to Monday, and
  a Saturday 1st forward to Monday the 3rd). Day-of-week also takes `dL` (the last weekday d of
  the month, e.g. `5L` or `FRIL`) and `d#n` (the n-th weekday d, e.g. `FRI#2`). These may be mixed
  into lists, e.g. `1W,15,LW`.
- Macros: `@yearly`/`@annually` (`0 0 0 1 1 *`), `@monthly` (`0 0 0 1 * *`), `@weekly`
  (`0 0 0 * * 0`), `@daily`/`@midnight` (`0 0 0 * * *`), `@hourly` (`0 0 * * * *`).
- All six fields must match (day-of-month AND day-of-week, unlike Vixie cron and croniter's
  default, which OR them): `0 0 0 13 * FRI` fires only on Friday the 13th.

Daylight saving time. Fire times are wall-clock times in the zone of the `after` argument, and a
fire time is every instant whose local wall-clock time matches. Both rules below are what Spring
does; they were checked against its source and its `CronExpressionTests.daylightSaving`:

- A local time that does not exist (spring-forward gap) is skipped, not moved: `0 30 2 * * *` in
  America/New_York fires at 02:30 on 2026-03-07 and next at 02:30 on 2026-03-09. Spring's test:
  `0 10 2 * * *` after 2013-03-31T01:09+01:00[Europe/Amsterdam] gives 2013-04-01T02:10+02:00.
- A local time that occurs twice (fall-back overlap) fires at both instants, an hour apart: Spring
  rolls forward on the instant timeline, so `0 30 1 * * *` after 01:30 EDT on 2026-11-01 gives
  01:30 EST. This keeps periodic schedules periodic (`0 */30 * * * *` fires every 30 real
  minutes through the night, where firing only the first occurrence would leave a 90-minute hole,
  longer than the lifetime of a 60-minute token rotated every 30 minutes).

Where Spring's answer depends on where its search happens to start, or is plainly wrong, this
module gives the calendar answer. A transcription of Spring's algorithm was run side by side with
this module on tens of thousands of random expressions and start times, many next to DST
changes; these are the only differences found or known:

- `nW`: Spring sometimes skips a matching day, e.g. Monday the 3rd for `1W` when its search passes
  through Saturday the 1st after midnight. Here a month whose day n does not exist, or is a Sunday
  that ends the month, has no `nW` day (Spring's rule too); every other month has one.
- Zones whose clocks change at midnight (America/Santiago, America/Havana, Africa/Cairo) or by
  30 minutes (Australia/Lord_Howe): Spring skips a whole day after a midnight gap (its issue
  #36859, fixed in 2026 to what this module does), fires only the second of two repeated times
  when the clocks go back at midnight, and only one of them when they go back 30 minutes. Here
  the two DST rules above hold in every zone.
- `d#n` needs n in 1-5 and `L-n` needs n in 1-30: Spring accepts larger values and then answers
  dates that do not match the expression.
- `SUN-SUN` (7-7) is Sunday only; Spring reads it as 0-7, every day.
- Names must be whole values (`1JAN` is rejected; Spring substitutes inside words and reads it as
  11). `L` and `W` may be lower case, and any whitespace separates fields (Spring: spaces only).

`next_after` never answers a time at or before `after`. It searches at most `HORIZON_YEARS` ahead,
field by field (month, day, hour, minute, second; never second by second): about 0.1 ms a call,
a few ms for an expression that never fires and so scans the whole horizon.
"""

from __future__ import annotations

import calendar
import re
from bisect import bisect_left
from dataclasses import dataclass
from datetime import MAXYEAR, UTC, datetime, timedelta, tzinfo
from typing import NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "HORIZON_YEARS",
    "CronError",
    "CronExpression",
    "ZoneError",
    "next_few_ms",
    "next_fire_ms",
    "parse",
    "validate_zone",
]

# Feb 29 on a given weekday (`0 0 0 29 2 MON`) can be 40 years apart; a never-firing expression
# costs one step per candidate month over this horizon, which stays in the low milliseconds.
HORIZON_YEARS = 100

_MACROS = {
    "@yearly": "0 0 0 1 1 *",
    "@annually": "0 0 0 1 1 *",
    "@monthly": "0 0 0 1 * *",
    "@weekly": "0 0 0 * * 0",
    "@daily": "0 0 0 * * *",
    "@midnight": "0 0 0 * * *",
    "@hourly": "0 0 * * * *",
}
_FIELD_NAMES = "second minute hour day-of-month month day-of-week"
_MONTH_NAMES = {
    name: number
    for number, name in enumerate(
        ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), 1
    )
}
_DAY_NAMES = {
    name: number for number, name in enumerate(("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"), 1)
}
# Spring reads numbers with Java's Integer.parseInt, which takes a leading "+".
_NUMBER = re.compile(r"\+?[0-9]{1,9}")
_LAST_MINUS = re.compile(r"L-([0-9]{1,9})", re.IGNORECASE)
_NEAREST_WEEKDAY = re.compile(r"(\+?[0-9]{1,9})W", re.IGNORECASE)
_SHOWN_CHARS = 100
_ONE_SECOND = timedelta(seconds=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)
# Each step either returns or skips one DST gap, so this is far above any real need.
_MAX_STEPS = 10_000


class CronError(ValueError):
    """A cron expression that cannot be parsed. The message always contains the word "cron"
    (the Python SDK maps a 400 mentioning "cron" to `InvalidCronExpression`)."""


class ZoneError(ValueError):
    """A zoneId that is not an IANA time zone. Deliberately not a CronError: its message must not
    mention "cron", or clients would report a bad zone as a bad cron expression."""


class _Invalid(Exception):
    """Why one field is invalid; `parse` wraps it into a CronError naming the expression."""


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    # `*` and the open end of `a/n`; differs from low/high only for day-of-week (0 is allowed as
    # a value, but `*` is Monday-Sunday, 1-7).
    star_low: int
    star_high: int
    names: dict[str, int] | None = None


_SECOND = _Field("second", 0, 59, 0, 59)
_MINUTE = _Field("minute", 0, 59, 0, 59)
_HOUR = _Field("hour", 0, 23, 0, 23)
_DAY_OF_MONTH = _Field("day-of-month", 1, 31, 1, 31)
_MONTH = _Field("month", 1, 12, 1, 12, _MONTH_NAMES)
_DAY_OF_WEEK = _Field("day-of-week", 0, 7, 1, 7, _DAY_NAMES)


class _DayRule(NamedTuple):
    """One `L`/`W`/`#` element. kind: last, last_minus, last_weekday, nearest_weekday (day-of-month)
    or last_of_week, nth_of_week (day-of-week, with `weekday` 0=Monday..6=Sunday)."""

    kind: str
    number: int = 0
    weekday: int = 0


# -- parsing ---------------------------------------------------------------------------------


def parse(expression: str) -> CronExpression:
    """Parse a Spring cron expression or macro; raises CronError saying what is wrong."""
    # Request bodies reach here unchecked, so a null cronExpression must become a CronError too.
    text = expression.strip() if isinstance(expression, str) else ""
    try:
        if not text:
            raise _Invalid("the expression is empty")
        fields = _MACROS.get(text.lower(), text).split()
        if len(fields) != 6:
            hint = (
                " (Baton uses Spring's format, which starts with seconds)"
                if len(fields) == 5
                else ""
            )
            raise _Invalid(f"expected 6 fields ({_FIELD_NAMES}) but found {len(fields)}{hint}")
        # Field by field from the left, so an error names the first bad field.
        seconds = _values(_parse_bits(fields[0], _SECOND))
        minutes = _values(_parse_bits(fields[1], _MINUTE))
        hours = _values(_parse_bits(fields[2], _HOUR))
        dom_bits, dom_rules = _parse_days_of_month(fields[3])
        months = _parse_bits(fields[4], _MONTH)
        dow_bits, dow_rules = _parse_days_of_week(fields[5])
        return CronExpression(
            expression=text,
            _seconds=seconds,
            _minutes=minutes,
            _hours=hours,
            _months=months,
            _dom_bits=dom_bits,
            _dom_rules=dom_rules,
            _dow_masks=_weekday_masks(dow_bits),
            _dow_rules=dow_rules,
        )
    except _Invalid as exc:
        shown = text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS] + "..."
        raise CronError(f"Invalid cron expression '{shown}': {exc}") from None


def _parse_bits(text: str, field: _Field) -> int:
    """A plain field (no L/W/#) as a bit mask of its values."""
    mask = 0
    for element in text.split(","):
        mask |= _parse_element(element, field)
    return mask


def _parse_element(element: str, field: _Field) -> int:
    if not element:
        raise _Invalid(f"empty list element in the {field.name} field")
    range_text, slash, step_text = element.partition("/")
    step = 1
    if slash:
        step = _number(step_text, f"step in '{element}'")
        if step < 1:
            raise _Invalid(f"step must be 1 or higher in '{element}'")
    if range_text == "*":
        low, high = field.star_low, field.star_high
    elif "-" in range_text:
        first, _, last = range_text.partition("-")
        low, high = _value(first, field), _value(last, field)
        # Spring: Sunday written as 7 starts a range as 0, so SUN-FRI is 0-5 (but 7-7 stays 7).
        if field is _DAY_OF_WEEK and low == 7 and high != 7:
            low = 0
        if low > high:
            raise _Invalid(f"range '{range_text}' in the {field.name} field runs backwards")
    else:
        low = _value(range_text, field)
        high = field.star_high if slash else low
    mask = 0
    for value in range(low, high + 1, step):
        mask |= 1 << value
    return mask


def _value(text: str, field: _Field) -> int:
    if field.names is not None and text.upper() in field.names:
        return field.names[text.upper()]
    if not _NUMBER.fullmatch(text):
        if text == "?":
            raise _Invalid("'?' is only allowed as the whole day-of-month or day-of-week field")
        if not text:
            raise _Invalid(f"a value is missing in the {field.name} field")
        raise _Invalid(f"'{text}' is not a valid {field.name} value")
    value = int(text)
    if not field.low <= value <= field.high:
        raise _Invalid(f"{field.name} {value} is out of range {field.low}-{field.high}")
    return value


def _number(text: str, what: str) -> int:
    if not _NUMBER.fullmatch(text):
        raise _Invalid(f"{what} is not a number")
    return int(text)


def _parse_days_of_month(text: str) -> tuple[int, tuple[_DayRule, ...]]:
    if text == "?":
        text = "*"
    bits, rules = 0, []
    for element in text.split(","):
        upper = element.upper()
        if "L" not in upper and "W" not in upper:
            bits |= _parse_element(element, _DAY_OF_MONTH)
        elif upper == "L":
            rules.append(_DayRule("last"))
        elif upper == "LW":
            rules.append(_DayRule("last_weekday"))
        elif match := _LAST_MINUS.fullmatch(element):
            offset = int(match.group(1))
            if not 1 <= offset <= 30:
                raise _Invalid(f"offset in '{element}' is out of range 1-30")
            rules.append(_DayRule("last_minus", offset))
        elif match := _NEAREST_WEEKDAY.fullmatch(element):
            rules.append(_DayRule("nearest_weekday", _value(match.group(1), _DAY_OF_MONTH)))
        else:
            raise _Invalid(f"'{element}' is not a valid day-of-month (use L, L-n, LW or nW)")
    return bits, tuple(rules)


def _parse_days_of_week(text: str) -> tuple[int, tuple[_DayRule, ...]]:
    if text == "?":
        text = "*"
    bits, rules = 0, []
    for element in text.split(","):
        upper = element.upper()
        if "L" not in upper and "#" not in upper:
            bits |= _parse_element(element, _DAY_OF_WEEK)
        elif upper.endswith("L") and len(element) > 1:
            rules.append(_DayRule("last_of_week", weekday=_weekday(element[:-1])))
        elif element.count("#") == 1 and not element.startswith("#"):
            day, _, nth = element.partition("#")
            number = _number(nth, f"ordinal in '{element}'")
            if not 1 <= number <= 5:
                raise _Invalid(f"ordinal in '{element}' is out of range 1-5")
            rules.append(_DayRule("nth_of_week", number, _weekday(day)))
        else:
            raise _Invalid(f"'{element}' is not a valid day-of-week (use dL or d#n)")
    if bits & 1:  # 0 is Sunday, like 7
        bits = (bits | 1 << 7) & ~1
    return bits, tuple(rules)


def _weekday(text: str) -> int:
    """A day-of-week value as 0=Monday..6=Sunday (Python's date.weekday())."""
    value = _value(text, _DAY_OF_WEEK)
    return 6 if value in (0, 7) else value - 1


def _values(mask: int) -> tuple[int, ...]:
    return tuple(value for value in range(mask.bit_length()) if mask >> value & 1)


def _weekday_masks(iso_days: int) -> tuple[int, ...]:
    """For each weekday of a month's 1st (0=Monday), the days 1-31 whose weekday is in iso_days."""
    masks = []
    for first in range(7):
        mask = 0
        for day in range(1, 32):
            if iso_days >> ((first + day - 1) % 7 + 1) & 1:
                mask |= 1 << day
        masks.append(mask)
    return tuple(masks)


# -- evaluation ------------------------------------------------------------------------------


def _rule_day(rule: _DayRule, first: int, length: int) -> int:
    """The day of the month that one L/W/# rule selects, or 0 when it selects none."""

    def weekday(day: int) -> int:
        return (first + day - 1) % 7

    if rule.kind == "last":
        return length
    if rule.kind == "last_minus":
        return max(length - rule.number, 0)
    if rule.kind == "last_weekday":
        return length - max(weekday(length) - 4, 0)
    if rule.kind == "nearest_weekday":
        day = rule.number
        if day > length:
            return 0
        if weekday(day) == 5:  # Saturday
            return 3 if day == 1 else day - 1
        if weekday(day) == 6:  # Sunday
            return day + 1 if day < length else 0
        return day
    if rule.kind == "last_of_week":
        return length - (weekday(length) - rule.weekday) % 7
    # nth_of_week
    day = 1 + (rule.weekday - first) % 7 + 7 * (rule.number - 1)
    return day if day <= length else 0


@dataclass(frozen=True)
class CronExpression:
    """A parsed expression; build one with `parse`."""

    expression: str
    _seconds: tuple[int, ...]
    _minutes: tuple[int, ...]
    _hours: tuple[int, ...]
    _months: int
    _dom_bits: int
    _dom_rules: tuple[_DayRule, ...]
    _dow_masks: tuple[int, ...]
    _dow_rules: tuple[_DayRule, ...]

    def __str__(self) -> str:
        return self.expression

    def next_after(self, after: datetime) -> datetime | None:
        """The first fire time strictly after `after` (timezone-aware), in the same zone, or None
        when there is none within HORIZON_YEARS."""
        zone = after.tzinfo
        if zone is None or after.utcoffset() is None:
            raise ValueError("next_after needs a timezone-aware datetime")
        try:
            return self._next_after(after.astimezone(UTC), zone)
        except OverflowError:  # only within a day of datetime.min/max
            return None

    def _next_after(self, after_utc: datetime, zone: tzinfo) -> datetime | None:
        # Normalised through UTC, so a wall time in a gap or with the wrong fold cannot mislead.
        after = after_utc.astimezone(zone)
        start = after.replace(tzinfo=None, microsecond=0) + _ONE_SECOND
        last_year = min(after.year + HORIZON_YEARS, MAXYEAR)
        overlap = _first_pass_overlap(after, after_utc, zone)
        if overlap is not None:
            # `after` is the first of two instants with this wall time: the rest of the first
            # pass comes next, then the whole repeated interval again at the later offset.
            repeat_start, repeat_end = overlap
            wall = self._next_wall(start, last_year)
            if wall is not None and wall < repeat_end:
                return wall.replace(tzinfo=zone, fold=0)
            start = repeat_start
        for _ in range(_MAX_STEPS):
            wall = self._next_wall(start, last_year)
            if wall is None:
                return None
            early, late = wall.replace(tzinfo=zone, fold=0), wall.replace(tzinfo=zone, fold=1)
            early_offset, late_offset = _offset(early), _offset(late)
            if early_offset < late_offset:
                # Spring-forward gap: this wall time never happens; resume where the gap ends.
                start = _gap_end(wall, early_offset, late_offset, zone)
                continue
            for candidate in (early, late):
                if candidate.astimezone(UTC) > after_utc:
                    return candidate
            start = wall + _ONE_SECOND
        return None

    def _next_wall(self, start: datetime, last_year: int) -> datetime | None:
        """The first naive wall time at or after `start` that matches every field."""
        year, month, day = start.year, start.month, start.day
        hour, minute, second = start.hour, start.minute, start.second
        while year <= last_year:
            if month > 12:
                year, month = year + 1, 1
                continue
            if not self._months >> month & 1:
                month, day, hour, minute, second = month + 1, 1, 0, 0, 0
                continue
            days = self._day_mask(year, month) >> day << day
            if not days:
                month, day, hour, minute, second = month + 1, 1, 0, 0, 0
                continue
            found_day = (days & -days).bit_length() - 1
            if found_day != day:
                day, hour, minute, second = found_day, 0, 0, 0
            found_hour = _next_value(self._hours, hour)
            if found_hour is None:
                day, hour, minute, second = day + 1, 0, 0, 0
                continue
            if found_hour != hour:
                hour, minute, second = found_hour, 0, 0
            found_minute = _next_value(self._minutes, minute)
            if found_minute is None:
                hour, minute, second = hour + 1, 0, 0
                continue
            if found_minute != minute:
                minute, second = found_minute, 0
            found_second = _next_value(self._seconds, second)
            if found_second is None:
                minute, second = minute + 1, 0
                continue
            return datetime(year, month, day, hour, minute, found_second)
        return None

    def _day_mask(self, year: int, month: int) -> int:
        """Days of this month (bit d for day d) matching day-of-month AND day-of-week."""
        first, length = calendar.monthrange(year, month)
        by_month = self._dom_bits
        for rule in self._dom_rules:
            by_month |= 1 << _rule_day(rule, first, length)
        by_week = self._dow_masks[first]
        for rule in self._dow_rules:
            by_week |= 1 << _rule_day(rule, first, length)
        # Bit 0 collects the rules that selected no day; the month mask drops it.
        return by_month & by_week & ((1 << (length + 1)) - 2)


def _next_value(values: tuple[int, ...], current: int) -> int | None:
    index = bisect_left(values, current)
    return values[index] if index < len(values) else None


def _first_pass_overlap(
    after: datetime, after_utc: datetime, zone: tzinfo
) -> tuple[datetime, datetime] | None:
    """When `after` is the earlier of two instants sharing its wall time, the repeated wall-time
    interval [start, end) as naive times; otherwise None."""
    wall = after.replace(tzinfo=None)
    early = _offset(wall.replace(tzinfo=zone, fold=0))
    late = _offset(wall.replace(tzinfo=zone, fold=1))
    if early <= late or _offset(after) != early:
        return None
    change = _offset_change(after_utc, after_utc + (early - late), zone)
    naive = change.replace(tzinfo=None)
    return naive + late, naive + early


def _offset(moment: datetime) -> timedelta:
    offset = moment.utcoffset()
    if offset is None:  # next_after checked the zone answers for `after`; one that stops is broken
        raise ValueError(f"time zone {moment.tzinfo} gave no UTC offset for {moment}")
    return offset


def _gap_end(wall: datetime, early: timedelta, late: timedelta, zone: tzinfo) -> datetime:
    """The first wall time after the gap that contains `wall` (a time that does not exist)."""
    before = (wall - late).replace(tzinfo=UTC)  # still at the old offset
    after = (wall - early).replace(tzinfo=UTC)  # already at the new one
    return _offset_change(before, after, zone).replace(tzinfo=None) + late


def _offset_change(low: datetime, high: datetime, zone: tzinfo) -> datetime:
    """The first whole second in (low, high] whose UTC offset in `zone` differs from low's."""
    offset = low.astimezone(zone).utcoffset()
    below, above = 0, int((high - low).total_seconds())
    while above - below > 1:
        middle = (below + above) // 2
        if (low + timedelta(seconds=middle)).astimezone(zone).utcoffset() == offset:
            below = middle
        else:
            above = middle
    return low + timedelta(seconds=above)


# -- scheduler conveniences ------------------------------------------------------------------


def validate_zone(zone_id: str | None) -> ZoneInfo:
    """An IANA zone such as `UTC`, `US/Central` or `Asia/Dubai`; None or "" mean UTC."""
    if not zone_id:
        return ZoneInfo("UTC")
    try:
        return ZoneInfo(zone_id)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        shown = zone_id if len(zone_id) <= _SHOWN_CHARS else zone_id[:_SHOWN_CHARS] + "..."
        raise ZoneError(f"Unknown time zone '{shown}': use an IANA zone id such as UTC") from None


def next_fire_ms(expression: CronExpression, after_ms: int, zone: ZoneInfo) -> int | None:
    """The first fire time strictly after `after_ms` (epoch ms), evaluated in `zone`."""
    try:
        after = (_EPOCH + after_ms * _ONE_MS).astimezone(zone)
    except OverflowError:  # outside years 1-9999: nothing to schedule
        return None
    found = expression.next_after(after)
    return None if found is None else _to_ms(found)


def next_few_ms(
    expression: CronExpression,
    after_ms: int,
    zone: ZoneInfo,
    limit: int,
    end_ms: int | None = None,
) -> list[int]:
    """Up to `limit` fire times strictly after `after_ms` and no later than `end_ms` (inclusive)."""
    times: list[int] = []
    current = after_ms
    while len(times) < limit:
        found = next_fire_ms(expression, current, zone)
        if found is None or (end_ms is not None and found > end_ms):
            break
        times.append(found)
        current = found
    return times


def _to_ms(moment: datetime) -> int:
    return (moment - _EPOCH) // _ONE_MS
