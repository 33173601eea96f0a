"""Booking: order numbers per tenant, the booking rules (each refusal names the rule and the
earliest window that works), bad input named by field, and what a booking publishes."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import pytest

from depotline.db import tenant_scope, utcnow
from depotline.errors import InvalidInput
from pickup import service
from pickup.models import OrderStatus
from pickup.schemas import SettingsIn
from pickup.service import BookingRuleBroken
from tests.pickup.conftest import AGENT, SHANGHAI, Pickup, at, order_in, tomorrow


def local_now(day: date, hour: int, minute: int = 0) -> datetime:
    """An aware moment: 'now' at a local time in Guangzhou."""
    return datetime.combine(day, time(hour, minute), tzinfo=SHANGHAI)


async def test_order_numbers_run_per_tenant_and_year(pickup: Pickup) -> None:
    year = utcnow().astimezone(SHANGHAI).year
    first = await pickup.book()
    second = await pickup.book(order_in(deliberate=True))
    assert (first.number, second.number) == (f"SF-{year}-000001", f"SF-{year}-000002")
    assert first.status == OrderStatus.BOOKED
    # The caller is given a confirmation code; the tracking link is long and unguessable.
    assert first.confirmation_code.isdigit() and len(first.confirmation_code) == 6
    assert len(first.tracking_token) >= 32 and first.tracking_token != second.tracking_token

    # Harbour Logistics counts from 1 with its own (default) prefix.
    harbour = pickup.world.tenants["harbour"]
    with tenant_scope(harbour):
        async with pickup.db.session() as session:
            theirs = (await service.create_order(session, AGENT, order_in())).order
    assert theirs.number == f"DL-{year}-000001"


async def test_a_booking_after_the_same_day_cut_off_names_the_rule_and_the_next_window(
    pickup: Pickup,
) -> None:
    today = tomorrow()  # any day will do: 'now' is given
    now = local_now(today, 16, 30)
    with pytest.raises(BookingRuleBroken) as refused:
        await pickup.book(
            order_in(day=today, window_start=at(today, 17), window_end=at(today, 18)), now=now
        )
    assert refused.value.rule == "same_day_cutoff" and refused.value.field == "window_start"
    next_day = (today + timedelta(days=1)).isoformat()
    assert refused.value.detail == (
        "Same-day bookings close at 16:00. The earliest window that works is "
        f"{next_day} 09:00–10:00 (Asia/Shanghai)."
    )
    # Before the cut-off the same window is fine.
    booked = await pickup.book(
        order_in(window_start=at(today, 17), window_end=at(today, 18)), now=local_now(today, 15)
    )
    assert booked.window_start == local_now(today, 17)


@pytest.mark.parametrize(
    ("now_hour", "start", "end", "rule", "field", "days_later", "earliest"),
    [
        # 30 minutes is shorter than the 60-minute minimum: an hour from the asked start.
        (8, (10, 0), (10, 30), "min_window", "window_end", 0, "10:00–11:00"),
        # 10:30 is within the hour's notice from 10:00: the first window an hour from now.
        (10, (10, 30), (11, 30), "lead_time", "window_start", 0, "11:00–12:00"),
        # Visits start at 09:00 ...
        (6, (7, 0), (8, 0), "service_hours", "window_start", 0, "09:00–10:00"),
        # ... and end at 18:00: two hours from 17:00 do not fit, the next morning does.
        (8, (17, 0), (19, 0), "service_hours", "window_start", 1, "09:00–11:00"),
    ],
)
async def test_other_booking_rules_say_which_rule_and_the_earliest_window(
    pickup: Pickup,
    now_hour: int,
    start: tuple[int, int],
    end: tuple[int, int],
    rule: str,
    field: str,
    days_later: int,
    earliest: str,
) -> None:
    day = tomorrow()
    data = order_in(window_start=at(day, *start), window_end=at(day, *end))
    with pytest.raises(BookingRuleBroken) as refused:
        await pickup.book(data, now=local_now(day, now_hour))
    assert (refused.value.rule, refused.value.field) == (rule, field)
    suggested = (day + timedelta(days=days_later)).isoformat()
    assert refused.value.detail.endswith(
        f"The earliest window that works is {suggested} {earliest} (Asia/Shanghai)."
    )


async def test_rules_are_the_tenants_own(pickup: Pickup) -> None:
    await pickup.run(
        service.save_rules,
        SettingsIn(
            order_prefix="SF", horizon_days=7, lead_time_minutes=240, same_day_cutoff=time(12)
        ),
    )
    day = tomorrow()
    far = day + timedelta(days=10)
    with pytest.raises(BookingRuleBroken, match="up to 7 days ahead") as refused:
        await pickup.book(order_in(day=far), now=local_now(day, 8))
    assert refused.value.rule == "horizon"
    with pytest.raises(BookingRuleBroken, match="240 minutes' notice"):
        await pickup.book(
            order_in(window_start=at(day, 10), window_end=at(day, 11)), now=local_now(day, 8)
        )
    with pytest.raises(InvalidInput, match="must end after it starts") as backwards:
        await pickup.book(order_in(window_start=at(day, 12), window_end=at(day, 10)))
    assert backwards.value.field == "window_end"


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"sender_phone": "12"}, "sender.phone"),
        ({"sender_address": ""}, "sender.address"),
        ({"kind": "delivery"}, "receiver.name"),
        ({"payment": "cash_on_delivery"}, "payment"),
        ({"language": "fr"}, "language"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
    ],
)
async def test_bad_input_is_refused_naming_the_field(
    pickup: Pickup, fields: dict[str, str], field: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        await pickup.book(order_in(**fields))
    assert refused.value.field == field


async def test_a_booking_publishes_itself_for_dispatch_and_the_customer_timeline(
    pickup: Pickup,
) -> None:
    order = await pickup.book()
    [booked] = await pickup.events(service.ORDER_BOOKED)
    assert booked["order_id"] == str(order.id) and booked["number"] == order.number
    assert booked["contact_phone"] == "+8613800138000" and booked["language"] == "zh_Hans"
    [contact] = await pickup.events(service.CUSTOMER_CONTACT)
    assert contact["phone"] == "+8613800138000" and contact["kind"] == "order"
    assert contact["ref"] == str(order.id) and contact["direction"] == "inbound"
    assert order.number in contact["summary"]
    [entry] = await pickup.timeline(order.id)
    assert (entry.to_status, entry.actor_name) == ("booked", "Agent Sara")
    # Parcels are summed for lists and reports.
    assert (order.parcel_count, order.weight_kg, str(order.declared_value)) == (2, 3.0, "200.00")
