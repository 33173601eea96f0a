"""Dispatch: zones by postal-code prefix and by polygon (priority where they overlap), a full
depot passing orders to the next, addresses no zone covers on the exceptions list, a
rejection going to the next depot, never back, and a moved window its depot cannot take."""

from __future__ import annotations

import asyncio
from datetime import time, timedelta

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from depotline.db import tenant_scope
from depotline.errors import Conflict
from pickup import service
from pickup.models import OrderStatus
from pickup.repository import PickupRepository
from pickup.schemas import DepotIn, OrderIn, ZoneIn
from pickup.service import Actor
from tests.pickup.conftest import (
    AGENT,
    EVERY_DAY,
    INSIDE_PARK,
    OUTSIDE_PARK,
    Pickup,
    at,
    order_in,
    tomorrow,
)
from tests.telephony_gateway.conftest import Drain
from tests.tenant.conftest import sign_in

NORTH = Actor(kind="sms", name="Guangzhou North (+8613800000101)")


async def test_a_booking_is_dispatched_by_the_worker_to_its_zones_depot(
    pickup: Pickup, drain: Drain
) -> None:
    order = await pickup.book()
    assert order.status == OrderStatus.BOOKED and order.depot_id is None
    await drain()  # the outbox relay and a real arq worker

    order = await pickup.order(order.id)
    assert order.status == OrderStatus.DEPOT_ASSIGNED
    assert pickup.depot_name(order.depot_id) == "Guangzhou North"  # 5104xx, priority 10
    assert order.zone_id == pickup.zones["Baiyun"].id and order.dispatched_at is not None
    _, assigned = await pickup.timeline(order.id)
    assert (assigned.from_status, assigned.to_status) == ("booked", "depot_assigned")
    assert (assigned.actor_kind, assigned.actor_name) == ("system", "dispatch")
    [offer] = await pickup.events(service.DEPOT_ASSIGNED)
    assert offer["depot_id"] == str(order.depot_id) and offer["ref"] == order.seq
    assert offer["redispatch"] is False
    # Running dispatch again (a redelivered event) changes nothing.
    await pickup.run(service.dispatch, order.id)
    assert len(await pickup.events(service.DEPOT_ASSIGNED)) == 1


async def test_polygon_zones_win_inside_and_postal_zones_outside(pickup: Pickup) -> None:
    def in_shenzhen(point: tuple[float, float], postal: str = "518057") -> OrderIn:
        lat, lon = point
        return order_in(
            deliberate=True,  # the same customer, several times
            sender_address=f"南山区 {lat},{lon}",
            sender_postal_code=postal,
            sender_lat=lat,
            sender_lon=lon,
        )

    inside = await pickup.dispatched(in_shenzhen(INSIDE_PARK))
    outside = await pickup.dispatched(in_shenzhen(OUTSIDE_PARK))
    # A postal code no zone lists, but a point inside the polygon: the polygon covers it.
    by_map = await pickup.dispatched(in_shenzhen(INSIDE_PARK, postal="999999"))
    assert pickup.depot_name(inside.depot_id) == "Shenzhen Tech"
    assert inside.zone_id == pickup.zones["Science Park"].id
    assert pickup.depot_name(outside.depot_id) == "Shenzhen"
    assert pickup.depot_name(by_map.depot_id) == "Shenzhen Tech"

    # Where they overlap, priority decides: lower the polygon below the prefix zone.
    park = pickup.zones["Science Park"]
    await pickup.run(
        service.save_zone,
        ZoneIn(name=park.name, depot_id=park.depot_id, priority=-1),
        park.id,
    )
    again = await pickup.dispatched(in_shenzhen(INSIDE_PARK))
    assert pickup.depot_name(again.depot_id) == "Shenzhen"


async def test_a_full_depot_passes_orders_to_the_next_eligible_depot(pickup: Pickup) -> None:
    day = tomorrow()
    orders = [await pickup.dispatched(order_in(deliberate=True)) for _ in range(3)]
    assert [pickup.depot_name(o.depot_id) for o in orders] == [
        "Guangzhou North",
        "Guangzhou North",
        "Guangzhou South",  # North takes 2 a day
    ]
    *_, assigned = await pickup.timeline(orders[2].id)
    assert assigned.reason == f"Guangzhou South (Guangzhou North is full on {day} (2/2))"
    # Another day has room again; a cancelled order frees its place.
    next_day = await pickup.dispatched(order_in(day=day + timedelta(days=1)))
    assert pickup.depot_name(next_day.depot_id) == "Guangzhou North"
    await pickup.run(service.request_cancel, orders[0].id, NORTH)
    freed = await pickup.dispatched(order_in(deliberate=True))
    assert pickup.depot_name(freed.depot_id) == "Guangzhou North"


