"""The golden path, end to end, on a REAL Kannel (bearerbox, smsbox, fakesmsc; missing Kannel
fails these tests) and the app served live, so Kannel's inbound SMS and delivery reports reach
its webhooks:

a caller dials SwiftFreight's hotline on the simulated network, picks English and "book a
pickup" in the IVR (the demo flow's Pickup queue), reaches CallPro's agent on a hosted seat, who
books the pickup from the screen pop; the worker dispatches it by postal code to Guangzhou
North; the depot's and the customer's SMS leave through Kannel; the depot answers "Y <ref>" by
SMS from its phone; the customer gets the next SMS and opens the tracking page from its link.

The agent desktop's pages are other work in progress: the agent's steps are the desk's service
calls (accept, screen pop) and the booking service, as the desktop makes them.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import unquote_to_bytes

import httpx
import pytest
from arq.connections import ArqRedis

from contact_center import desk, voice
from contact_center.models import CallStatus
from depotline.auth import Principal
from depotline.db import Database, tenant_scope, user_scope
from pickup import notifications, service
from pickup.models import OrderStatus
from pickup.service import Actor
from telephony_gateway import service as gateway
from telephony_gateway.models import CarrierAccount, PhoneNumber, SmsMessage
from telephony_gateway.providers.kannel import kannel_inbound_url
from telephony_gateway.providers.registry import Providers
from telephony_gateway.repository import GatewayRepository
from tenant import service as tenant_service
from tenant.repository import TenantRepository
from tests.contact_center.conftest import Floor, floor
from tests.contact_center.test_calls_end_to_end import Phone
from tests.kannel import Kannel, MtMessage
from tests.pickup.conftest import Pickup, order_in
from tests.telephony_gateway.conftest import NUMBER, Drain, Line, drain_with
from tests.telephony_gateway.test_kannel_flow import LiveApp, daemons, live_app
from tests.tenant.conftest import Demo
from tests.tenant.test_seats import principal, take

__all__ = ["daemons", "floor", "live_app"]  # fixtures
T = TypeVar("T")
SMS_NUMBER = "+862088880002"  # SwiftFreight's SMS line, on Kannel
CUSTOMER = "+8613800138000"
NORTH = "+8613800000101"  # Guangzhou North's phone
LINK = re.compile(r"https?://\S+/track/[A-Za-z0-9_-]+")


@dataclass(frozen=True)
class Carriers:
    """SwiftFreight's hotline on the simulator (voice) and its SMS number on Kannel."""

    world: Demo
    hotline: Line
    sms_account: CarrierAccount
    sms_number: PhoneNumber
    kannel: Kannel
    app: LiveApp
    db: Database

    async def messages(self) -> list[SmsMessage]:
        with tenant_scope(self.sms_account.tenant_id):
            async with self.db.session() as session:
                return list(await GatewayRepository(session).sms_log())

    def to(self, number: str) -> list[MtMessage]:
        """What reached `number` at the fake SMSC, a long SMS in its parts."""
        return [_part(m) for m in self.kannel.mt_messages() if m.receiver == number]

    def text_to(self, number: str) -> str:
        return "".join(m.text for m in self.to(number))

    async def eventually(
        self, probe: Callable[[], Awaitable[T]], what: str, seconds: float = 30.0
    ) -> T:
        deadline = time.monotonic() + seconds
        while True:
            found = await probe()
            if found:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}\n{self.kannel.diagnostics()}")
            await asyncio.sleep(0.2)


def _part(message: MtMessage) -> MtMessage:
    """One part of a long SMS: fakesmsc shows it as `udh <header> data <UTF-16BE bytes>`
    (our long SMS are Chinese, so UCS-2)."""
    if message.coding != "udh":
        return message
    _header, kind, payload = message.text.split(" ", 2)
    assert kind == "data", message
    text = unquote_to_bytes(payload.replace("+", " ")).decode("utf-16-be")
    return MtMessage(message.sender, message.receiver, "ucs-2", text)


@pytest.fixture
def drain(live_app: LiveApp, db: Database, jobs: ArqRedis) -> Drain:
    """The worker with the live app's settings: links and callbacks point at it."""
    return drain_with(live_app.settings, db, jobs)


