"""The portal pages: the booking form (prefilled, known addresses, rule refusals with the
earliest window), the order page (timeline, SMS), the depot's page, zones uploaded as GeoJSON
or spreadsheets, reports, and the pages in Chinese."""

from __future__ import annotations

import io
import json
from datetime import date, timedelta
from zoneinfo import ZoneInfo

from litestar import Litestar
from litestar.testing import AsyncTestClient
from openpyxl import Workbook

from depotline.db import tenant_scope
from pickup import service
from pickup.models import Order, OrderStatus
from pickup.repository import OrderFilter, PickupRepository
from pickup.schemas import SettingsIn
from pickup.service import Actor
from telephony_gateway import service as gateway
from tests.pickup.conftest import (
    AGENT,
    SCIENCE_PARK,
    Pickup,
    depot_user,
    order_in,
    tomorrow,
)
from tests.telephony_gateway.conftest import Line
from tests.telephony_gateway.conftest import line as line
from tests.tenant.conftest import MakeClient, csrf_of, sign_in

NORTH = Actor(kind="sms", name="Guangzhou North (+8613800000101)")


def form(**fields: str) -> dict[str, str]:
    values = {
        "kind": "pickup",
        "sender_name": "陈先生",
        "sender_phone": "+8613800138000",
        "sender_address": "白云区云城西路888号",
        "sender_postal_code": "510410",
        "date": tomorrow().isoformat(),
        "start_time": "10:00",
        "end_time": "12:00",
        "parcel_0_count": "1",
        "parcel_0_weight_kg": "3.5",
        "payment": "prepaid",
        "language": "zh_Hans",
        "notify_sms": "on",
    }
    values.update(fields)
    return values


async def latest(pickup: Pickup) -> list[Order]:
    with tenant_scope(pickup.tenant_id):
        async with pickup.db.session() as session:
            return list(await PickupRepository(session).orders(OrderFilter()))


async def test_the_booking_form_is_prefilled_and_books_a_known_address(
    pickup: Pickup, client: AsyncTestClient[Litestar]
) -> None:
    await sign_in(client, "admin@swiftfreight.test")
    page = await client.get(
        "/pickup/orders/new",
        params=[
            ("sender_name", "王先生"),
            ("sender_phone", "+8613911112222"),
            ("address", "510410|白云区云城西路888号"),
            ("address", "510300|海珠区江南大道中100号"),
        ],
    )
    assert page.status_code == 200
    assert 'id="bf-sender_name" name="sender_name" type="text" value="王先生"' in page.text
    assert 'value="+8613911112222"' in page.text
    assert page.text.count('name="known_address"') == 3  # two known, and "another address"

    choice = json.dumps(
        {
            "label": "海珠区江南大道中100号",
            "address": "海珠区江南大道中100号",
            "postal_code": "510300",
        }
    )
    booked = await client.post(
        "/pickup/orders",
        data={
            **form(
                sender_name="王先生",
                sender_phone="+8613911112222",
                sender_address="",
                sender_postal_code="",
            ),
            "known_address": choice,
            "_csrf": await csrf_of(client, "/pickup/orders/new"),
        },
        follow_redirects=False,
    )
    assert booked.status_code in (302, 303), booked.text
    [order] = await latest(pickup)
    assert (order.sender_address, order.sender_postal_code) == ("海珠区江南大道中100号", "510300")
    detail = await client.get(booked.headers["location"])
    assert "Order booked" in detail.text and order.number in detail.text


async def test_a_refused_window_shows_the_rule_and_books_the_earliest_window_in_one_click(
    pickup: Pickup, client: AsyncTestClient[Litestar]
) -> None:
    await sign_in(client, "admin@swiftfreight.test")
    token = await csrf_of(client, "/pickup/orders/new")
    refused = await client.post(
        "/pickup/orders", data={**form(start_time="10:00", end_time="10:30"), "_csrf": token}
    )
    assert refused.status_code == 400
    assert "A window must be at least 60 minutes long." in refused.text
    assert 'id="bf-end_time" name="end_time" aria-invalid="true"' in refused.text
    day = tomorrow().isoformat()
    assert "The earliest window that works is" in refused.text
    button = 'name="use_earliest" value="'
    assert button in refused.text
    earliest = refused.text.split(button)[1].split('"')[0]

    booked = await client.post(
        "/pickup/orders",
        data={
            **form(start_time="10:00", end_time="10:30"),
            "_csrf": token,
            "use_earliest": earliest,
        },
        follow_redirects=False,
    )
    assert booked.status_code in (302, 303), booked.text
    [order] = await latest(pickup)
    start, end = earliest.split("|")
    local = ZoneInfo("Asia/Shanghai")
    assert order.window_start.astimezone(local).strftime("%Y-%m-%dT%H:%M") == start
    assert order.window_end.astimezone(local).strftime("%Y-%m-%dT%H:%M") == end
    assert day <= start[:10]


