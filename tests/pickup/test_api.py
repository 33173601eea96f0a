"""The JSON API: idempotent creates (Idempotency-Key), bad input answered 4xx naming the field,
rule refusals with the earliest window, depots answering and reporting, and depot users who
see their own depot's orders only."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from litestar import Litestar
from litestar.testing import AsyncTestClient

from depotline.db import tenant_scope
from pickup.models import OrderStatus
from tenant import service as tenancy
from tests.pickup.conftest import Pickup, at, count_orders, depot_user, order_in, tomorrow
from tests.tenant.conftest import MakeClient, csrf_header, csrf_of, sign_in
from tests.tenant.test_seats import principal


async def api_key(pickup: Pickup, role: str = "tenant_admin") -> dict[str, str]:
    admin = await principal(pickup.db, "admin@swiftfreight.test", pickup.tenant_id)
    with tenant_scope(pickup.tenant_id):
        async with pickup.db.session() as session:
            _, raw = await tenancy.create_api_key(session, admin, "shop", role, ["read", "write"])
    return {"authorization": f"Bearer {raw}"}


def body(**fields: Any) -> dict[str, Any]:
    return order_in(**fields).model_dump(mode="json")


async def test_the_same_idempotency_key_books_once_and_answers_the_same(
    pickup: Pickup, client: AsyncTestClient[Litestar]
) -> None:
    bearer = await api_key(pickup)
    key = {**bearer, "Idempotency-Key": "shop-order-4711"}
    first = await client.post("/api/v1/pickup/orders", json=body(), headers=key)
    again = await client.post("/api/v1/pickup/orders", json=body(), headers=key)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["number"] == first.json()["number"]
    assert await count_orders(pickup) == 1

    # The same key for another booking is a client's mistake, said so, and changes nothing.
    other = await client.post(
        "/api/v1/pickup/orders", json=body(sender_postal_code="510300"), headers=key
    )
    assert other.status_code == 422
    assert other.json()["errors"][0]["field"] == "Idempotency-Key"
    assert await count_orders(pickup) == 1


async def test_retries_racing_with_one_key_make_one_order(
    pickup: Pickup, client: AsyncTestClient[Litestar], make_client: MakeClient
) -> None:
    bearer = await api_key(pickup)
    headers = {**bearer, "Idempotency-Key": "race-1"}
    clients = [await make_client() for _ in range(4)]

    async def post(browser: httpx.AsyncClient) -> httpx.Response:
        return await browser.post("/api/v1/pickup/orders", json=body(), headers=headers)

    answers = await asyncio.gather(*(post(c) for c in clients))
    assert {a.status_code for a in answers} == {201}
    assert len({a.json()["id"] for a in answers}) == 1
    assert await count_orders(pickup) == 1


async def test_bad_input_is_a_4xx_naming_the_field_never_a_500(
    pickup: Pickup, client: AsyncTestClient[Litestar]
) -> None:
    bearer = await api_key(pickup)
    cases = [
        (body(sender_phone="not a phone"), 400, "sender.phone"),
        ({**body(), "parcels": []}, 400, "parcels"),
        ({**body(), "parcels": [{"weight_kg": -1}]}, 400, "parcels.0.weight_kg"),
        ({**body(), "window_start": "tomorrow"}, 400, "window_start"),
        ({**body(), "kind": "teleport"}, 400, "kind"),
    ]
    for data, status, field in cases:
        response = await client.post("/api/v1/pickup/orders", json=data, headers=bearer)
        assert response.status_code == status, (field, response.text)
        fields = [e["field"] for e in response.json()["errors"]]
        assert any(field in str(f) for f in fields), (field, response.json())
    assert await count_orders(pickup) == 0


async def test_a_refused_window_comes_with_the_rule_and_the_earliest_window(
    pickup: Pickup, client: AsyncTestClient[Litestar]
) -> None:
    bearer = await api_key(pickup)
    day = tomorrow()
    short = body(window_start=at(day, 10).isoformat(), window_end=at(day, 10, 30).isoformat())
    response = await client.post("/api/v1/pickup/orders", json=short, headers=bearer)
    assert response.status_code == 400
    problem = response.json()
    assert problem["rule"] == "min_window"
    assert problem["errors"][0]["field"] == "window_end"
    earliest = problem["earliest_window"]
    assert earliest["timezone"] == "Asia/Shanghai"
    # Booking the suggested window works.
    fixed = {
        **short,
        "window_start": earliest["window_start"],
        "window_end": earliest["window_end"],
    }
    assert (
        await client.post("/api/v1/pickup/orders", json=fixed, headers=bearer)
    ).status_code == 201


async def test_a_depot_user_sees_and_answers_only_its_depots_orders(
    pickup: Pickup, client: AsyncTestClient[Litestar], make_client: MakeClient
) -> None:
    north = pickup.depots["Guangzhou North"]
    await depot_user(pickup.db, pickup.tenant_id, north.id, "gzn@swiftfreight.test")
    mine = await pickup.dispatched()
    # Guangzhou South serves 5103xx.
    theirs = await pickup.dispatched(order_in(sender_postal_code="510300", deliberate=True))

    browser = await make_client()
    await sign_in(browser, "gzn@swiftfreight.test")
    headers = await csrf_header(browser)
    listed = await browser.get("/api/v1/pickup/orders")
    assert [o["number"] for o in listed.json()] == [mine.number]
    assert (await browser.get(f"/api/v1/pickup/orders/{theirs.id}")).status_code == 404
    # Another depot's order does not exist for this depot: no answering it either.
    refused = await browser.post(f"/api/v1/pickup/orders/{theirs.id}/accept", headers=headers)
    assert refused.status_code == 404

    accepted = await browser.post(f"/api/v1/pickup/orders/{mine.id}/accept", headers=headers)
    assert accepted.status_code == 200 and accepted.json()["depot_accepted_at"]
    moved = await browser.post(
        f"/api/v1/pickup/orders/{mine.id}/status",
        json={"status": "driver_assigned", "driver_name": "刘师傅"},
        headers=headers,
    )
    assert moved.status_code == 200
    assert (moved.json()["status"], moved.json()["driver_name"]) == ("driver_assigned", "刘师傅")
    assert moved.json()["timeline"][-1]["actor_kind"] == "depot"
    illegal = await browser.post(
        f"/api/v1/pickup/orders/{mine.id}/status", json={"status": "delivered"}, headers=headers
    )
    assert illegal.status_code == 409 and illegal.json()["errors"][0]["field"] == "status"
    # Depot users do not book or cancel, and staff pages are not theirs.
    assert (
        await browser.post("/api/v1/pickup/orders", json=body(), headers=headers)
    ).status_code == 403
    assert (await browser.get("/pickup/orders")).status_code == 403


async def test_staff_answer_and_cancel_for_a_depot_through_the_api(
    pickup: Pickup, client: AsyncTestClient[Litestar]
) -> None:
    await sign_in(client, "admin@swiftfreight.test")
    headers = await csrf_header(client)
    order = await pickup.dispatched()
    rejected = await client.post(
        f"/api/v1/pickup/orders/{order.id}/reject",
        json={"reason": "phoned in: no van"},
        headers=headers,
    )
    assert rejected.status_code == 200
    assert rejected.json()["depot_id"] == str(pickup.depots["Guangzhou South"].id)
    await client.post(
        f"/api/v1/pickup/orders/{order.id}/status", json={"status": "picked_up"}, headers=headers
    )
    refused = await client.post(
        f"/api/v1/pickup/orders/{order.id}/cancel", json={"reason": "too late?"}, headers=headers
    )
    assert refused.status_code == 409 and "has been picked up" in refused.json()["detail"]
    timeline = (await client.get(f"/api/v1/pickup/orders/{order.id}")).json()["timeline"]
    assert timeline[-1]["action"] == "cancel_refused"
    assert (await pickup.order(order.id)).status == OrderStatus.PICKED_UP


async def test_a_depot_key_works_for_its_linked_depot_only(
    pickup: Pickup, client: AsyncTestClient[Litestar]
) -> None:
    north, south = pickup.depots["Guangzhou North"], pickup.depots["Guangzhou South"]
    depot_key = await api_key(pickup, role="depot_user")
    mine = await pickup.dispatched()
    theirs = await pickup.dispatched(order_in(sender_postal_code="510300", deliberate=True))

    # Not linked to any depot yet: it sees nothing (never every depot's orders).
    assert (await client.get("/api/v1/pickup/orders", headers=depot_key)).json() == []
    assert (
        await client.get(f"/api/v1/pickup/orders/{mine.id}", headers=depot_key)
    ).status_code == 404

    # The tenant admin links it to North on the depot page.
    await sign_in(client, "admin@swiftfreight.test")
    page = (await client.get(f"/pickup/depots/{north.id}")).text
    assert "API keys for this depot" in page and 'name="api_key_id"' in page
    token = await csrf_of(client, f"/pickup/depots/{north.id}")
    option = page.split('name="api_key_id"><option value="', 1)[1].split('"', 1)[0]
    linked = await client.post(
        f"/pickup/depots/{north.id}/keys",
        data={"_csrf": token, "api_key_id": option},
        follow_redirects=False,
    )
    assert linked.status_code in (302, 303)
    # Anything but a depot key of this tenant is refused.
    staff_key = await api_key(pickup)
    refused = await client.post(
        f"/pickup/depots/{south.id}/keys",
        data={"_csrf": token, "api_key_id": "not-a-key"},
        follow_redirects=True,
    )
    assert "Choose an API key with the depot user role" in refused.text
    client.cookies.clear()

    listed = await client.get("/api/v1/pickup/orders", headers=depot_key)
    assert [o["number"] for o in listed.json()] == [mine.number]
    assert (
        await client.get(f"/api/v1/pickup/orders/{theirs.id}", headers=depot_key)
    ).status_code == 404
    refused_answer = await client.post(
        f"/api/v1/pickup/orders/{theirs.id}/accept", headers=depot_key
    )
    assert refused_answer.status_code == 404
    accepted = await client.post(f"/api/v1/pickup/orders/{mine.id}/accept", headers=depot_key)
    assert accepted.status_code == 200 and accepted.json()["depot_accepted_at"]
    assert accepted.json()["timeline"][-1]["actor_kind"] == "depot"
    # A staff key still sees every depot's orders.
    everything = await client.get("/api/v1/pickup/orders", headers=staff_key)
    assert {o["number"] for o in everything.json()} == {mine.number, theirs.number}