@pytest.fixture
async def carriers(live_app: LiveApp, db: Database, pickup: Pickup, daemons: Kannel) -> Carriers:
    world = pickup.world
    admin = await principal(db, "admin@swiftfreight.test", world.tenants["swiftfreight"])
    secret = live_app.settings.session_secret()
    with tenant_scope(admin.acting_tenant_id):
        async with db.session() as session:
            simulator = await gateway.create_account(
                session,
                admin,
                provider="simulator",
                label="Simulated network",
                settings={},
                credentials={},
                sender_id=None,
                sms_per_second=50,
                secret=secret,
            )
            kannel_account = await gateway.create_account(
                session,
                admin,
                provider="kannel",
                label="Kannel",
                settings={
                    "sendsms_url": daemons.sendsms_url,
                    "username": daemons.username,
                    "smsc_id": daemons.smsc_id,
                },
                credentials={"password": daemons.password},
                sender_id=None,
                sms_per_second=50,
                secret=secret,
            )
            await session.flush()
            hotline = await gateway.add_number(
                session, admin, number=NUMBER, account_id=simulator.id, label="Hotline", sms=False
            )
            sms_number = await gateway.add_number(
                session, admin, number=SMS_NUMBER, account_id=kannel_account.id, label="SMS"
            )
    providers = Providers(secret, live_app.url, None)
    daemons.start(
        get_url=kannel_inbound_url(
            live_app.url,
            providers.webhook_secret(kannel_account),
            tenant_id=str(kannel_account.tenant_id),
        )
    )
    return Carriers(
        world, Line(world, simulator, hotline), kannel_account, sms_number, daemons, live_app, db
    )


async def on_seat(db: Database, world: Demo, email: str) -> Principal:
    """An operator's agent on one of SwiftFreight's hosted seats."""
    seat = await take(db, email, world)
    async with db.session() as session:
        user = await TenantRepository(session).user_by_email(email)
    assert user is not None
    swift, callpro = world.tenants["swiftfreight"], world.tenants["callpro"]
    with user_scope(user.id), tenant_scope(swift):
        async with db.session() as session:
            agent = await tenant_service.principal_for(session, user, callpro, swift, seat.id)
    assert agent is not None and agent.is_outsourced
    return agent


async def by_sms(carriers: Carriers, sender: str, text: str) -> None:
    """`sender` texts SwiftFreight's SMS number; wait until the app has it."""
    before = len([m for m in await carriers.messages() if m.from_number == sender])
    carriers.kannel.inject_mo(sender, SMS_NUMBER, text)

    async def stored() -> bool:
        return len([m for m in await carriers.messages() if m.from_number == sender]) > before

    await carriers.eventually(stored, f"{text!r} from {sender} in the app")


#: The IVR's language tags and the order languages they mean.
ORDER_LANGUAGE = {"cmn-CN": "zh_Hans", "yue-HK": "zh_Hant", "en-US": "en"}


