"""The order lifecycle: allowed transitions only, every change stamped with who made it,
failed attempts until the tenant's limit, and the cancel rules."""

from __future__ import annotations

import itertools

import pytest

from depotline.errors import Conflict, InvalidInput
from pickup import service
from pickup.models import OrderKind, OrderStatus
from pickup.schemas import PartyIn, SettingsIn
from pickup.service import Actor
from tests.pickup.conftest import AGENT, Pickup, at, order_in, tomorrow

NORTH = Actor(kind="sms", name="Guangzhou North (+8613800000101)")
RECEIVER = PartyIn(
    name="王小姐", phone="+8613700001111", address="南山区科技南路18号", postal_code="518057"
)


async def test_a_pickup_and_delivery_goes_all_the_way_with_every_change_stamped(
    pickup: Pickup,
) -> None:
    order = await pickup.dispatched(
        order_in(kind=OrderKind.PICKUP_AND_DELIVERY, receiver=RECEIVER, payment="cash_on_delivery")
    )
    await pickup.run(service.depot_accepts, order.id, NORTH)
    await pickup.run(service.depot_accepts, order.id, NORTH)  # an SMS sent twice: still one yes
    await pickup.run(
        service.record_status, order.id, "driver_assigned", NORTH, driver_name="刘师傅"
    )
    for status in ("en_route", "picked_up", "out_for_delivery", "delivered"):
        order = await pickup.run(service.record_status, order.id, status, NORTH)
    assert order.status == OrderStatus.DELIVERED and order.driver_name == "刘师傅"
    assert order.depot_accepted_at is not None and order.picked_up_at is not None

    entries = await pickup.timeline(order.id)
    assert [(e.action, e.to_status) for e in entries] == [
        ("status", "booked"),
        ("status", "depot_assigned"),
        ("accepted", None),
        ("status", "driver_assigned"),
        ("status", "en_route"),
        ("status", "picked_up"),
        ("status", "out_for_delivery"),
        ("status", "delivered"),
    ]
    assert [e.actor_name for e in entries] == ["Agent Sara", "dispatch"] + [NORTH.name] * 6
    assert all(a.at <= b.at for a, b in itertools.pairwise(entries))
    changes = await pickup.events(service.STATUS_CHANGED)
    assert [(c["from"], c["to"]) for c in changes][-2:] == [
        ("picked_up", "out_for_delivery"),
        ("out_for_delivery", "delivered"),
    ]
    assert changes[-1]["by_name"] == NORTH.name and changes[-1]["driver_name"] == "刘师傅"


@pytest.mark.parametrize(
    ("kind", "path", "illegal", "message"),
    [
        (OrderKind.PICKUP, [], "delivered", "is depot assigned: it cannot become delivered"),
        (OrderKind.PICKUP, ["picked_up"], "out_for_delivery", "is picked up: it cannot become"),
        (OrderKind.PICKUP, ["picked_up"], "en_route", "is picked up: it cannot become en route"),
        (OrderKind.DELIVERY, [], "en_route", "cannot become en route"),
        (
            OrderKind.PICKUP_AND_DELIVERY,
            ["driver_assigned"],
            "delivered",
            "cannot become delivered",
        ),
    ],
)
async def test_the_lifecycle_refuses_changes_it_does_not_allow(
    pickup: Pickup, kind: OrderKind, path: list[str], illegal: str, message: str
) -> None:
    data = order_in(kind=kind, receiver=RECEIVER)
    if kind == OrderKind.DELIVERY:
        data = order_in(kind=kind, receiver=RECEIVER, sender_address="", sender_postal_code="")
    order = await pickup.dispatched(data)
    for status in path:
        await pickup.run(service.record_status, order.id, status, NORTH)
    before = await pickup.order(order.id)
    with pytest.raises(Conflict, match=message) as refused:
        await pickup.run(service.record_status, order.id, illegal, NORTH)
    assert refused.value.field == "status"
    after = await pickup.order(order.id)
    assert (after.status, after.updated_at) == (before.status, before.updated_at)