async def test_the_order_page_shows_the_timeline_and_the_orders_sms(
    pickup: Pickup, client: AsyncTestClient[Litestar], line: Line
) -> None:
    order = await pickup.dispatched()
    await pickup.run(service.depot_accepts, order.id, NORTH)
    await pickup.run(
        service.record_status, order.id, "driver_assigned", NORTH, driver_name="刘师傅"
    )
    with tenant_scope(pickup.tenant_id):
        async with pickup.db.session() as session:
            await gateway.send_sms(
                session,
                to="+8613800138000",
                body=f"您的订单 {order.number} 已安排司机",
                message_id="t-1",
            )
            await gateway.send_sms(session, to="+8613999999999", body="unrelated", message_id="t-2")
    await sign_in(client, "admin@swiftfreight.test")
    page = await client.get(f"/pickup/orders/{order.id}")
    assert page.status_code == 200
    timeline = page.text.split('data-testid="timeline"')[1].split("</table>")[0]
    for words in (
        "Booked",
        "Depot assigned",
        "Accepted",
        "Driver assigned",
        "Agent Sara",
        NORTH.name,
    ):
        assert words in timeline, words
    sms = page.text.split('data-testid="order-sms"')[1].split("</table>")[0]
    assert "已安排司机" in sms and "unrelated" not in sms
    assert "刘师傅" in page.text and order.confirmation_code in page.text


async def test_the_depot_page_lists_the_depots_jobs_and_takes_its_answers(
    pickup: Pickup, client: AsyncTestClient[Litestar], make_client: MakeClient
) -> None:
    await depot_user(
        pickup.db, pickup.tenant_id, pickup.depots["Guangzhou North"].id, "gzn@swiftfreight.test"
    )
    offer = await pickup.dispatched()
    other = await pickup.dispatched(order_in(sender_postal_code="510300", deliberate=True))
    browser = await make_client()
    await sign_in(browser, "gzn@swiftfreight.test")
    start = await browser.get("/pickup/", follow_redirects=False)
    assert start.headers["location"] == "/pickup/depot"
    board = await browser.get("/pickup/depot")
    offers = board.text.split('data-testid="offers"')[1].split("</table>")[0]
    assert offer.number in offers and other.number not in board.text
    assert (await browser.get(f"/pickup/orders/{other.id}")).status_code == 404

    token = await csrf_of(browser, "/pickup/depot")
    accepted = await browser.post(
        f"/pickup/orders/{offer.id}/accept",
        data={"_csrf": token, "next": "/pickup/depot"},
        follow_redirects=False,
    )
    assert accepted.headers["location"] == "/pickup/depot"
    await browser.post(
        f"/pickup/orders/{offer.id}/status",
        data={"_csrf": token, "status": "attempt_failed", "reason": ""},
    )
    board = await browser.get("/pickup/depot")
    assert "Say why the attempt failed" in board.text  # the rule, shown; nothing changed
    assert (await pickup.order(offer.id)).status == OrderStatus.DEPOT_ASSIGNED
    await browser.post(
        f"/pickup/orders/{offer.id}/status",
        data={"_csrf": token, "status": "driver_assigned", "driver_name": "刘师傅"},
    )
    assert (await pickup.order(offer.id)).driver_name == "刘师傅"
    jobs = (await browser.get("/pickup/depot")).text.split('data-testid="jobs"')[1]
    assert offer.number in jobs and "刘师傅" in jobs


async def test_zones_are_uploaded_as_geojson_or_a_spreadsheet_of_postal_codes(
    pickup: Pickup, client: AsyncTestClient[Litestar]
) -> None:
    await sign_in(client, "admin@swiftfreight.test")
    token = await csrf_of(client, "/pickup/zones")
    depot = str(pickup.depots["Shenzhen"].id)
    feature = {
        "type": "FeatureCollection",
        "features": [{"type": "Feature", "properties": {}, "geometry": SCIENCE_PARK}],
    }
    uploaded = await client.post(
        "/pickup/zones",
        data={"_csrf": token, "name": "Park (upload)", "depot_id": depot, "priority": "30"},
        files={"file": ("park.geojson", json.dumps(feature).encode(), "application/geo+json")},
        follow_redirects=False,
    )
    assert uploaded.status_code in (302, 303)
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    for code in ("Postal code", "518000", "518xxx"):
        sheet.append([code])
    buffer = io.BytesIO()
    book.save(buffer)
    await client.post(
        "/pickup/zones",
        data={"_csrf": token, "name": "Shenzhen list", "depot_id": depot},
        files={"file": ("codes.xlsx", buffer.getvalue(), "application/vnd.ms-excel")},
    )
    broken = {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}
    refused = await client.post(
        "/pickup/zones",
        data={"_csrf": token, "name": "Bow tie", "depot_id": depot},
        files={"file": ("bow.json", json.dumps(broken).encode(), "application/json")},
    )
    assert "crosses itself" in refused.text
    with tenant_scope(pickup.tenant_id):
        async with pickup.db.session() as session:
            zones = {z.name: z for z in await PickupRepository(session).zones()}
    assert zones["Park (upload)"].polygon is not None and zones["Park (upload)"].priority == 30
    assert (zones["Shenzhen list"].postal_codes, zones["Shenzhen list"].postal_prefixes) == (
        ["518000"],
        ["518"],
    )
    assert "Bow tie" not in zones


