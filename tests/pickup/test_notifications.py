"""Depot and customer SMS on the simulated network: the offer to the depot, the depot's answers
by SMS (however typed), a rejection going to the next depot, an unknown reply answered with the
codes, the reminder on silence and then the exceptions list, SMS never doubled, and the
tenant's own texts with their preview (GSM-7 / UCS-2 segments)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlmodel import select

from depotline.db import tenant_scope
from depotline.errors import InvalidInput
from depotline.outbox import OutboxEvent
from pickup import notifications, service
from pickup.models import Order, OrderStatus
from pickup.notifications import parse_reply, preview, tracking_url
from tests.pickup.conftest import AGENT, SHANGHAI, Pickup, at, order_in
from tests.pickup.notify_kit import CUSTOMER, NORTH, SOUTH, Network, line, network
from tests.telephony_gateway.conftest import Drain
from tests.tenant.conftest import csrf_of, sign_in

__all__ = ["line", "network"]  # fixtures
PUBLIC = "http://127.0.0.1:8000"  # the test settings' public URL


def link(order: Order) -> str:
    return tracking_url(PUBLIC, order.tracking_token)


async def booked(pickup: Pickup, drain: Drain, **fields: object) -> Order:
    """Booked by an agent and dispatched by the worker (Guangzhou North for 510410)."""
    order = await pickup.book(order_in(**fields))
    await drain()
    return await pickup.order(order.id)


# -- the offer and the customer's first SMS -------------------------------------------------------
async def test_booking_texts_the_depot_and_the_customer_each_in_their_language(
    pickup: Pickup, network: Network, drain: Drain
) -> None:
    order = await booked(pickup, drain, language="en")
    assert order.status == OrderStatus.DEPOT_ASSIGNED
    assert pickup.depot_name(order.depot_id) == "Guangzhou North"

    # The depot (Chinese, its language): number, window, address, parcels, and how to answer.
    [offer] = await network.inbox(NORTH)
    window = notifications.window_text(order, "zh_Hans")
    assert window.endswith("日 10:00-12:00")
    assert offer.startswith(
        f"新取件单{order.number}（编号{order.seq}）：{window}，白云区云城西路888号 510410。"
        "2件，3公斤。"
    )
    assert offer.endswith(f"回复 Y {order.seq} 接单，N {order.seq} 原因 拒单。")
    # The customer (English, theirs): the code and the tracking link, nothing from the depot yet.
    [first] = await network.inbox(CUSTOMER)
    assert first == (
        f"Pickup {order.number} is booked for {notifications.window_text(order, 'en')}. "
        f"Your code: {order.confirmation_code}. Track it: {link(order)}"
    )
    assert notifications.window_text(order, "en").endswith(" 10:00-12:00")
    # Staff see both on the order's timeline; the depot's first (dispatch queues it itself).
    notes = [e.reason for e in await pickup.timeline(order.id) if e.action == "note"]
    assert notes == ["SMS to Guangzhou North queued", "SMS to the customer (booked) queued"]


# -- depots answer by SMS -------------------------------------------------------------------------
def test_depot_replies_are_read_however_they_are_typed() -> None:
    assert parse_reply("Y 123") == notifications.DepotReply("Y", 123, "")
    assert parse_reply("ｙ　１２３") == notifications.DepotReply("Y", 123, "")  # full width
    assert parse_reply("  y123 ") == notifications.DepotReply("Y", 123, "")
    assert parse_reply("n 123   van  broken") == notifications.DepotReply("N", 123, "van broken")
    assert parse_reply("Ｎ １２３，车坏了") == notifications.DepotReply("N", 123, "车坏了")
    assert parse_reply("D 7 Wang Wei") == notifications.DepotReply("D", 7, "Wang Wei")
    assert parse_reply("ok SF-2026-000007") == notifications.DepotReply("OK", 7, "")
    assert parse_reply("F 7: nobody home") == notifications.DepotReply("F", 7, "nobody home")
    assert parse_reply("yes 7") == notifications.DepotReply("Y", 7, "")
    for nonsense in ("hello", "Y", "123", "Y 12a", "X 123", "好的", ""):
        assert parse_reply(nonsense) is None, nonsense


async def test_a_depot_runs_an_order_by_sms_and_the_customer_hears_each_step(
    pickup: Pickup, network: Network, drain: Drain
) -> None:
    order = await booked(pickup, drain)  # a Chinese-speaking customer
    ref = order.seq

    await network.text(NORTH, f"ｙ　{ref}")  # full width, as a Chinese keyboard types it
    await drain()
    order = await pickup.order(order.id)
    assert order.depot_accepted_at is not None
    accepted = (await network.inbox(NORTH))[-1]
    assert accepted.startswith(f"已接单{order.number}。进度请回复：D {ref} 司机姓名")
    assert (await network.inbox(CUSTOMER))[-1] == (
        f"Guangzhou North将于{notifications.window_text(order, 'zh_Hans')}处理您的订单"
        f"{order.number}。查询：{link(order)}"
    )

    await network.text(NORTH, f"d {ref}  王师傅")
    await drain()
    assert (await pickup.order(order.id)).driver_name == "王师傅"
    assert (await network.inbox(NORTH))[-1] == f"{order.number}：已派司机 (王师傅)，已记录。"
    assert (await network.inbox(CUSTOMER))[-1].startswith(f"司机王师傅已接单{order.number}（")

    await network.text(NORTH, f"P {ref}")
    await drain()
    assert (await pickup.order(order.id)).status == OrderStatus.PICKED_UP
    assert (await network.inbox(CUSTOMER))[-1] == f"{order.number}已取件。查询：{link(order)}"

    # A pickup-only order ends at "picked up": a later "delivered" is answered, not applied.
    await network.text(NORTH, f"OK {ref}")
    await drain()
    assert (await pickup.order(order.id)).status == OrderStatus.PICKED_UP
    assert (await network.inbox(NORTH))[-1] == f"{order.number}目前：已取件，无法按此回复处理。"
    assert len(await network.inbox(CUSTOMER)) == 4  # booked, depot, driver, picked up


async def test_a_failed_attempt_by_sms_tells_the_customer_why(
    pickup: Pickup, network: Network, drain: Drain
) -> None:
    order = await booked(pickup, drain, language="zh_Hant")
    await network.text(NORTH, f"F {order.seq}")  # no reason: the depot is asked for one
    await drain()
    assert (await network.inbox(NORTH))[-1] == f"请说明原因，例如：F {order.seq} 无人在家"
    assert (await pickup.order(order.id)).status == OrderStatus.DEPOT_ASSIGNED

    await network.text(NORTH, f"F {order.seq} 客户不在家")
    await drain()
    order = await pickup.order(order.id)
    assert order.status == OrderStatus.ATTEMPT_FAILED and order.attempts == 1
    # Reporting progress is a yes to the offer: the customer gets the news (in Traditional
    # Chinese), not the yes it has overtaken.
    booking, failed = await network.inbox(CUSTOMER)
    assert booking.startswith("您的收件預約")
    assert failed == (
        f"{order.number}上門未成功：客户不在家。我們會與您重新預約。查詢：{link(order)}"
    )


async def test_a_rejection_by_sms_goes_to_the_next_depot(
    pickup: Pickup, network: Network, drain: Drain
) -> None:
    order = await booked(pickup, drain)
    await network.text(NORTH, f"N {order.seq} 车坏了")
    await drain()
    order = await pickup.order(order.id)
    assert pickup.depot_name(order.depot_id) == "Guangzhou South"
    assert (await network.inbox(NORTH))[-1] == f"已拒单{order.number}，我们将转给其他网点。"
    [offer] = await network.inbox(SOUTH)
    assert f"{order.number}（编号{order.seq}）" in offer
    assert len(await network.inbox(CUSTOMER)) == 1  # the rejection is not the customer's news

    await network.text(SOUTH, f"Y {order.seq}")
    await drain()
    assert (await network.inbox(CUSTOMER))[-1].startswith("Guangzhou South将于")
    # The depot that gave it back has nothing to answer any more.
    await network.text(NORTH, f"Y {order.seq}")
    await drain()
    assert (await network.inbox(NORTH))[-1] == (
        f"您的网点没有编号为{order.seq}的订单，请核对短信中的编号。"
    )


async def test_an_unknown_reply_gets_the_codes_and_strangers_get_nothing(
    pickup: Pickup, network: Network, drain: Drain
) -> None:
    order = await booked(pickup, drain)
    await network.text(NORTH, "收到，谢谢", message_id="in-1")
    await network.text(NORTH, "收到，谢谢", message_id="in-1")  # the carrier delivers it twice
    await network.text(NORTH, "Y 999999")
    await drain()
    _offer, *answers = await network.inbox(NORTH)
    # The worker takes both texts at once, so their answers may leave in either order.
    help_text, unknown = sorted(answers, key=lambda text: not text.startswith("未能识别"))
    assert len(answers) == 2
    assert help_text.startswith("未能识别您的回复。请回复：Y 123 接单，N 123 原因 拒单")
    assert unknown == "您的网点没有编号为999999的订单，请核对短信中的编号。"
    assert (await pickup.order(order.id)).depot_accepted_at is None

    # A customer's text is not a depot's answer, even when it looks like one.
    await network.text(CUSTOMER, f"Y {order.seq}")
    await drain()
    assert (await pickup.order(order.id)).depot_accepted_at is None
    assert len(await network.inbox(CUSTOMER)) == 1  # booked only: no help text for customers


# -- silence --------------------------------------------------------------------------------------
async def test_silence_brings_a_reminder_then_the_exceptions_list(
    pickup: Pickup, network: Network, drain: Drain
) -> None:
    await pickup.run(notifications.save_settings, 5)
    order = await booked(pickup, drain)
    answered = await booked(pickup, drain, sender_phone="+8613900001111", deliberate=True)
    await network.text(NORTH, f"Y {answered.seq}")
    await drain()
    await drain()  # nothing is due before five minutes
    assert len(await network.inbox(NORTH)) == 3  # two offers and the confirmation
    with tenant_scope(pickup.tenant_id):
        async with pickup.db.session() as session:
            due = (
                await session.exec(
                    select(OutboxEvent).where(OutboxEvent.topic == notifications.DEPOT_ANSWER_DUE)
                )
            ).all()
    assert len(due) == 2
    for event in due:
        waits = event.available_at - event.created_at
        assert abs(waits - timedelta(minutes=5)) < timedelta(seconds=1)

    assert await network.time_passes() == 2
    await drain()
    reminder = (await network.inbox(NORTH))[-1]
    assert reminder == (
        f"提醒：{order.number}（编号{order.seq}）仍待您答复。回复 Y {order.seq} 接单，"
        f"N {order.seq} 原因 拒单。"
    )
    assert len(await network.inbox(NORTH)) == 4  # the answered offer got no reminder
    assert (await pickup.order(order.id)).status == OrderStatus.DEPOT_ASSIGNED

    assert await network.time_passes() == 1
    await drain()
    order = await pickup.order(order.id)
    assert order.status == OrderStatus.UNSERVICEABLE and order.depot_id is None
    assert order.exception_reason is not None
    assert order.exception_reason.startswith("Guangzhou North did not answer the offer")
    [raised] = await pickup.events(service.EXCEPTION_RAISED)
    assert raised["order_id"] == str(order.id)
    assert (await pickup.order(answered.id)).status == OrderStatus.DEPOT_ASSIGNED
    # Too late: the depot is told the order is no longer its to take.
    await network.text(NORTH, f"Y {order.seq}")
    await drain()
    assert (await network.inbox(NORTH))[-1].startswith("您的网点没有编号为")


# -- never twice ----------------------------------------------------------------------------------
async def test_events_handled_again_send_no_second_sms(
    pickup: Pickup, network: Network, drain: Drain
) -> None:
    order = await booked(pickup, drain)
    await network.text(NORTH, f"Y {order.seq}")
    await network.text(NORTH, f"Y {order.seq}")  # typed twice
    await drain()
    customer, depot = await network.inbox(CUSTOMER), await network.inbox(NORTH)
    assert len(customer) == 2  # booked, the depot confirmed: once, however often it said yes
    assert len(depot) == 3  # the offer and an answer to each SMS
    sent = len(await network.messages())

    # Every pickup event of the order runs again (a worker died before recording it done).
    async with network.owner.begin() as conn:
        rerun = await conn.execute(
            text(
                "update outbox_events set processed_at = null, enqueued_at = null "
                "where topic like 'pickup.%' and topic <> :due"
            ),
            {"due": notifications.DEPOT_ANSWER_DUE},
        )
        assert rerun.rowcount >= 4
    await drain()
    assert await network.inbox(CUSTOMER) == customer
    assert await network.inbox(NORTH) == depot
    assert len(await network.messages()) == sent


# -- the tenant's own texts -----------------------------------------------------------------------
def test_preview_counts_segments_gsm7_and_ucs2() -> None:
    url = tracking_url(PUBLIC, notifications.SAMPLE_TOKEN)
    room = 70 - len(url)
    one = preview("{link}" + "取" * room, "zh_Hans", PUBLIC)
    assert (one.encoding, one.units, one.segments, one.per_segment) == ("UCS-2", 70, 1, 70)
    two = preview("{link}" + "取" * (room + 1), "zh_Hans", PUBLIC)
    assert (two.units, two.segments, two.per_segment) == (71, 2, 67)
    assert preview("{link}" + "取" * (134 - len(url)), "zh_Hant", PUBLIC).segments == 2
    assert preview("{link}" + "取" * (135 - len(url)), "zh_Hant", PUBLIC).segments == 3
    latin = preview("{link} " + "a" * (159 - len(url)), "en", PUBLIC)
    assert (latin.encoding, latin.units, latin.segments) == ("GSM-7", 160, 1)
    assert preview("{link} " + "a" * (160 - len(url)), "en", PUBLIC).segments == 2
    # One Chinese character (or a curly quote) makes an English text UCS-2.
    assert preview("{number} ’ {link}", "en", PUBLIC).encoding == "UCS-2"
    sample = preview(notifications.DEFAULT_TEXTS["booked"]["en"], "en", PUBLIC)
    assert sample.text.startswith("Pickup SF-2026-000123 is booked for 26 Nov 10:00-12:00.")
    assert (sample.encoding, sample.segments) == ("GSM-7", 1)
    # The defaults fit their segments: a booking SMS in Chinese is two at most.
    for kind, texts in notifications.DEFAULT_TEXTS.items():
        for language, body in texts.items():
            assert preview(body, language, PUBLIC).segments <= 2, (kind, language)


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ("Booked {numbr} {link}", "There is no variable {numbr}"),
        ("Booked {number}", "put {link} in it"),
        ("Booked {number.__class__} {link}", "Curly braces are for variables only"),
        ("  ", "The text is empty"),
    ],
)
def test_a_text_with_a_mistake_is_refused_naming_the_body(body: str, says: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        notifications.check_body(body)
    assert says in refused.value.detail and refused.value.field == "body"


async def test_the_tenants_own_text_goes_to_customers_of_that_language(
    pickup: Pickup, network: Network, drain: Drain
) -> None:
    own = "{number}：{window}上門收件，確認碼{code}。{link}"
    await pickup.run(notifications.save_template, "booked", "zh_Hant", own, "Admin")
    traditional = await booked(pickup, drain, language="zh_Hant")
    english = await booked(
        pickup, drain, language="en", sender_phone="+8613900002222", deliberate=True
    )
    window = notifications.window_text(traditional, "zh_Hant")
    assert (await network.inbox(CUSTOMER)) == [
        f"{traditional.number}：{window}上門收件，確認碼{traditional.confirmation_code}。"
        f"{link(traditional)}"
    ]
    [english_sms] = await network.inbox("+8613900002222")
    assert english_sms.startswith(f"Pickup {english.number} is booked for")
    # Putting the default back: the next customer gets it again.
    await pickup.run(notifications.save_template, "booked", "zh_Hant", "", "Admin")
    rows = await pickup.run(notifications.templates, "zh_Hant")
    assert [r.custom for r in rows if r.kind == "booked"] == [False]


async def test_the_template_page_previews_saves_and_names_mistakes(
    client: AsyncTestClient[Litestar], pickup: Pickup
) -> None:
    await sign_in(client, "admin@swiftfreight.test")
    page = await client.get("/pickup/notifications/?language=zh_Hans")
    assert page.status_code == 200
    assert "您的取件预约{number}已确认" in page.text and "UCS-2" in page.text
    token = await csrf_of(client, "/pickup/notifications/")
    long_text = "{number}" + "取" * 61 + "{link}"
    shown = await client.post(
        "/pickup/notifications/templates",
        data={
            "kind": "booked",
            "language": "zh_Hans",
            "body": long_text,
            "action": "preview",
            "_csrf": token,
        },
    )
    assert shown.status_code == 200
    assert "SF-2026-000123" + "取" * 61 + "http://127.0.0.1:8000/track/" in shown.text
    assert "3 segments" in shown.text  # 14 + 61 + 60 characters of UCS-2: 135, 67 a segment
    wrong = await client.post(
        "/pickup/notifications/templates",
        data={
            "kind": "booked",
            "language": "zh_Hans",
            "body": "{numbr} {link}",
            "action": "save",
            "_csrf": token,
        },
    )
    assert wrong.status_code == 400 and "There is no variable {numbr}" in wrong.text
    saved = await client.post(
        "/pickup/notifications/templates",
        data={
            "kind": "booked",
            "language": "zh_Hans",
            "body": "{number} {link}",
            "action": "save",
            "_csrf": token,
        },
        follow_redirects=False,
    )
    assert saved.status_code in (302, 303)
    rows = await pickup.run(notifications.templates, "zh_Hans")
    assert [(r.body, r.custom) for r in rows if r.kind == "booked"] == [("{number} {link}", True)]

    # The API: a preview with its encoding and segments, and the depots' answer time.
    headers = {"x-csrf-token": token}
    api = await client.post(
        "/api/v1/pickup/notifications/templates/preview",
        json={"body": "您好 {link}", "language": "zh_Hans"},
        headers=headers,
    )
    assert api.status_code == 200, api.text
    assert api.json()["encoding"] == "UCS-2" and api.json()["segments"] == 1
    bad = await client.put(
        "/api/v1/pickup/notifications/settings",
        json={"depot_answer_minutes": 0},
        headers=headers,
    )
    assert bad.status_code == 400 and "depot_answer_minutes" in bad.text
    good = await client.put(
        "/api/v1/pickup/notifications/settings",
        json={"depot_answer_minutes": 30},
        headers=headers,
    )
    assert good.json() == {"depot_answer_minutes": 30}


async def test_no_sms_number_means_no_sms_and_no_failed_event(pickup: Pickup, drain: Drain) -> None:
    """A tenant that has not set up a carrier yet still books and dispatches."""
    order = await pickup.book(order_in())
    await drain()
    order = await pickup.order(order.id)
    assert order.status == OrderStatus.DEPOT_ASSIGNED
    with tenant_scope(pickup.tenant_id):
        async with pickup.db.session() as session:
            stuck = (
                await session.exec(
                    select(OutboxEvent).where(
                        OutboxEvent.last_error.is_not(None)  # type: ignore[union-attr]
                    )
                )
            ).all()
    assert stuck == []


async def test_a_window_moved_before_the_visit_tells_the_customer_and_the_depot_once(
    pickup: Pickup, network: Network, drain: Drain
) -> None:
    order = await booked(pickup, drain, language="en")
    day = order.window_start.astimezone(SHANGHAI).date()
    await pickup.run(
        service.reschedule,
        order.id,
        AGENT,
        at(day, 15),
        at(day, 17),
        "customer asked",
    )
    await drain()
    moved = await pickup.order(order.id)
    assert moved.status == OrderStatus.DEPOT_ASSIGNED  # still with North, at a new time
    *_, told = await network.inbox(CUSTOMER)
    assert notifications.window_text(moved, "en").endswith(" 15:00-17:00")
    assert told == (
        f"{order.number} is rescheduled to {notifications.window_text(moved, 'en')}. "
        f"Track it: {link(order)}"
    )
    *_, note = await network.inbox(NORTH)
    assert note == (
        f"{order.number}（编号{order.seq}）改约至{notifications.window_text(moved, 'zh_Hans')}。"
    )
    # Handled again (a worker died before marking it done): nothing is sent twice.
    sent = len(await network.messages())
    async with network.owner.begin() as conn:
        await conn.execute(
            text(
                "update outbox_events set processed_at = null, enqueued_at = null "
                "where topic = :moved"
            ),
            {"moved": service.WINDOW_MOVED},
        )
    await drain()
    assert len(await network.messages()) == sent