async def test_statuses_that_belong_to_dispatch_or_cancelling_are_not_reported(
    pickup: Pickup,
) -> None:
    order = await pickup.dispatched()
    for status, error in (
        ("booked", InvalidInput),
        ("cancelled", Conflict),
        ("nonsense", InvalidInput),
    ):
        with pytest.raises(error) as refused:
            await pickup.run(service.record_status, order.id, status, NORTH)
        assert refused.value.field == "status"


async def test_failed_attempts_are_rescheduled_until_the_limit_then_fail_for_good(
    pickup: Pickup,
) -> None:
    await pickup.run(service.save_rules, SettingsIn(order_prefix="SF", max_attempts=2))
    order = await pickup.dispatched()
    await pickup.run(service.record_status, order.id, "driver_assigned", NORTH)
    with pytest.raises(InvalidInput, match="Say why") as no_reason:
        await pickup.run(service.record_status, order.id, "attempt_failed", NORTH)
    assert no_reason.value.field == "reason"

    order = await pickup.run(
        service.record_status, order.id, "attempt_failed", NORTH, "nobody home"
    )
    assert (order.status, order.attempts) == (OrderStatus.ATTEMPT_FAILED, 1)
    day = tomorrow()
    order = await pickup.run(
        service.reschedule, order.id, AGENT, at(day, 15), at(day, 17), "customer asked"
    )
    assert order.status == OrderStatus.RESCHEDULED
    await pickup.run(service.record_status, order.id, "en_route", NORTH)
    order = await pickup.run(service.record_status, order.id, "attempt_failed", NORTH, "gate shut")
    assert (order.status, order.attempts) == (OrderStatus.FAILED, 2)

    *_, second, final = await pickup.timeline(order.id)
    assert (second.to_status, second.attempt, second.reason) == ("attempt_failed", 2, "gate shut")
    assert (final.to_status, final.actor_name) == ("failed", "rule: maximum attempts")
    assert final.reason == "2 attempts failed; the limit is 2"
    with pytest.raises(Conflict):
        await pickup.run(service.reschedule, order.id, AGENT, at(day, 15), at(day, 17))


async def test_cancel_rules(pickup: Pickup) -> None:
    # Nobody on the way yet: cancelled at once.
    waiting = await pickup.dispatched()
    outcome = await pickup.run(service.request_cancel, waiting.id, AGENT, "changed my mind")
    assert (outcome.outcome, outcome.order.status) == ("cancelled", OrderStatus.CANCELLED)
    assert (await pickup.run(service.request_cancel, waiting.id, AGENT)).outcome == "already"

    # A driver is on the way: the depot is asked, and confirms.
    driving = await pickup.dispatched(order_in(deliberate=True))
    await pickup.run(service.record_status, driving.id, "en_route", NORTH)
    outcome = await pickup.run(service.request_cancel, driving.id, AGENT, "not ready")
    assert (outcome.outcome, outcome.order.status) == ("requested", OrderStatus.CANCEL_REQUESTED)
    confirmed = await pickup.run(service.record_status, driving.id, "cancelled", NORTH)
    assert confirmed.status == OrderStatus.CANCELLED

    # ...or the driver had the parcel already.
    late = await pickup.dispatched(order_in(deliberate=True, sender_postal_code="510300"))
    await pickup.run(service.record_status, late.id, "driver_assigned", NORTH)
    await pickup.run(service.request_cancel, late.id, AGENT)
    assert (await pickup.run(service.record_status, late.id, "picked_up", NORTH)).status == (
        OrderStatus.PICKED_UP
    )

    # Picked up: refused, and the refusal is on the record.
    outcome = await pickup.run(service.request_cancel, late.id, AGENT, "please stop")
    assert outcome.outcome == "refused"
    assert outcome.reason == f"{late.number} cannot be cancelled: the parcel has been picked up"
    assert (await pickup.order(late.id)).status == OrderStatus.PICKED_UP
    *_, refusal = await pickup.timeline(late.id)
    assert refusal.action == "cancel_refused" and "please stop" in (refusal.reason or "")
