"""A tenant's business calendar: weekly opening hours in the tenant's time zone, public holidays
(from the `holidays` package, by country and subdivision), extra closed dates and extra open dates.

Pure: no database, no clock. Callers pass the instant (an aware datetime, normally UTC) and get
answers evaluated in the tenant's local time.

Precedence for a local date: an extra closed date closes the whole day; otherwise an extra open
date opens it with the hours given for that date (even on a weekend or a public holiday); otherwise
a public holiday closes it; otherwise the weekly hours for that weekday apply.

Intervals are half-open, [start, end): open at 08:00 means open at 08:00:00, closing at 20:00
means closed at 20:00:00. "24:00" is allowed as an end, meaning midnight at the end of the day;
an overnight shift is two intervals (e.g. mon 22:00-24:00 and tue 00:00-02:00).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from itertools import pairwise
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationInfo, field_validator

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

_HHMM = re.compile(r"^([01]\d|2[0-4]):([0-5]\d)$")
_DAY_MINUTES = 24 * 60
#: How far next_opening looks ahead before concluding the line never opens.
SEARCH_DAYS = 2 * 366


def _minutes(value: str) -> int:
    """Minutes since local midnight for "HH:MM" (00:00 to 24:00)."""
    match = _HHMM.match(value)
    if match is None:
        raise ValueError(f"'{value}' is not a time of day in HH:MM (00:00 to 24:00)")
    minutes = int(match.group(1)) * 60 + int(match.group(2))
    if minutes > _DAY_MINUTES:
        raise ValueError(f"'{value}' is not a time of day in HH:MM (00:00 to 24:00)")
    return minutes


def _check_interval(interval: tuple[str, str]) -> tuple[str, str]:
    start, end = interval
    start_minutes, end_minutes = _minutes(start), _minutes(end)
    if start_minutes >= _DAY_MINUTES:
        raise ValueError(f"an interval cannot start at '{start}'")
    if start_minutes >= end_minutes:
        raise ValueError(f"interval start '{start}' must be before its end '{end}'")
    return interval


#: One opening interval, ["HH:MM", "HH:MM"], start before end.
Interval = Annotated[tuple[str, str], AfterValidator(_check_interval)]


def _check_no_overlap(intervals: list[tuple[str, str]]) -> list[tuple[str, str]]:
    spans = sorted((_minutes(start), _minutes(end)) for start, end in intervals)
    for (_, previous_end), (start, _) in pairwise(spans):
        if start < previous_end:
            raise ValueError("opening intervals on the same day overlap")
    return intervals


#: The intervals of one day, without overlaps.
DayIntervals = Annotated[list[Interval], AfterValidator(_check_no_overlap)]


class BusinessHours(BaseModel):
    """When a tenant's lines are staffed.

    Example::

        BusinessHours(
            time_zone="Asia/Shanghai",
            weekly={"mon": [("08:00", "12:00"), ("13:00", "20:00")], "sat": [("09:00", "17:00")]},
            holiday_country="CN",
            closed_dates=[date(2026, 12, 24)],
            open_dates={date(2026, 1, 4): [("09:00", "18:00")]},
        )
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    time_zone: str
    #: Opening intervals per weekday; a weekday that is absent (or has []) is closed.
    weekly: dict[Weekday, DayIntervals] = {}
    #: ISO 3166 code understood by the `holidays` package ("CN", "HK", "TW", ...), or None.
    holiday_country: str | None = None
    #: A subdivision of that country, where the package knows it (e.g. "US" and "CA").
    holiday_subdivision: str | None = None
    #: Dates closed all day (local dates), e.g. a company event.
    closed_dates: frozenset[date] = frozenset()
    #: Dates open with these hours even on a weekend or public holiday (e.g. a make-up workday).
    open_dates: dict[date, DayIntervals] = {}

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"'{value}' is not an IANA time zone") from exc
        return value

    @field_validator("holiday_country")
    @classmethod
    def _known_country(cls, value: str | None) -> str | None:
        if value is not None and value not in holidays.list_supported_countries():
            raise ValueError(f"no public holidays are known for country '{value}'")
        return value

    @field_validator("holiday_subdivision")
    @classmethod
    def _known_subdivision(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return value
        country = info.data.get("holiday_country")
        if country is None:
            raise ValueError("a holiday subdivision needs a holiday_country")
        if value not in holidays.list_supported_countries()[country]:
            raise ValueError(f"'{value}' is not a subdivision of '{country}' known for holidays")
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)


@lru_cache(maxsize=512)
def _public_holidays(country: str, subdivision: str | None, year: int) -> frozenset[date]:
    found = holidays.country_holidays(country, subdiv=subdivision, years=year)
    return frozenset(found.keys())


def is_public_holiday(hours: BusinessHours, day: date) -> bool:
    if hours.holiday_country is None:
        return False
    return day in _public_holidays(hours.holiday_country, hours.holiday_subdivision, day.year)


def intervals_on(hours: BusinessHours, day: date) -> list[tuple[time, time | None]]:
    """The opening intervals of a local date, sorted; an end of None means midnight (24:00)."""
    if day in hours.closed_dates:
        return []
    if day in hours.open_dates:
        raw = hours.open_dates[day]
    elif is_public_holiday(hours, day):
        return []
    else:
        raw = hours.weekly.get(WEEKDAYS[day.weekday()], [])
    result: list[tuple[time, time | None]] = []
    for start, end in sorted(raw, key=lambda interval: _minutes(interval[0])):
        end_minutes = _minutes(end)
        result.append(
            (
                _as_time(_minutes(start)),
                None if end_minutes == _DAY_MINUTES else _as_time(end_minutes),
            )
        )
    return result


def _as_time(minutes: int) -> time:
    return time(minutes // 60, minutes % 60)


def _require_aware(at: datetime) -> None:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("expected an aware datetime (UTC), got a naive one")


def is_open(hours: BusinessHours, at: datetime) -> bool:
    """Whether the tenant is open at the instant `at` (aware), judged in the tenant's zone."""
    _require_aware(at)
    local = at.astimezone(hours.zone)
    now = local.time().replace(tzinfo=None)
    return any(
        start <= now and (end is None or now < end)
        for start, end in intervals_on(hours, local.date())
    )


def next_opening(hours: BusinessHours, at: datetime) -> datetime | None:
    """The first instant at or after `at` when the tenant is open, in UTC; `at` itself when open
    now; None when nothing opens within SEARCH_DAYS (e.g. no weekly hours at all)."""
    _require_aware(at)
    if is_open(hours, at):
        return at.astimezone(UTC)
    zone = hours.zone
    first_day = at.astimezone(zone).date()
    for offset in range(SEARCH_DAYS + 1):
        day = first_day + timedelta(days=offset)
        for start, _ in intervals_on(hours, day):
            opening = datetime.combine(day, start, tzinfo=zone)
            if opening > at:
                return opening.astimezone(UTC)
    return None