async def test_reports_count_bookings_acceptance_and_failures(
    pickup: Pickup, client: AsyncTestClient[Litestar]
) -> None:
    await pickup.run(service.save_rules, SettingsIn(order_prefix="SF", max_attempts=1))
    accepted = await pickup.dispatched()
    await pickup.run(service.depot_accepts, accepted.id, NORTH)
    await pickup.run(service.record_status, accepted.id, "picked_up", NORTH)
    failed = await pickup.dispatched(order_in(deliberate=True))
    await pickup.run(service.record_status, failed.id, "attempt_failed", NORTH, "closed")
    rejected = await pickup.dispatched(order_in(deliberate=True, sender_postal_code="510300"))
    await pickup.run(service.depot_rejects, rejected.id, NORTH, "full")

    today = date.today()
    found = await pickup.run(service.report, today - timedelta(days=1), today + timedelta(days=2))
    assert sum(n for _, n in found.days) == 3
    rows = {r.name: r for r in found.depots}
    north = rows["Guangzhou North"]
    assert (north.orders, north.completed, north.failed, north.failed_attempts) == (2, 1, 1, 1)
    assert (north.accepted, north.acceptance_rate, north.failure_rate) == (2, 1.0, 0.5)
    south = rows["Guangzhou South"]
    assert (south.offers, south.rejected, south.acceptance_rate) == (1, 1, 0.0)
    assert found.total.orders == 3

    await sign_in(client, "admin@swiftfreight.test")
    page = await client.get("/pickup/reports")
    assert page.status_code == 200 and "Guangzhou North" in page.text and "50%" in page.text
    api = (await client.get("/api/v1/pickup/reports")).json()
    assert api["total"]["orders"] == 3


async def test_pickup_pages_speak_chinese(
    pickup: Pickup, client: AsyncTestClient[Litestar]
) -> None:
    order = await pickup.dispatched()
    await sign_in(client, "admin@swiftfreight.test")
    for path in (
        "/pickup/orders",
        "/pickup/orders/new",
        f"/pickup/orders/{order.id}",
        "/pickup/depots",
        "/pickup/zones",
        "/pickup/exceptions",
        "/pickup/reports",
        "/pickup/settings",
        "/pickup/depot",
    ):
        simplified = await client.get(path, params={"lang": "zh_Hans"})
        assert simplified.status_code == 200, path
    orders = (await client.get("/pickup/orders", params={"lang": "zh_Hans"})).text
    assert "已分配网点" in orders and "取件" in orders
    traditional = (await client.get("/pickup/orders/new", params={"lang": "zh_Hant"})).text
    assert "預約" in traditional


async def test_a_refusal_reads_in_the_readers_language(
    pickup: Pickup, client: AsyncTestClient[Litestar]
) -> None:
    order = await pickup.dispatched()
    await pickup.run(service.request_cancel, order.id, AGENT, "customer changed plans")
    await sign_in(client, "admin@swiftfreight.test")
    page = f"/pickup/orders/{order.id}"
    day = tomorrow() + timedelta(days=1)
    move = {"date": day.isoformat(), "start_time": "10:00", "end_time": "12:00"}
    for language, expected in (
        ("zh_Hans", f"{order.number} 当前为已取消：时间窗已不能更改"),
        ("zh_Hant", f"{order.number} 目前為已取消：時間窗已不能更改"),
        ("en", f"{order.number} is cancelled: its window can no longer move"),
    ):
        token = await csrf_of(client, page)
        await client.post(
            f"{page}/reschedule", data={"_csrf": token, **move}, follow_redirects=False
        )
        shown = (await client.get(page, params={"lang": language})).text
        assert expected in shown, language
    # The API says it in English, naming the field.
    api = await client.post(
        f"/api/v1/pickup/orders/{order.id}/reschedule",
        json={"window_start": f"{day}T10:00:00", "window_end": f"{day}T12:00:00"},
        headers={"x-csrf-token": await csrf_of(client, page)},
    )
    assert api.status_code == 409
    assert api.json()["detail"] == f"{order.number} is cancelled: its window can no longer move"
