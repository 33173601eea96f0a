"""Kannel end to end: the REAL bearerbox, smsbox and fakesmsc (tests/kannel.py) and the app
served live on 127.0.0.1, so Kannel's delivery reports (dlr-url) and inbound SMS (the
sms-service get-url) reach the app's own /webhooks/kannel routes.

A tenant's Kannel account sends through smsbox with the worker; the messages reach fakesmsc,
whose delivery reports move them to `delivered` in the database; an SMS injected at fakesmsc is
stored once, and STOP or 退订 opt the sender out. Kannel missing fails these tests, never skips.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlencode

import httpx
import pytest
from arq.connections import ArqRedis

from depotline.config import Settings
from depotline.db import Database, tenant_scope
from telephony_gateway import service
from telephony_gateway.models import CarrierAccount, PhoneNumber, SmsMessage
from telephony_gateway.providers.kannel import INBOUND_PATH, kannel_inbound_url
from telephony_gateway.providers.registry import Providers
from telephony_gateway.repository import GatewayRepository
from tests.kannel import Kannel, MtMessage
from tests.live import serve
from tests.telephony_gateway.conftest import Drain, drain_with
from tests.tenant.conftest import Demo
from tests.tenant.test_seats import principal

NUMBER = "+862088880002"
CUSTOMER = "+8613800138000"
ENGLISH = "Your parcel SF123 was picked up. Reply STOP to opt out."
CHINESE = "您的包裹已揽收，单号 SF123。回复退订停止接收"
T = TypeVar("T")


@dataclass(frozen=True)
class LiveApp:
    url: str
    #: The test settings with `public_url` the live URL: what carriers are told to call.
    settings: Settings


@dataclass(frozen=True)
class KannelLine:
    world: Demo
    account: CarrierAccount
    number: PhoneNumber
    kannel: Kannel
    app: LiveApp
    #: The sms-service get-url Kannel was configured with (escape codes included).
    get_url: str


@pytest.fixture
def live_app(settings: Settings, clean_db: None, clean_redis: None) -> Iterator[LiveApp]:
    """The app under uvicorn on a free loopback port, told that it is its own public URL."""
    with serve(settings, own_public_url=True) as (url, live_settings):
        yield LiveApp(url, live_settings)


@pytest.fixture
def drain(live_app: LiveApp, db: Database, jobs: ArqRedis) -> Drain:
    return drain_with(live_app.settings, db, jobs)


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[Kannel]:
    """bearerbox, smsbox and fakesmsc for one test, not yet started (the test names the
    get-url once it knows the account). Missing binaries fail here with the install hint."""
    kannel = Kannel(tmp_path / "kannel")
    kannel.workdir.mkdir()
    try:
        yield kannel
    finally:
        kannel.stop()


@pytest.fixture
async def kannel_line(
    live_app: LiveApp, db: Database, world: Demo, settings: Settings, daemons: Kannel
) -> KannelLine:
    """A tenant's Kannel account and number; Kannel started with the app as its get-url."""
    admin = await principal(db, "admin@swiftfreight.test", world.tenants["swiftfreight"])
    with tenant_scope(admin.acting_tenant_id):
        async with db.session() as session:
            account = await service.create_account(
                session,
                admin,
                provider="kannel",
                label="Kannel (fake SMSC)",
                settings={
                    "sendsms_url": daemons.sendsms_url,
                    "username": daemons.username,
                    "smsc_id": daemons.smsc_id,
                },
                credentials={"password": daemons.password},
                sender_id=None,
                sms_per_second=50,
                secret=settings.session_secret(),
            )
            await session.flush()
            number = await service.add_number(
                session, admin, number=NUMBER, account_id=account.id, label="SMS line"
            )
    providers = Providers(live_app.settings.session_secret(), live_app.url, None)
    get_url = kannel_inbound_url(
        live_app.url, providers.webhook_secret(account), tenant_id=str(account.tenant_id)
    )
    daemons.start(get_url=get_url)
    return KannelLine(world, account, number, daemons, live_app, get_url)


# -- helpers ------------------------------------------------------------------------------------


async def send(db: Database, line: KannelLine, to: str, body: str, message_id: str) -> None:
    with tenant_scope(line.account.tenant_id):
        async with db.session() as session:
            await service.send_sms(session, to=to, body=body, message_id=message_id)


async def log(db: Database, line: KannelLine) -> list[SmsMessage]:
    with tenant_scope(line.account.tenant_id):
        async with db.session() as session:
            return list(await GatewayRepository(session).sms_log())


async def by_id(db: Database, line: KannelLine) -> dict[str, SmsMessage]:
    return {m.message_id: m for m in await log(db, line)}


async def eventually(
    probe: Callable[[], Awaitable[T]], what: str, line: KannelLine, seconds: float = 15.0
) -> T:
    """Poll `probe` until it returns something truthy."""
    deadline = time.monotonic() + seconds
    while True:
        result = await probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}\n{line.kannel.diagnostics()}")
        await asyncio.sleep(0.1)


def inbound_from(messages: list[SmsMessage], sender: str) -> list[SmsMessage]:
    return [m for m in messages if m.direction == "inbound" and m.from_number == sender]


# -- the tests ----------------------------------------------------------------------------------


