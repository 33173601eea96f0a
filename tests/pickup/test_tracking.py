"""The public tracking page: no sign-in, one order by its token (from any tenant), its status
timeline in the order's time zone and the customer's language, nobody's phone number or
address, 404 for a token that leads nowhere, and a brake on guessing."""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo

from litestar import Litestar
from litestar.testing import AsyncTestClient

from depotline.db import tenant_scope
from pickup import notifications, service, tracking
from pickup.models import Order
from pickup.service import Actor
from tests.pickup.conftest import Pickup, order_in
from tests.tenant.conftest import MakeClient, sign_in

NORTH = Actor(kind="sms", name="Guangzhou North (+8613800000101)")
PHONE_DIGITS = re.compile(r"1[3-9]\d{9}")


async def harbour_order(pickup: Pickup) -> Order:
    """Another tenant's order (Harbour Logistics has no depots: it waits on its exceptions list)."""
    with tenant_scope(pickup.world.tenants["harbour"]):
        async with pickup.db.session() as session:
            booking = await service.create_order(
                session,
                Actor.system("test"),
                order_in(
                    sender_name="Harbour customer",
                    sender_phone="+85291234567",
                    sender_address="1 Harbour Road",
                    language="en",
                ),
            )
    return booking.order


async def test_the_page_shows_one_order_in_its_customers_language_without_personal_data(
    client: AsyncTestClient[Litestar], pickup: Pickup
) -> None:
    order = await pickup.dispatched(order_in(sender_name="陈先生"))
    await pickup.run(service.depot_accepts, order.id, NORTH)
    await pickup.run(
        service.record_status, order.id, "driver_assigned", NORTH, driver_name="刘师傅"
    )
    other = await pickup.dispatched(
        order_in(sender_phone="+8613900003333", sender_address="白云区机场路1号", deliberate=True)
    )

    page = await client.get(f"/track/{order.tracking_token}")  # nobody signed in
    assert page.status_code == 200
    html = page.text
    assert '<html lang="zh-Hans">' in html  # the order's language
    assert f"<h1>订单 {order.number}</h1>" in html
    window = notifications.window_text(order, "zh_Hans")
    assert window in html and "Asia/Shanghai" in html
    assert "Guangzhou North" in html and "刘师傅" in html
    steps = re.findall(r"<time>([^<]+)</time> <span>([^<]+)</span>", html)
    assert [words for _, words in steps] == ["已预约", "网点处理中", "网点已确认", "已派司机"]
    assert 'aria-current="step"><time>' in html  # the last step is where it is now
    # Times are the order's local time (UTC+8), not UTC.
    timeline = await pickup.timeline(order.id)
    first = timeline[0].at.astimezone(ZoneInfo("Asia/Shanghai"))
    assert steps[0][0] == f"{first:%Y-%m-%d %H:%M}"
    # Nothing about people: no phone numbers (customer's, depot's), no addresses, no names.
    assert not PHONE_DIGITS.search(html)
    for private in ("白云区云城西路888号", "陈先生", "510410", "Guangzhou North depot"):
        assert private not in html
    # Not the other order, which has its own page.
    assert other.number not in html
    assert (await client.get(f"/track/{other.tracking_token}")).status_code == 200
    # Nothing that leaks the token onwards or keeps it.
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["cache-control"] == "no-store"


async def test_the_reader_may_choose_another_language(
    client: AsyncTestClient[Litestar], pickup: Pickup
) -> None:
    order = await pickup.dispatched(order_in(language="zh_Hant"))
    traditional = await client.get(f"/track/{order.tracking_token}")
    assert '<html lang="zh-Hant">' in traditional.text and "網點處理中" in traditional.text
    english = await client.get(f"/track/{order.tracking_token}?lang=en")
    assert '<html lang="en">' in english.text
    assert "With the depot" in english.text and "Time window" in english.text
    assert f"Order {order.number}" in english.text
    simplified = await client.get(f"/track/{order.tracking_token}?lang=zh-Hans")
    assert "网点处理中" in simplified.text


async def test_tokens_work_across_tenants_and_a_wrong_one_is_404(
    client: AsyncTestClient[Litestar], make_client: MakeClient, pickup: Pickup
) -> None:
    ours = await pickup.dispatched()
    theirs = await harbour_order(pickup)
    # Signed in as SwiftFreight staff or not at all, the token is all that counts.
    staff = await make_client()
    await sign_in(staff, "admin@swiftfreight.test")
    page = await staff.get(f"/track/{theirs.tracking_token}")
    assert page.status_code == 200 and theirs.number in page.text
    assert "Harbour Logistics" in page.text and ours.number not in page.text
    assert "Harbour customer" not in page.text and "85291234567" not in page.text

    for wrong in (
        ours.tracking_token[:-1] + ("A" if ours.tracking_token[-1] != "A" else "B"),
        "not-a-token-of-anyone",
        "x",
        "%27%20or%201%3D1--",
    ):
        missing = await client.get(f"/track/{wrong}", headers={"accept": "text/html"})
        assert missing.status_code == 404, wrong
        assert "This tracking link does not lead to an order" in missing.text
        assert ours.number not in missing.text


async def test_guessing_is_slowed_down(client: AsyncTestClient[Litestar], pickup: Pickup) -> None:
    order = await pickup.dispatched()
    for n in range(tracking.MISSES_ALLOWED):
        assert (await client.get(f"/track/guess-{n:012d}-0000")).status_code == 404
    refused = await client.get(f"/track/{order.tracking_token}")
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == str(tracking.MISS_WINDOW_SECONDS)
    assert order.number not in refused.text and "Too many attempts" in refused.text
