"""Booking the same pickup twice: the service refuses with the open order, the booking page
warns with a link to it, the API answers 409 with it, and a deliberate booking goes through."""

from __future__ import annotations

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from pickup import service
from pickup.service import DuplicateBooking
from tests.pickup.conftest import AGENT, Pickup, at, count_orders, order_in, tomorrow
from tests.tenant.conftest import csrf_header, csrf_of, sign_in


async def test_the_same_pickup_booked_again_is_refused_with_the_open_order(pickup: Pickup) -> None:
    first = await pickup.book()
    day = tomorrow()
    # Same phone, the same address written differently, an overlapping window.
    again = order_in(
        sender_address="白云区 云城西路 888号", window_start=at(day, 11), window_end=at(day, 13)
    )
    with pytest.raises(DuplicateBooking) as refused:
        await pickup.book(again)
    assert refused.value.existing.id == first.id and refused.value.field == "deliberate"

    # Not the same: a later window, another address, or a closed order.
    assert await pickup.book(order_in(window_start=at(day, 14), window_end=at(day, 16)))
    assert await pickup.book(order_in(sender_address="白云区机场路1号"))
    await pickup.run(service.request_cancel, first.id, AGENT)
    replacement = await pickup.book(again)
    # Deliberately the same again: booked, and the timeline says it was deliberate.
    deliberate = await pickup.book(order_in(deliberate=True))
    [entry] = await pickup.timeline(deliberate.id)
    assert entry.detail == {"deliberate_despite": [replacement.number]}


async def test_the_booking_page_warns_with_the_existing_order_and_books_when_deliberate(
    pickup: Pickup, client: AsyncTestClient[Litestar]
) -> None:
    first = await pickup.book()
    await sign_in(client, "admin@swiftfreight.test")
    form = {
        "_csrf": await csrf_of(client, "/pickup/orders/new"),
        "kind": "pickup",
        "sender_name": "陈先生",
        "sender_phone": "13800138000",  # as the caller says it: stored in E.164
        "sender_address": "白云区云城西路888号",
        "sender_postal_code": "510410",
        "date": tomorrow().isoformat(),
        "start_time": "10:30",
        "end_time": "11:30",
        "parcel_0_count": "1",
        "parcel_0_weight_kg": "2",
        "payment": "prepaid",
        "language": "zh_Hans",
    }
    warned = await client.post("/pickup/orders", data=form)
    assert warned.status_code == 409
    assert f'href="/pickup/orders/{first.id}" data-testid="duplicate-link">{first.number}' in (
        warned.text
    )
    assert 'name="deliberate"' in warned.text
    assert 'value="白云区云城西路888号"' in warned.text  # what the agent typed is kept
    assert await count_orders(pickup) == 1

    booked = await client.post(
        "/pickup/orders", data={**form, "deliberate": "on"}, follow_redirects=False
    )
    assert booked.status_code in (302, 303), booked.text
    assert await count_orders(pickup) == 2


async def test_the_api_answers_409_with_the_existing_order_unless_deliberate(
    pickup: Pickup, client: AsyncTestClient[Litestar]
) -> None:
    first = await pickup.book()
    await sign_in(client, "admin@swiftfreight.test")
    headers = await csrf_header(client)
    body = order_in().model_dump(mode="json")
    conflict = await client.post("/api/v1/pickup/orders", json=body, headers=headers)
    assert conflict.status_code == 409
    problem = conflict.json()
    assert problem["existing_order"]["id"] == str(first.id)
    assert problem["existing_order"]["number"] == first.number
    assert problem["errors"] == [{"field": "deliberate", "message": problem["detail"]}]

    created = await client.post(
        "/api/v1/pickup/orders", json={**body, "deliberate": True}, headers=headers
    )
    assert created.status_code == 201 and created.json()["number"] != first.number