async def test_sms_reach_the_network_and_the_delivery_reports_reach_the_app(
    db: Database, kannel_line: KannelLine, drain: Drain
) -> None:
    kannel = kannel_line.kannel
    await send(db, kannel_line, CUSTOMER, ENGLISH, "pickup-en")
    await send(db, kannel_line, "138 0013 8001", CHINESE, "pickup-zh")
    await send(db, kannel_line, CUSTOMER, ENGLISH, "pickup-en")  # the same request again
    await drain()

    def both_at_the_network() -> list[MtMessage]:
        found = [m for m in kannel.mt_messages() if m.text in (ENGLISH, CHINESE)]
        return found if len(found) >= 2 else []

    mt = await kannel.wait_for(both_at_the_network, "both messages at fakesmsc")
    by_text = {m.text: m for m in mt}
    assert (by_text[ENGLISH].coding, by_text[ENGLISH].receiver) == ("text", CUSTOMER)
    assert (by_text[CHINESE].coding, by_text[CHINESE].receiver) == ("ucs-2", "+8613800138001")
    assert {m.sender for m in mt} == {NUMBER}

    async def delivered() -> dict[str, SmsMessage]:
        # The worker keeps running: a report that overtook it recording Kannel's answer (these
        # come within milliseconds) is handed back to it to apply a little later.
        await drain()
        found = await by_id(db, kannel_line)
        wanted = ("pickup-en", "pickup-zh")
        return found if all(found[k].state == "delivered" for k in wanted) else {}

    # fakesmsc acknowledges (DLR 8: sent) and reports delivery (DLR 1): both reach the app.
    messages = await eventually(delivered, "both messages delivered", kannel_line, seconds=30)
    english, chinese = messages["pickup-en"], messages["pickup-zh"]
    assert (english.encoding, chinese.encoding) == ("GSM-7", "UCS-2")
    for sms in (english, chinese):
        assert (sms.provider, sms.attempts, sms.error_code) == ("kannel", 1, None)
        assert sms.provider_message_id == sms.message_id
    # Each was sent once, however often it was asked for.
    await asyncio.sleep(0.5)
    assert sorted(m.text for m in kannel.mt_messages()) == sorted([ENGLISH, CHINESE])
    assert len(await log(db, kannel_line)) == 2
    with tenant_scope(kannel_line.account.tenant_id):
        async with db.session() as session:
            assert await service.usage_summary(session) == {"sms_segments_outbound": 2}


async def test_inbound_sms_is_stored_once_and_stop_opts_out(
    db: Database, kannel_line: KannelLine, drain: Drain
) -> None:
    kannel = kannel_line.kannel
    question, stopper, chinese_stopper = "+8613900139000", "+8613900139001", "+8613900139002"

    kannel.inject_mo(question, NUMBER, "Where is my parcel  SF123?")

    async def question_stored() -> list[SmsMessage]:
        return inbound_from(await log(db, kannel_line), question)

    (stored,) = await eventually(question_stored, "the inbound SMS in the database", kannel_line)
    assert (stored.body, stored.to_number, stored.state) == (
        "Where is my parcel  SF123?",
        NUMBER,
        "received",
    )
    assert (stored.provider, stored.account_id) == ("kannel", kannel_line.account.id)

    # Kannel delivering the same request again (same id) stores nothing more.
    assert stored.provider_message_id
    replay = (
        kannel_line.get_url.split("&from=")[0].replace("%%", "%")
        + "&"
        + urlencode(
            {
                "from": question,
                "to": NUMBER,
                "text": "Where is my parcel  SF123?",
                "coding": "0",
                "charset": "UTF-8",
                "id": stored.provider_message_id,
                "at": "1767268800",
                "smsc": kannel.smsc_id,
            }
        )
    )
    assert replay.startswith(f"{kannel_line.app.url}{INBOUND_PATH}?")
    async with httpx.AsyncClient() as client:
        again = await client.get(replay)
        assert again.status_code == 200, again.text
        forged = await client.get(replay.replace("sig=", "sig=0"))
        assert forged.status_code == 403

    # STOP in English and 退订 in Chinese (UCS-2 over the network) opt their senders out. One
    # at a time: fakesmsc reads one line from its stdin per write.
    for sender, keyword in ((stopper, "STOP"), (chinese_stopper, "退订")):
        kannel.inject_mo(sender, NUMBER, keyword)

        async def stop_stored(sender: str = sender) -> list[SmsMessage]:
            return inbound_from(await log(db, kannel_line), sender)

        (stop,) = await eventually(stop_stored, f"{keyword} in the database", kannel_line)
        assert (stop.body, stop.encoding) == (keyword, "GSM-7" if keyword.isascii() else "UCS-2")

    await send(db, kannel_line, stopper, "Promotion!", "promo-en")
    await send(db, kannel_line, chinese_stopper, "优惠活动！", "promo-zh")
    await send(db, kannel_line, question, "Your parcel SF123 arrives today.", "answer-1")
    await drain()

    async def answered() -> list[MtMessage]:
        return [m for m in kannel.mt_messages() if m.receiver == question]

    await eventually(answered, "the answer at fakesmsc", kannel_line)
    messages = await by_id(db, kannel_line)
    assert (messages["promo-en"].state, messages["promo-zh"].state) == ("opted_out",) * 2
    await asyncio.sleep(0.5)
    receivers = [m.receiver for m in kannel.mt_messages()]
    assert receivers == [question]  # nothing went to either opted-out sender
    inbound = [m for m in await log(db, kannel_line) if m.direction == "inbound"]
    assert len(inbound) == 3  # each inbound SMS once
    with tenant_scope(kannel_line.account.tenant_id):
        async with db.session() as session:
            usage = await service.usage_summary(session)
    assert usage == {"sms_segments_inbound": 3, "sms_segments_outbound": 1}
