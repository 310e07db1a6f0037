"""Spring-dialect cron expressions: parsing, next fire times, DST, and the scheduler helpers.

Expected times are written with their UTC offset, so a DST answer cannot pass by accident.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest

from app.scheduler.cron import (
    CronError,
    ZoneError,
    next_few_ms,
    next_fire_ms,
    parse,
    validate_zone,
)

UTC = ZoneInfo("UTC")
NEW_YORK = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")


def at(local: str, zone: ZoneInfo = UTC, fold: int = 0) -> datetime:
    """A wall-clock time in `zone`; fold=1 picks the second of two repeated times."""
    return datetime.fromisoformat(local).replace(tzinfo=zone, fold=fold)


def fires(expression: str, after: datetime, count: int = 1) -> list[str]:
    """The next `count` fire times, each as ISO text with its UTC offset."""
    cron, found = parse(expression), []
    for _ in range(count):
        nxt = cron.next_after(after)
        assert nxt is not None
        found.append(nxt.isoformat())
        after = nxt
    return found


def ms(local: str, zone: ZoneInfo = UTC) -> int:
    return int(at(local, zone).timestamp() * 1000)


# -- the reference's examples --------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        (
            "0 0 * ? * *",
            "2026-01-01T10:20:00",
            ["2026-01-01T11:00:00+00:00", "2026-01-01T12:00:00+00:00"],
        ),
        (
            "0 */2 * ? * *",
            "2026-01-01T10:01:00",
            ["2026-01-01T10:02:00+00:00", "2026-01-01T10:04:00+00:00"],
        ),
        (
            "0 0 12 L * ?",
            "2026-01-31T12:00:00",
            ["2026-02-28T12:00:00+00:00", "2026-03-31T12:00:00+00:00", "2026-04-30T12:00:00+00:00"],
        ),
        (
            "0 0 12 31 JAN ?",
            "2026-01-31T12:00:00",
            ["2027-01-31T12:00:00+00:00", "2028-01-31T12:00:00+00:00"],
        ),
        (
            "0 0 12 ? JAN,FEB,APR *",
            "2026-02-28T12:00:00",
            ["2026-04-01T12:00:00+00:00", "2026-04-02T12:00:00+00:00"],
        ),
        (
            "0 0 0/3 * * ?",
            "2026-01-01T22:00:00",
            ["2026-01-02T00:00:00+00:00", "2026-01-02T03:00:00+00:00"],
        ),
        (
            "0 30 1/3 * * ?",
            "2026-01-01T22:30:00",
            ["2026-01-02T01:30:00+00:00", "2026-01-02T04:30:00+00:00"],
        ),
        (
            "*/2 * * * * *",
            "2026-01-01T00:00:01.500",
            ["2026-01-01T00:00:02+00:00", "2026-01-01T00:00:04+00:00"],
        ),
    ],
)
def test_reference_examples_fire_as_documented(
    expression: str, after: str, expected: list[str]
) -> None:
    assert fires(expression, at(after), len(expected)) == expected


def test_faq_pair_of_crons_fires_every_90_minutes() -> None:
    after = at("2026-01-01T00:00:00")
    slots = sorted(fires("0 0 0/3 * * ?", after, 8) + fires("0 30 1/3 * * ?", after, 8))
    moments = [datetime.fromisoformat(slot) for slot in slots]
    assert {b - a for a, b in pairwise(moments)} == {timedelta(minutes=90)}


def test_next_fire_is_strictly_after_a_matching_time() -> None:
    assert fires("0 0 12 * * *", at("2026-01-01T12:00:00")) == ["2026-01-02T12:00:00+00:00"]


def test_next_fire_skips_the_rest_of_a_matching_second() -> None:
    assert fires("* * * * * *", at("2026-01-01T12:00:00.999")) == ["2026-01-01T12:00:01+00:00"]


# -- macros, names, day-of-week numbering ----------------------------------------------------


@pytest.mark.parametrize(
    ("macro", "expected"),
    [
        ("@yearly", "2027-01-01T00:00:00+00:00"),
        ("@annually", "2027-01-01T00:00:00+00:00"),
        ("@monthly", "2026-04-01T00:00:00+00:00"),
        ("@weekly", "2026-03-08T00:00:00+00:00"),  # Sunday
        ("@daily", "2026-03-05T00:00:00+00:00"),
        ("@midnight", "2026-03-05T00:00:00+00:00"),
        ("@hourly", "2026-03-04T11:00:00+00:00"),
        ("  @DAILY ", "2026-03-05T00:00:00+00:00"),
    ],
)
def test_macros_expand_to_springs_expressions(macro: str, expected: str) -> None:
    assert fires(macro, at("2026-03-04T10:15:00")) == [expected]  # a Wednesday


def test_expression_keeps_the_text_as_given() -> None:
    cron = parse("  @weekly ")
    assert cron.expression == "@weekly"
    assert str(cron) == "@weekly"


@pytest.mark.parametrize("sunday", ["0", "7", "SUN", "sun", "Sun"])
def test_day_of_week_0_and_7_and_sun_are_sunday(sunday: str) -> None:
    assert fires(f"0 0 0 ? * {sunday}", at("2026-03-04T00:00:00")) == ["2026-03-08T00:00:00+00:00"]


@pytest.mark.parametrize("monday", ["1", "MON", "mon"])
def test_day_of_week_1_is_monday(monday: str) -> None:
    assert fires(f"0 0 0 ? * {monday}", at("2026-03-04T00:00:00")) == ["2026-03-09T00:00:00+00:00"]


def test_sunday_starting_a_range_counts_as_zero() -> None:
    assert fires("0 0 0 ? * SUN-TUE", at("2026-03-04T00:00:00"), 3) == [
        "2026-03-08T00:00:00+00:00",
        "2026-03-09T00:00:00+00:00",
        "2026-03-10T00:00:00+00:00",
    ]


def test_day_of_week_star_step_counts_from_monday() -> None:
    assert fires("0 0 0 ? * */2", at("2026-03-01T00:00:00"), 4) == [
        "2026-03-02T00:00:00+00:00",  # Monday
        "2026-03-04T00:00:00+00:00",
        "2026-03-06T00:00:00+00:00",
        "2026-03-08T00:00:00+00:00",  # Sunday
    ]


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("0 0 0 1 mar-may ?", ["2026-03-01T00:00:00+00:00", "2026-04-01T00:00:00+00:00"]),
        ("0 0 0 1 Dec,JAN ?", ["2026-12-01T00:00:00+00:00", "2027-01-01T00:00:00+00:00"]),
        ("0 0 0 ? * sat,Fri", ["2026-01-02T00:00:00+00:00", "2026-01-03T00:00:00+00:00"]),
    ],
)
def test_month_and_day_names_in_any_case(expression: str, expected: list[str]) -> None:
    assert fires(expression, at("2026-01-01T00:00:00"), 2) == expected


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("10-12 0 0 * * *", "2026-01-01T00:00:10", ["2026-01-01T00:00:11+00:00"]),
        ("5/20 0 0 * * *", "2026-01-01T00:00:05", ["2026-01-01T00:00:25+00:00"]),
        ("0 10-40/15 0 * * *", "2026-01-01T00:10:00", ["2026-01-01T00:25:00+00:00"]),
        ("0 0 22/1 * * *", "2026-01-01T23:00:00", ["2026-01-02T22:00:00+00:00"]),
        ("0 0 0 */10 * ?", "2026-01-21T00:00:00", ["2026-01-31T00:00:00+00:00"]),
    ],
)
def test_ranges_steps_and_open_ended_steps(
    expression: str, after: str, expected: list[str]
) -> None:
    assert fires(expression, at(after)) == expected


# -- day-of-month and day-of-week specials (dates are 2026) ---------------------------------


@pytest.mark.parametrize(
    ("expression", "after", "expected_days"),
    [
        ("0 0 0 L * ?", "2026-01-01", ["2026-01-31", "2026-02-28", "2026-03-31"]),
        ("0 0 0 L-3 * ?", "2026-01-01", ["2026-01-28", "2026-02-25", "2026-03-28"]),
        # Jan 31 is a Saturday and May 31 a Sunday: back to Friday.
        ("0 0 0 LW * ?", "2026-01-01", ["2026-01-30", "2026-02-27", "2026-03-31"]),
        ("0 0 0 LW 5 ?", "2026-01-01", ["2026-05-29"]),
        # Jan 15 is a Thursday, Feb 15 a Sunday (to Monday), Aug 15 a Saturday (to Friday).
        ("0 0 0 15W * ?", "2026-01-01", ["2026-01-15", "2026-02-16", "2026-03-16"]),
        ("0 0 0 15W 8 ?", "2026-01-01", ["2026-08-14"]),
        # 1W never leaves the month: Saturday Aug 1 goes to Monday the 3rd, Sunday Feb 1 to the 2nd.
        ("0 0 0 1W 8 ?", "2026-01-01", ["2026-08-03"]),
        ("0 0 0 1W 2 ?", "2026-01-01", ["2026-02-02"]),
        # May 31 is a Sunday that ends its month, and June has no 31st.
        ("0 0 0 31W * ?", "2026-04-01", ["2026-07-31"]),
        ("0 0 0 1W,15,LW * ?", "2026-01-01", ["2026-01-15", "2026-01-30", "2026-02-02"]),
        # Fridays: the second of the month, then the last.
        ("0 0 0 ? * FRI#2", "2026-01-01", ["2026-01-09", "2026-02-13", "2026-03-13"]),
        ("0 0 0 ? * 5#2", "2026-01-01", ["2026-01-09", "2026-02-13", "2026-03-13"]),
        ("0 0 0 ? * 5L", "2026-01-01", ["2026-01-30", "2026-02-27", "2026-03-27"]),
        ("0 0 0 ? * FRIL", "2026-01-01", ["2026-01-30", "2026-02-27", "2026-03-27"]),
        ("0 0 0 ? * 0#1", "2026-01-01", ["2026-01-04", "2026-02-01", "2026-03-01"]),
        # Only months with five Fridays.
        ("0 0 0 ? * FRI#5", "2026-01-01", ["2026-01-30", "2026-05-29", "2026-07-31"]),
        ("0 0 0 ? * MON#1,FRIL", "2026-01-01", ["2026-01-05", "2026-01-30", "2026-02-02"]),
    ],
)
def test_quartz_style_day_specials(expression: str, after: str, expected_days: list[str]) -> None:
    found = fires(expression, at(after + "T00:00:00"), len(expected_days))
    assert found == [f"{day}T00:00:00+00:00" for day in expected_days]


def test_nearest_weekday_found_when_search_starts_on_its_sunday() -> None:
    # Spring misses this Monday when its search passes through Sunday the 15th (see module doc).
    assert fires("0 0 12 15W * ?", at("2026-02-15T18:00:00")) == ["2026-02-16T12:00:00+00:00"]


def test_hourly_on_a_special_day_fires_every_hour_of_it() -> None:
    assert fires("0 0 * L * *", at("2026-01-31T01:00:00"), 2) == [
        "2026-01-31T02:00:00+00:00",
        "2026-01-31T03:00:00+00:00",
    ]


def test_feb_29_waits_for_the_next_leap_year() -> None:
    assert fires("0 0 0 29 2 ?", at("2026-01-01T00:00:00"), 2) == [
        "2028-02-29T00:00:00+00:00",
        "2032-02-29T00:00:00+00:00",
    ]


def test_day_of_month_and_day_of_week_must_both_match() -> None:
    # croniter's default ORs them and answers 2026-01-02, the next Friday.
    assert fires("0 0 0 13 * FRI", at("2026-01-01T00:00:00"), 2) == [
        "2026-02-13T00:00:00+00:00",
        "2026-03-13T00:00:00+00:00",
    ]


def test_rare_dates_decades_away_are_found() -> None:
    # Feb 29 falls on a Monday in 2044, then not again until 2072.
    assert fires("0 0 0 29 2 MON", at("2026-01-01T00:00:00"), 2) == [
        "2044-02-29T00:00:00+00:00",
        "2072-02-29T00:00:00+00:00",
    ]


@pytest.mark.parametrize(
    "expression",
    ["0 0 0 30 2 ?", "0 0 0 31 4,6,9,11 ?", "0 0 0 L-30 2 ?", "0 0 0 1 * MON#5"],
)
def test_expression_that_never_fires_gives_none(expression: str) -> None:
    assert parse(expression).next_after(at("2026-01-01T00:00:00")) is None


# -- zones and daylight saving time ----------------------------------------------------------


def test_fire_times_are_wall_clock_times_in_the_zone_of_after() -> None:
    kolkata = ZoneInfo("Asia/Kolkata")
    found = parse("0 0 9 ? * MON-FRI").next_after(at("2026-03-06T09:00:00", kolkata))
    assert found is not None
    assert found.isoformat() == "2026-03-09T09:00:00+05:30"
    assert found.tzinfo is kolkata


def test_same_instant_in_another_zone_gives_that_zones_wall_clock_answer() -> None:
    after = at("2026-01-01T00:00:00")
    assert fires("0 0 9 * * *", after.astimezone(ZoneInfo("Asia/Tokyo"))) == [
        "2026-01-02T09:00:00+09:00"
    ]
    assert fires("0 0 9 * * *", after) == ["2026-01-01T09:00:00+00:00"]


def test_naive_after_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        parse("* * * * * *").next_after(datetime(2026, 1, 1))


@pytest.mark.parametrize(
    ("expression", "after", "zone", "expected"),
    [
        # New York springs forward at 02:00 on 2026-03-08: 02:30 does not exist that day.
        ("0 30 2 * * *", "2026-03-07T02:30:00", NEW_YORK, ["2026-03-09T02:30:00-04:00"]),
        ("0 0 * * * *", "2026-03-08T01:00:00", NEW_YORK, ["2026-03-08T03:00:00-04:00"]),
        ("0 */15 * * * *", "2026-03-08T01:45:00", NEW_YORK, ["2026-03-08T03:00:00-04:00"]),
        # Berlin springs forward at 02:00 on 2026-03-29.
        ("0 30 2 * * *", "2026-03-28T02:30:00", BERLIN, ["2026-03-30T02:30:00+02:00"]),
        # Spring's own test case.
        (
            "0 10 2 * * *",
            "2013-03-31T01:09:00",
            ZoneInfo("Europe/Amsterdam"),
            ["2013-04-01T02:10:00+02:00"],
        ),
    ],
)
def test_time_in_a_spring_forward_gap_is_skipped(
    expression: str, after: str, zone: ZoneInfo, expected: list[str]
) -> None:
    assert fires(expression, at(after, zone)) == expected


@pytest.mark.parametrize(
    ("expression", "after", "zone", "expected"),
    [
        # New York falls back at 02:00 EDT on 2026-11-01: 01:00-01:59 happens twice.
        (
            "0 30 1 * * *",
            "2026-10-31T12:00:00",
            NEW_YORK,
            [
                "2026-11-01T01:30:00-04:00",
                "2026-11-01T01:30:00-05:00",
                "2026-11-02T01:30:00-05:00",
            ],
        ),
        # Berlin falls back at 03:00 CEST on 2026-10-25: 02:00-02:59 happens twice.
        (
            "0 30 2 * * *",
            "2026-10-24T12:00:00",
            BERLIN,
            [
                "2026-10-25T02:30:00+02:00",
                "2026-10-25T02:30:00+01:00",
                "2026-10-26T02:30:00+01:00",
            ],
        ),
        # A periodic schedule stays periodic in real time through the repeated hour.
        (
            "0 */30 * * * *",
            "2026-11-01T00:45:00",
            NEW_YORK,
            [
                "2026-11-01T01:00:00-04:00",
                "2026-11-01T01:30:00-04:00",
                "2026-11-01T01:00:00-05:00",
                "2026-11-01T01:30:00-05:00",
                "2026-11-01T02:00:00-05:00",
            ],
        ),
    ],
)
def test_time_repeated_when_clocks_go_back_fires_at_both_instants(
    expression: str, after: str, zone: ZoneInfo, expected: list[str]
) -> None:
    assert fires(expression, at(after, zone), len(expected)) == expected


def test_from_late_in_the_first_pass_the_repeat_of_an_earlier_time_comes_next() -> None:
    # 01:50 EDT is followed by 01:00-01:59 EST, which holds the next 01:15.
    assert fires("0 15 1 * * *", at("2026-11-01T01:50:00", NEW_YORK)) == [
        "2026-11-01T01:15:00-05:00"
    ]


def test_from_the_second_pass_the_first_occurrence_is_not_repeated() -> None:
    assert fires("0 15,45 1 * * *", at("2026-11-01T01:20:00", NEW_YORK, fold=1), 2) == [
        "2026-11-01T01:45:00-05:00",
        "2026-11-02T01:15:00-05:00",
    ]


def test_after_given_as_a_wall_time_inside_the_gap_is_read_as_its_instant() -> None:
    # 02:30 on the gap day is 03:30 EDT as an instant (Python's fold=0 reading).
    assert fires("0 0 * * * *", at("2026-03-08T02:30:00", NEW_YORK)) == [
        "2026-03-08T04:00:00-04:00"
    ]


def _minutes_around(moment: datetime, hours: int) -> list[datetime]:
    start = moment.astimezone(UTC) - timedelta(hours=hours)
    return [start + timedelta(minutes=m) for m in range(hours * 2 * 60)]


@pytest.mark.parametrize(
    ("expression", "matches"),
    [
        ("0 */20 * * * *", lambda wall: wall.minute % 20 == 0),
        ("0 0 * * * *", lambda wall: wall.minute == 0),
        ("0 15,45 1,2 * * *", lambda wall: wall.minute in (15, 45) and wall.hour in (1, 2)),
        ("0 30 0-3 * * *", lambda wall: wall.minute == 30 and wall.hour <= 3),
    ],
)
@pytest.mark.parametrize(
    ("zone", "change"),
    [
        (NEW_YORK, "2026-03-08T02:00:00"),
        (NEW_YORK, "2026-11-01T01:00:00"),
        (BERLIN, "2026-03-29T02:00:00"),
        (BERLIN, "2026-10-25T02:00:00"),
    ],
)
def test_fire_times_are_every_instant_whose_wall_clock_matches(
    expression: str, matches: Callable[[datetime], bool], zone: ZoneInfo, change: str
) -> None:
    """Checked minute by minute against the definition, from every start in a 6-hour window."""
    minutes = _minutes_around(at(change, zone), hours=3)
    expected = [m for m in minutes if matches(m.astimezone(zone))]
    cron = parse(expression)
    for start in minutes[:-60]:
        following = [m for m in expected if m > start]
        found = cron.next_after(start.astimezone(zone))
        assert found is not None
        if following:
            assert found.astimezone(UTC) == following[0], start.astimezone(zone).isoformat()
        assert found.astimezone(UTC) > start


# -- invalid expressions ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "why"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("* * * * *", "found 5"),
        ("0 0 12 * *", "starts with seconds"),
        ("* * * * * * *", "found 7"),
        ("0 0 12 * * ? 2026", "found 7"),
        ("60 * * * * *", "second 60 is out of range 0-59"),
        ("* 60 * * * *", "minute 60 is out of range"),
        ("* * 24 * * *", "hour 24 is out of range"),
        ("* * * 32 * *", "day-of-month 32 is out of range"),
        ("* * * 0 * *", "day-of-month 0 is out of range"),
        ("* * * * 13 *", "month 13 is out of range"),
        ("* * * * * 8", "day-of-week 8 is out of range"),
        ("*/0 * * * * *", "step must be 1 or higher"),
        ("*/x * * * * *", "not a number"),
        ("5-1 * * * * *", "runs backwards"),
        ("* * * * DEC-JAN *", "runs backwards"),
        ("* * * * FOO *", "'FOO' is not a valid month"),
        ("* * * * JANUARY *", "'JANUARY' is not a valid month"),
        ("* * * * * FUNDAY", "'FUNDAY' is not a valid day-of-week"),
        ("* * * * JAN MON-JAN", "'JAN' is not a valid day-of-week"),
        ("? * * * * *", "'?' is only allowed"),
        ("* * * ?,1 * *", "'?' is only allowed"),
        ("1,,2 * * * * *", "empty list element"),
        ("-5 * * * * *", "value is missing"),
        ("* * * L-0 * *", "out of range 1-30"),
        ("* * * L3 * *", "not a valid day-of-month"),
        ("* * * 32W * *", "out of range"),
        ("* * * W * *", "not a valid day-of-month"),
        ("* * * * * L", "not a valid day-of-week"),
        ("* * * * * 5#0", "out of range 1-5"),
        ("* * * * * 5#6", "out of range 1-5"),
        ("* * * * * #2", "not a valid day-of-week"),
        ("@often", "found 1"),
        ("a b c d e f", "'a' is not a valid second"),
    ],
)
def test_invalid_expression_raises_cron_error_saying_why(expression: str, why: str) -> None:
    with pytest.raises(CronError) as info:
        parse(expression)
    message = str(info.value)
    assert "cron" in message
    assert message.startswith(f"Invalid cron expression '{expression.strip()}': ")
    assert why in message


def test_cron_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="cron"):
        parse("nope")


def test_long_invalid_expression_is_shortened_in_the_message() -> None:
    with pytest.raises(CronError) as info:
        parse("1," * 500)
    assert len(str(info.value)) < 300


# -- scheduler helpers -----------------------------------------------------------------------


def test_next_fire_ms_is_strictly_after_in_epoch_ms() -> None:
    cron = parse("0 */30 * * * *")
    slot = ms("2026-01-01T00:30:00")
    assert next_fire_ms(cron, slot - 500, UTC) == slot
    assert next_fire_ms(cron, slot, UTC) == ms("2026-01-01T01:00:00")


def test_next_fire_ms_evaluates_in_the_given_zone() -> None:
    tokyo = ZoneInfo("Asia/Tokyo")
    assert next_fire_ms(parse("0 0 9 * * *"), ms("2026-01-01T00:00:00"), tokyo) == ms(
        "2026-01-02T00:00:00"
    )


def test_next_fire_ms_gives_none_when_nothing_fires() -> None:
    assert next_fire_ms(parse("0 0 0 30 2 ?"), ms("2026-01-01T00:00:00"), UTC) is None


def test_next_few_ms_stops_at_the_limit() -> None:
    found = next_few_ms(parse("0 */30 * * * *"), ms("2026-01-01T00:00:00"), UTC, 3)
    assert found == [
        ms("2026-01-01T00:30:00"),
        ms("2026-01-01T01:00:00"),
        ms("2026-01-01T01:30:00"),
    ]


def test_next_few_ms_includes_a_slot_exactly_at_the_end() -> None:
    end = ms("2026-01-01T01:00:00")
    found = next_few_ms(parse("0 */30 * * * *"), ms("2026-01-01T00:00:00"), UTC, 5, end_ms=end)
    assert found == [ms("2026-01-01T00:30:00"), end]


@pytest.mark.parametrize(
    ("expression", "limit", "end"),
    [
        ("0 */30 * * * *", 0, None),
        ("0 0 0 30 2 ?", 5, None),
        ("0 0 0 1 1 ?", 5, "2026-06-01T00:00:00"),
    ],
)
def test_next_few_ms_can_be_empty(expression: str, limit: int, end: str | None) -> None:
    end_ms = None if end is None else ms(end)
    after = ms("2026-01-01T00:00:00")
    assert next_few_ms(parse(expression), after, UTC, limit, end_ms=end_ms) == []


def test_next_few_ms_follows_dst_in_the_zone() -> None:
    found = next_few_ms(parse("0 0 9 * * *"), ms("2026-03-07T15:00:00"), NEW_YORK, 2)
    assert found == [ms("2026-03-08T13:00:00"), ms("2026-03-09T13:00:00")]


@pytest.mark.parametrize("zone_id", [None, ""])
def test_missing_zone_means_utc(zone_id: str | None) -> None:
    assert validate_zone(zone_id) == ZoneInfo("UTC")


@pytest.mark.parametrize("zone_id", ["UTC", "America/New_York", "US/Central", "Asia/Dubai"])
def test_iana_zone_ids_are_accepted(zone_id: str) -> None:
    assert validate_zone(zone_id).key == zone_id


@pytest.mark.parametrize(
    "zone_id", ["Mars/Olympus_Mons", "America", "../etc/passwd", "/etc/localtime", "+05:30"]
)
def test_unknown_zone_raises_zone_error_naming_it(zone_id: str) -> None:
    with pytest.raises(ZoneError) as info:
        validate_zone(zone_id)
    assert zone_id in str(info.value)
    assert isinstance(info.value, ValueError)
    # Clients read a 400 mentioning "cron" as a bad cron expression; a bad zone is not one.
    assert not isinstance(info.value, CronError)
    assert "cron" not in str(info.value).lower()