async def test_the_golden_path_from_the_call_to_the_tracking_page(
    carriers: Carriers, pickup: Pickup, floor: Floor, db: Database, drain: Drain
) -> None:
    world = carriers.world
    agent = await on_seat(db, world, "agent1@callpro.test")
    await floor.ready("li")  # CallPro's agent1, skilled in the Pickup queue

    # The caller dials the hotline: English (3), then "book a pickup" (2).
    providers = Providers(
        carriers.app.settings.session_secret(), carriers.app.url, None, voice.answer
    )
    phone = Phone(db, providers, carriers.hotline, CUSTOMER)
    await phone.dial()
    await phone.press("3")
    queued = await phone.press("2")
    assert (queued[-1]["command"], queued[-1]["queue"]) == ("enqueue", "Pickup")
    call = await phone.row()
    assert call.status == CallStatus.OFFERED and call.agent_id == agent.user_id

    # The outsourced agent answers and sees who is calling.
    assert agent.user_id is not None
    with tenant_scope(agent.acting_tenant_id):
        async with db.session() as session:
            await desk.accept(session, agent.user_id, call.id)
        async with db.session() as session:
            pop = await desk.screen_pop(session, agent, call.id, language="en")
    assert pop.tenant_name == "SwiftFreight" and pop.queue_name == "Pickup"
    assert pop.caller.number == CUSTOMER and pop.call.language == "en-US"

    # ... and books the pickup from it: the caller's number and language, the address told.
    with tenant_scope(agent.acting_tenant_id):
        async with db.session() as session:
            booking = await service.create_order(
                session,
                Actor.of(agent),
                order_in(
                    sender_name="Chen Jie",
                    sender_phone=pop.caller.number,
                    sender_postal_code="510410",  # Baiyun: Guangzhou North's zone
                    language=ORDER_LANGUAGE[pop.call.language or "en-US"],
                ),
            )
    order = booking.order
    assert order.created_by == agent.name

    # The worker dispatches it by postal code and texts the depot and the customer via Kannel.
    await drain()
    order = await pickup.order(order.id)
    assert order.status == OrderStatus.DEPOT_ASSIGNED
    assert pickup.depot_name(order.depot_id) == "Guangzhou North"

    async def both_at_the_network() -> bool:
        await drain()
        return bool(carriers.to(CUSTOMER)) and bool(carriers.to(NORTH))

    await carriers.eventually(both_at_the_network, "the depot's and the customer's SMS")
    offer = carriers.text_to(NORTH)
    assert {m.coding for m in carriers.to(NORTH)} == {"ucs-2"}  # Chinese for the depot
    assert offer.startswith(f"新取件单{order.number}（编号{order.seq}）")
    assert f"回复 Y {order.seq} 接单" in offer
    first = carriers.text_to(CUSTOMER)
    assert first.startswith(f"Pickup {order.number} is booked for ")
    assert [m.coding for m in carriers.to(CUSTOMER)] == ["text"]  # GSM-7, one SMS
    assert {m.sender for m in carriers.kannel.mt_messages()} == {SMS_NUMBER}

    # The depot answers from its phone: "Y <ref>".
    await by_sms(carriers, NORTH, f"Y {order.seq}")

    async def confirmed() -> bool:
        await drain()
        return len(carriers.to(CUSTOMER)) >= 2

    await carriers.eventually(confirmed, "the customer's second SMS")
    order = await pickup.order(order.id)
    assert order.depot_accepted_at is not None
    second = carriers.to(CUSTOMER)[1].text
    window = notifications.window_text(order, "en")
    assert second.startswith(f"Guangzhou North will handle {order.number} on {window}.")
    assert f"已接单{order.number}。进度请回复" in carriers.text_to(NORTH)  # its yes, confirmed

    # The customer opens the link in the SMS: the live app, no sign-in, in English.
    found = LINK.search(second)
    assert found is not None and found.group(0).startswith(carriers.app.url)
    async with httpx.AsyncClient() as browser:
        page = await browser.get(found.group(0))
    assert page.status_code == 200
    assert f"Order {order.number}" in page.text and '<html lang="en">' in page.text
    assert "Confirmed by the depot" in page.text and "Guangzhou North" in page.text
    assert CUSTOMER.lstrip("+") not in page.text and "Chen Jie" not in page.text

    # Every SMS was delivered (fakesmsc's reports came back to the app) and none went twice.
    async def all_delivered() -> list[SmsMessage]:
        await drain()
        sent = [m for m in await carriers.messages() if m.direction == "outbound"]
        return sent if all(m.state == "delivered" for m in sent) else []

    sent = await carriers.eventually(all_delivered, "delivery reports")
    assert sorted(m.to_number for m in sent) == sorted([CUSTOMER, CUSTOMER, NORTH, NORTH])


async def test_a_customer_who_texted_stop_gets_no_sms_but_the_depot_does(
    carriers: Carriers, pickup: Pickup, drain: Drain
) -> None:
    await by_sms(carriers, CUSTOMER, "STOP")
    order = await pickup.book(order_in(language="en"))

    async def depot_texted() -> bool:
        await drain()
        return bool(carriers.to(NORTH))

    await carriers.eventually(depot_texted, "the depot's SMS")
    await asyncio.sleep(0.5)
    await drain()
    assert carriers.to(CUSTOMER) == []
    [booked] = [m for m in await carriers.messages() if m.to_number == CUSTOMER]
    assert booked.state == "opted_out"
    notes = [e.reason for e in await pickup.timeline(order.id) if e.action == "note"]
    assert "SMS to the customer (booked) not sent: the number opted out" in notes

    # The depot's yes still reaches the order; the customer still hears nothing.
    await by_sms(carriers, NORTH, f"y {order.seq}")

    async def accepted() -> bool:
        await drain()
        return (await pickup.order(order.id)).depot_accepted_at is not None

    await carriers.eventually(accepted, "the depot's answer applied")
    await drain()
    assert carriers.to(CUSTOMER) == []
