"""SMS through the simulated carrier, end to end: queued, handed over once, delivered, opted out,
retried on outages, never doubled; webhooks signed, de-duplicated, and refused when forged."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from depotline.db import Database, tenant_scope
from telephony_gateway import service
from telephony_gateway.models import SmsMessage
from telephony_gateway.providers.registry import Providers
from telephony_gateway.providers.simulator import failures_key, handset_key, signed_form
from telephony_gateway.repository import GatewayRepository
from tests.telephony_gateway.conftest import CALLER, NUMBER, Drain, Line
from tests.tenant.conftest import csrf_of, sign_in


async def send(db: Database, line: Line, to: str, body: str, message_id: str) -> None:
    with tenant_scope(line.account.tenant_id):
        async with db.session() as session:
            await service.send_sms(session, to=to, body=body, message_id=message_id)


async def message(db: Database, line: Line, message_id: str) -> SmsMessage:
    with tenant_scope(line.account.tenant_id):
        async with db.session() as session:
            found = await GatewayRepository(session).sms_by_message_id(message_id)
    assert found is not None
    return found


async def handset(redis_url: str, number: str) -> list[dict[str, str]]:
    redis = Redis.from_url(redis_url)
    items = [json.loads(i) for i in await redis.lrange(handset_key(number), 0, -1)]
    await redis.aclose()
    return items


async def test_sms_is_delivered_once_with_status_reports(
    db: Database, line: Line, drain: Drain, redis_url: str
) -> None:
    body = "您的包裹已揽收，单号 SF123。回复退订停止接收"
    await send(db, line, "13900139000", body, "pickup-1-booked")
    await send(
        db, line, "+86 139 0013 9000", body, "pickup-1-booked"
    )  # a retry of the same request
    await drain()
    sms = await message(db, line, "pickup-1-booked")
    assert sms.to_number == "+8613900139000" and sms.encoding == "UCS-2" and sms.segments == 1
    assert sms.state in ("queued", "sent")
    await asyncio.sleep(1.1)  # the simulated handset confirms delivery a second later
    await drain()
    assert (await message(db, line, "pickup-1-booked")).state == "delivered"
    received = await handset(redis_url, "+8613900139000")
    assert [m["body"] for m in received] == [body]
    with tenant_scope(line.account.tenant_id):
        async with db.session() as session:
            assert await service.usage_summary(session) == {"sms_segments_outbound": 1}


async def test_outage_is_retried_with_backoff_and_sent_once(
    db: Database, line: Line, drain: Drain, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "backoff", lambda attempt: timedelta(0))
    redis = Redis.from_url(redis_url)
    await redis.set(failures_key("+8613900139001"), 2)
    await redis.aclose()
    await send(db, line, "+8613900139001", "Your pickup is confirmed", "m-outage")
    await drain()
    sms = await message(db, line, "m-outage")
    assert sms.attempts == 3 and sms.state in ("queued", "sent", "delivered")
    assert len(await handset(redis_url, "+8613900139001")) == 1


async def test_unknown_subscriber_fails_without_retry(
    db: Database, line: Line, drain: Drain
) -> None:
    await send(db, line, "+8613900000000", "hello", "m-unknown")
    await drain()
    sms = await message(db, line, "m-unknown")
    assert (sms.state, sms.attempts, sms.error_code) == ("failed", 1, "21211")


async def test_crash_after_handing_over_never_sends_twice(
    db: Database, line: Line, drain: Drain, redis_url: str
) -> None:
    """A worker that died after marking 'sending' leaves the message alone on redelivery."""
    await send(db, line, "+8613900139002", "once only", "m-crash")
    with tenant_scope(line.account.tenant_id):
        async with db.session() as session:
            sms = await GatewayRepository(session).sms_by_message_id("m-crash")
            assert sms is not None
            sms.state = "sending"
            session.add(sms)
    await drain()
    assert (await message(db, line, "m-crash")).state == "sending"
    assert await handset(redis_url, "+8613900139002") == []


async def inbound(
    client: AsyncTestClient[Litestar], providers: Providers, line: Line, body: str, event_id: str
) -> int:
    form, headers = signed_form(
        providers.webhook_secret(line.account),
        {"event_id": event_id, "message_id": event_id, "from": CALLER, "to": NUMBER, "body": body},
    )
    response = await client.post("/webhooks/simulator/sms", data=form, headers=headers)
    return response.status_code


async def test_opt_out_by_sms_is_honoured(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    db: Database,
    line: Line,
    drain: Drain,
    redis_url: str,
) -> None:
    providers: Providers = app.state.providers
    assert await inbound(client, providers, line, "退订", "in-1") == 200
    await send(db, line, CALLER, "Promotion!", "m-after-stop")
    await drain()
    assert (await message(db, line, "m-after-stop")).state == "opted_out"
    assert await handset(redis_url, CALLER) == []


async def test_webhooks_are_verified_and_deduplicated(
    client: AsyncTestClient[Litestar], app: Litestar, db: Database, line: Line
) -> None:
    providers: Providers = app.state.providers
    unsigned = await client.post(
        "/webhooks/simulator/sms",
        data={"from": CALLER, "to": NUMBER, "body": "hi", "event_id": "x"},
    )
    assert unsigned.status_code == 403
    form, headers = signed_form(
        b"not the key", {"from": CALLER, "to": NUMBER, "body": "hi", "event_id": "y"}
    )
    assert (
        await client.post("/webhooks/simulator/sms", data=form, headers=headers)
    ).status_code == 403
    form, headers = signed_form(
        providers.webhook_secret(line.account),
        {"from": CALLER, "to": NUMBER, "body": "hi", "event_id": "z"},
    )
    tampered = dict(form, body="transfer all money")
    assert (
        await client.post("/webhooks/simulator/sms", data=tampered, headers=headers)
    ).status_code == 403

    assert await inbound(client, providers, line, "Where is my parcel?", "in-2") == 200
    assert await inbound(client, providers, line, "Where is my parcel?", "in-2") == 200  # retried
    with tenant_scope(line.account.tenant_id):
        async with db.session() as session:
            log = await GatewayRepository(session).sms_log()
            usage = await service.usage_summary(session)
    assert [m.body for m in log if m.direction == "inbound"] == ["Where is my parcel?"]
    assert usage == {"sms_segments_inbound": 1}


async def test_sms_api_and_log_page(
    client: AsyncTestClient[Litestar], line: Line, drain: Drain
) -> None:
    await sign_in(client, "admin@swiftfreight.test")
    headers = {"x-csrf-token": await csrf_of(client, "/auth/forgot")}
    bad = await client.post(
        "/api/v1/sms", json={"to": "not a number", "body": "x"}, headers=headers
    )
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "to"
    sent = await client.post(
        "/api/v1/sms",
        json={"to": "+8613900139005", "body": "Hello", "message_id": "api-1"},
        headers=headers,
    )
    again = await client.post(
        "/api/v1/sms",
        json={"to": "+8613900139005", "body": "Hello", "message_id": "api-1"},
        headers=headers,
    )
    assert sent.status_code == again.status_code == 201 and sent.json()["id"] == again.json()["id"]
    await drain()
    page = await client.get("/sms")
    assert "+8613900139005" in page.text and "Hello" in page.text