async def test_concurrent_dispatches_never_overfill_a_depot(pickup: Pickup) -> None:
    orders = [await pickup.book(order_in(deliberate=True)) for _ in range(5)]
    # Five workers decide at the same moment; North has room for two that day.
    await asyncio.gather(*(pickup.run(service.dispatch, o.id) for o in orders))
    depots = [pickup.depot_name((await pickup.order(o.id)).depot_id) for o in orders]
    assert sorted(str(d) for d in depots) == ["Guangzhou North"] * 2 + ["Guangzhou South"] * 3


async def test_a_slot_limit_passes_orders_on_too(pickup: Pickup) -> None:
    north = pickup.depots["Guangzhou North"]
    fields = DepotIn.model_validate(north, from_attributes=True).model_dump()
    fields.update(daily_capacity=None, slot_capacity=1, slot_minutes=120)
    await pickup.run(service.save_depot, DepotIn(**fields), north.id)
    first = await pickup.dispatched()
    second = await pickup.dispatched(order_in(deliberate=True))
    assert pickup.depot_name(first.depot_id) == "Guangzhou North"
    assert pickup.depot_name(second.depot_id) == "Guangzhou South"
    *_, assigned = await pickup.timeline(second.id)
    assert assigned.reason is not None and "10:00–12:00 (1/1)" in assigned.reason


async def test_an_address_no_zone_covers_goes_to_the_exceptions_list_with_an_alert(
    pickup: Pickup, client: AsyncTestClient[Litestar]
) -> None:
    order = await pickup.dispatched(
        order_in(sender_address="珠海市香洲区情侣中路1号", sender_postal_code="519000")
    )
    assert order.status == OrderStatus.UNSERVICEABLE and order.depot_id is None
    assert order.exception_reason == ("No zone covers postal code 519000 or the address's location")
    [alert] = await pickup.events(service.EXCEPTION_RAISED)
    assert alert == {
        "order_id": str(order.id),
        "number": order.number,
        "reason": order.exception_reason,
    }

    await sign_in(client, "admin@swiftfreight.test")
    page = await client.get("/pickup/exceptions")
    assert page.status_code == 200 and order.number in page.text
    assert "No zone covers postal code 519000" in page.text
    orders_page = await client.get("/pickup/orders")
    assert 'data-testid="exception-count">1<' in orders_page.text  # the alert

    # Staff add a zone for Zhuhai and dispatch it again: it is no longer an exception.
    zhuhai = await pickup.run(
        service.save_depot, DepotIn(name="Zhuhai", code="ZH", address="香洲区", open_days=EVERY_DAY)
    )
    await pickup.run(
        service.save_zone, ZoneIn(name="Zhuhai", depot_id=zhuhai.id, postal_codes=["519xxx"])
    )
    token = await _csrf(client)
    response = await client.post(
        f"/pickup/orders/{order.id}/dispatch", data={"_csrf": token}, follow_redirects=False
    )
    assert response.status_code in (302, 303)
    again = await pickup.order(order.id)
    assert again.status == OrderStatus.DEPOT_ASSIGNED and again.depot_id == zhuhai.id
    assert "exception-count" not in (await client.get("/pickup/orders")).text


async def test_a_rejection_goes_to_the_next_depot_and_never_back(pickup: Pickup) -> None:
    order = await pickup.dispatched()
    assert pickup.depot_name(order.depot_id) == "Guangzhou North"

    order = await pickup.run(service.depot_rejects, order.id, NORTH, "no van today")
    assert order.status == OrderStatus.DEPOT_ASSIGNED
    assert pickup.depot_name(order.depot_id) == "Guangzhou South"
    south = Actor.depot_sms(pickup.depots["Guangzhou South"], "+8613800000201")
    order = await pickup.run(service.depot_rejects, order.id, south, "")
    # Only North and South cover 510410, and both said no: staff must look at it.
    assert order.status == OrderStatus.UNSERVICEABLE
    assert order.exception_reason == (
        "No depot can take it: Guangzhou North rejected it; Guangzhou South rejected it"
    )
    whats = [(e.action, e.to_status, e.reason) for e in await pickup.timeline(order.id)]
    assert whats[1:] == [
        ("status", "depot_assigned", "Guangzhou North"),
        ("rejected", None, "no van today"),
        ("status", "booked", "rejected by Guangzhou North: no van today"),
        ("status", "depot_assigned", "Guangzhou South (Guangzhou North rejected it)"),
        ("rejected", None, "no reason given"),
        ("status", "booked", "rejected by Guangzhou South: no reason given"),
        ("status", "unserviceable", order.exception_reason),
    ]
    offers = await pickup.events(service.DEPOT_ASSIGNED)
    assert [o["redispatch"] for o in offers] == [False, True]
    answers = await pickup.events(service.DEPOT_ANSWERED)
    assert [a["accepted"] for a in answers] == [False, False]
    with tenant_scope(pickup.tenant_id):
        async with pickup.db.session() as session:
            assignments = await PickupRepository(session).assignments(order.id)
    assert [a.accepted for a in assignments] == [False, False]
    # A depot that was passed over cannot answer for the order any more.
    again = await pickup.run(service.get_order, order.id)
    assert again.depot_id is None


