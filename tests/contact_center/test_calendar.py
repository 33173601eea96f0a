"""A tenant's business calendar: weekly hours in its own time zone, public holidays, extra closed
and open dates. Pure: no database."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from contact_center.calendar import (
    BusinessHours,
    intervals_on,
    is_open,
    is_public_holiday,
    next_opening,
)

SHANGHAI = timezone(timedelta(hours=8))  # Asia/Shanghai has no daylight saving


def guangzhou(**changes: Any) -> BusinessHours:
    """A Guangzhou courier: weekdays 08:00-20:00, Saturday 09:00-17:00, Sunday closed; Chinese
    public holidays; closed for a company event; open on the make-up workday Sunday 2026-09-20."""
    fields: dict[str, Any] = {
        "time_zone": "Asia/Shanghai",
        "weekly": {
            **{day: [["08:00", "20:00"]] for day in ("mon", "tue", "wed", "thu", "fri")},
            "sat": [["09:00", "17:00"]],
        },
        "holiday_country": "CN",
        "closed_dates": ["2026-09-16"],
        "open_dates": {"2026-09-20": [["09:00", "18:00"]]},
    }
    fields.update(changes)
    return BusinessHours.model_validate(fields)


def local(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    """A Guangzhou wall-clock time, as the UTC instant the carrier would report."""
    return datetime(year, month, day, hour, minute, second, tzinfo=SHANGHAI).astimezone(UTC)


def test_open_on_a_tuesday_morning() -> None:
    assert date(2026, 9, 15).weekday() == 1  # Tuesday
    assert is_open(guangzhou(), local(2026, 9, 15, 10, 0))
    assert is_open(guangzhou(), local(2026, 9, 15, 8, 0))  # opening minute included


def test_closed_in_the_evening() -> None:
    assert not is_open(guangzhou(), local(2026, 9, 15, 21, 0))
    assert not is_open(guangzhou(), local(2026, 9, 15, 20, 0))  # closing minute excluded
    assert is_open(guangzhou(), local(2026, 9, 15, 19, 59, 59))


def test_closed_on_national_day() -> None:
    hours = guangzhou()
    assert date(2026, 10, 1).weekday() == 3  # a Thursday, normally open
    assert is_public_holiday(hours, date(2026, 10, 1))
    assert not is_open(hours, local(2026, 10, 1, 10, 0))
    assert intervals_on(hours, date(2026, 10, 1)) == []


def test_without_a_holiday_country_national_day_is_a_normal_thursday() -> None:
    assert is_open(guangzhou(holiday_country=None), local(2026, 10, 1, 10, 0))


def test_an_extra_closed_date_closes_the_day() -> None:
    assert not is_open(guangzhou(), local(2026, 9, 16, 10, 0))  # Wednesday, company event
    assert is_open(guangzhou(), local(2026, 9, 17, 10, 0))


def test_an_extra_open_sunday() -> None:
    hours = guangzhou()
    assert date(2026, 9, 20).weekday() == 6
    assert is_open(hours, local(2026, 9, 20, 10, 0))
    assert not is_open(hours, local(2026, 9, 20, 8, 30))  # its own hours: from 09:00
    assert not is_open(hours, local(2026, 9, 27, 10, 0))  # an ordinary Sunday


def test_an_extra_open_date_overrides_a_holiday_and_a_closed_date_wins_over_both() -> None:
    hours = guangzhou(open_dates={"2026-10-02": [["10:00", "16:00"]]})
    assert is_open(hours, local(2026, 10, 2, 11, 0))
    both = guangzhou(open_dates={"2026-10-02": [["10:00", "16:00"]]}, closed_dates=["2026-10-02"])
    assert not is_open(both, local(2026, 10, 2, 11, 0))


def test_the_tenants_own_country_decides_the_holidays() -> None:
    july_first = local(2026, 7, 1, 10, 0)  # a Wednesday
    assert is_open(guangzhou(), july_first)
    hong_kong = guangzhou(time_zone="Asia/Hong_Kong", holiday_country="HK")
    assert not is_open(hong_kong, july_first)  # HKSAR Establishment Day
    taipei = guangzhou(time_zone="Asia/Taipei", holiday_country="TW")
    assert not is_open(taipei, local(2026, 10, 9, 10, 0))  # observed National Day (10-10 a Sat)
    assert is_open(taipei, local(2026, 10, 1, 10, 0))


def test_several_intervals_a_day() -> None:
    hours = guangzhou(weekly={"mon": [["13:00", "20:00"], ["08:00", "12:00"]]})
    assert is_open(hours, local(2026, 9, 14, 11, 59))
    assert not is_open(hours, local(2026, 9, 14, 12, 30))  # lunch
    assert is_open(hours, local(2026, 9, 14, 13, 0))
    assert next_opening(hours, local(2026, 9, 14, 12, 30)) == local(2026, 9, 14, 13, 0)


def test_time_zone_across_utc_midnight() -> None:
    hours = guangzhou()
    # Sunday 23:30 UTC is Monday 07:30 in Guangzhou: the Monday's hours apply, not yet open.
    sunday_night_utc = datetime(2026, 9, 13, 23, 30, tzinfo=UTC)
    assert not is_open(hours, sunday_night_utc)
    # Monday 00:30 UTC is Monday 08:30 in Guangzhou: open, though it is just past midnight in UTC.
    assert is_open(hours, datetime(2026, 9, 14, 0, 30, tzinfo=UTC))
    # Friday 12:30 UTC is 20:30 in Guangzhou: closed though it is midday in UTC.
    assert not is_open(hours, datetime(2026, 9, 18, 12, 30, tzinfo=UTC))


def test_a_tenant_west_of_utc_uses_its_own_date() -> None:
    hours = BusinessHours(time_zone="America/Los_Angeles", weekly={"mon": [("08:00", "20:00")]})
    # Tuesday 02:00 UTC is Monday 19:00 in Los Angeles (PDT).
    assert is_open(hours, datetime(2026, 9, 15, 2, 0, tzinfo=UTC))
    assert not is_open(hours, datetime(2026, 9, 15, 4, 0, tzinfo=UTC))  # Monday 21:00


def test_open_until_midnight_and_an_overnight_shift() -> None:
    hours = guangzhou(weekly={"mon": [["22:00", "24:00"]], "tue": [["00:00", "02:00"]]})
    assert is_open(hours, local(2026, 9, 14, 23, 59, 59))
    assert is_open(hours, local(2026, 9, 15, 0, 0))
    assert not is_open(hours, local(2026, 9, 15, 2, 0))


def test_a_naive_datetime_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        is_open(guangzhou(), datetime(2026, 9, 15, 10, 0))


def test_next_opening_is_the_next_morning() -> None:
    assert next_opening(guangzhou(), local(2026, 9, 15, 21, 0)) == local(2026, 9, 17, 8, 0)
    assert next_opening(guangzhou(), local(2026, 9, 14, 21, 0)) == local(2026, 9, 15, 8, 0)


def test_next_opening_skips_the_golden_week() -> None:
    # Oct 1-3, 5-7 are holidays or days off, Oct 4 is a Sunday: back on Thursday Oct 8.
    opening = next_opening(guangzhou(), local(2026, 9, 30, 21, 0))
    assert opening == local(2026, 10, 8, 8, 0)
    assert opening is not None and opening.tzinfo == UTC


def test_next_opening_finds_the_extra_open_sunday() -> None:
    assert next_opening(guangzhou(), local(2026, 9, 19, 18, 0)) == local(2026, 9, 20, 9, 0)


def test_next_opening_when_open_now_is_now() -> None:
    now = local(2026, 9, 15, 10, 0)
    assert next_opening(guangzhou(), now) == now


def test_next_opening_of_a_line_that_never_opens() -> None:
    assert next_opening(BusinessHours(time_zone="Asia/Shanghai"), local(2026, 9, 15, 10)) is None


def _loc(exc: pytest.ExceptionInfo[ValidationError]) -> tuple[int | str, ...]:
    errors = exc.value.errors()
    assert len(errors) == 1
    return errors[0]["loc"]


def test_an_unknown_time_zone_is_refused() -> None:
    with pytest.raises(ValidationError) as exc:
        guangzhou(time_zone="Asia/Guangzhou")
    assert _loc(exc) == ("time_zone",)
    assert "Asia/Guangzhou" in str(exc.value)


@pytest.mark.parametrize("interval", [["25:00", "26:00"], ["08:00", "25:00"], ["8am", "20:00"]])
def test_a_bad_time_of_day_is_refused(interval: list[str]) -> None:
    with pytest.raises(ValidationError) as exc:
        guangzhou(weekly={"mon": [interval]})
    assert _loc(exc) == ("weekly", "mon", 0)
    assert "HH:MM" in str(exc.value)


def test_start_after_end_is_refused() -> None:
    with pytest.raises(ValidationError) as exc:
        guangzhou(weekly={"tue": [["20:00", "08:00"]]})
    assert _loc(exc) == ("weekly", "tue", 0)
    assert "before" in str(exc.value)


def test_overlapping_intervals_are_refused() -> None:
    with pytest.raises(ValidationError) as exc:
        guangzhou(weekly={"wed": [["08:00", "12:00"], ["11:00", "20:00"]]})
    assert _loc(exc) == ("weekly", "wed")


def test_bad_extra_open_hours_are_refused() -> None:
    with pytest.raises(ValidationError) as exc:
        guangzhou(open_dates={"2026-09-20": [["18:00", "09:00"]]})
    assert _loc(exc)[0] == "open_dates"


def test_an_unknown_weekday_is_refused() -> None:
    with pytest.raises(ValidationError) as exc:
        guangzhou(weekly={"monday": [["08:00", "20:00"]]})
    assert _loc(exc)[0] == "weekly"


def test_an_unknown_holiday_country_or_subdivision_is_refused() -> None:
    with pytest.raises(ValidationError) as exc:
        guangzhou(holiday_country="XX")
    assert _loc(exc) == ("holiday_country",)
    with pytest.raises(ValidationError) as exc:
        guangzhou(holiday_subdivision="GD")
    assert _loc(exc) == ("holiday_subdivision",)


def test_a_subdivision_the_package_knows_is_accepted() -> None:
    hours = BusinessHours(
        time_zone="America/New_York",
        weekly={"mon": [("09:00", "17:00")]},
        holiday_country="US",
        holiday_subdivision="CA",
    )
    assert is_public_holiday(hours, date(2026, 9, 7))  # Labor Day, a Monday
    assert not is_open(hours, datetime(2026, 9, 7, 15, 0, tzinfo=UTC))


def test_json_round_trip() -> None:
    hours = guangzhou()
    assert BusinessHours.model_validate_json(hours.model_dump_json()) == hours