async def _csrf(client: AsyncTestClient[Litestar]) -> str:
    from tests.tenant.conftest import csrf_of

    return await csrf_of(client, "/auth/forgot")


async def test_a_depot_gets_only_windows_in_its_hours_and_on_its_days(pickup: Pickup) -> None:
    north = pickup.depots["Guangzhou North"]
    fields = DepotIn.model_validate(north, from_attributes=True).model_dump()
    day = tomorrow()
    # North works mornings only, and not on tomorrow's weekday the day after.
    other_days = [d for d in range(1, 8) if d != (day + timedelta(days=1)).isoweekday()]
    fields.update(opens_at=time(8), closes_at=time(12), open_days=other_days)
    await pickup.run(service.save_depot, DepotIn(**fields), north.id)

    morning = await pickup.dispatched(order_in(deliberate=True))  # 10:00-12:00
    assert pickup.depot_name(morning.depot_id) == "Guangzhou North"
    afternoon = await pickup.dispatched(
        order_in(deliberate=True, window_start=at(day, 14), window_end=at(day, 16))
    )
    assert pickup.depot_name(afternoon.depot_id) == "Guangzhou South"
    *_, assigned = await pickup.timeline(afternoon.id)
    assert assigned.reason == "Guangzhou South (Guangzhou North works 08:00–12:00)"

    day_off = await pickup.dispatched(order_in(day=day + timedelta(days=1)))
    assert pickup.depot_name(day_off.depot_id) == "Guangzhou South"
    *_, assigned = await pickup.timeline(day_off.id)
    weekday = (day + timedelta(days=1)).strftime("%A")
    assert assigned.reason == f"Guangzhou South (Guangzhou North does not work on {weekday}s)"


async def test_a_window_moves_only_to_when_its_depot_works_and_has_room(pickup: Pickup) -> None:
    north = pickup.depots["Guangzhou North"]
    fields = DepotIn.model_validate(north, from_attributes=True).model_dump()
    fields.update(opens_at=time(9), closes_at=time(12))  # mornings, two orders a day
    await pickup.run(service.save_depot, DepotIn(**fields), north.id)
    day = tomorrow()
    order = await pickup.dispatched(order_in(deliberate=True))  # North, 10:00-12:00
    assert pickup.depot_name(order.depot_id) == "Guangzhou North"

    # An afternoon is outside North's hours: refused with the reason; nothing moved.
    with pytest.raises(Conflict) as closed:
        await pickup.run(service.reschedule, order.id, AGENT, at(day, 14), at(day, 16))
    assert closed.value.detail == "Guangzhou North works 09:00–12:00: choose another window"
    assert closed.value.field == "window_start"
    assert (await pickup.order(order.id)).window_start == order.window_start

    # Within its own full-enough day the order does not count against itself.
    await pickup.dispatched(order_in(deliberate=True))  # North's second order that day
    moved = await pickup.run(service.reschedule, order.id, AGENT, at(day, 9), at(day, 11))
    assert moved.window_start == order.window_start - timedelta(hours=1)

    # A day North has filled already is refused.
    later = day + timedelta(days=2)
    for _ in range(2):
        taken = await pickup.dispatched(order_in(day=later, deliberate=True))
        assert pickup.depot_name(taken.depot_id) == "Guangzhou North"
    with pytest.raises(Conflict) as full:
        await pickup.run(service.reschedule, order.id, AGENT, at(later, 9), at(later, 11))
    assert full.value.detail == f"Guangzhou North is full on {later} (2/2): choose another window"
