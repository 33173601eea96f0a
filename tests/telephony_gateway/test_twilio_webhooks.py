"""Twilio through the app's own routes: a tenant's Twilio account and number, webhooks signed
exactly as Twilio signs them (X-Twilio-Signature over the full URL and the form, with the
account's Auth Token), TwiML answers, de-duplicated retries, refused forgeries, and SMS sent
through the Messages API of a local Twilio fake (tests/twilio_fake.py) reported back by status
callbacks at the URL our registry built."""

from __future__ import annotations

import asyncio
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from arq.connections import ArqRedis
from httpx import Response
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from twilio.request_validator import RequestValidator  # type: ignore[import-untyped]

from depotline.app import create_app
from depotline.config import Settings
from depotline.db import Database, tenant_scope
from telephony_gateway import service
from telephony_gateway.commands import Enqueue
from telephony_gateway.models import CarrierAccount, PhoneNumber, SmsMessage
from telephony_gateway.providers.registry import Providers
from telephony_gateway.providers.twilio import TwilioProvider
from telephony_gateway.repository import GatewayRepository
from tests.telephony_gateway.conftest import Drain, drain_with
from tests.tenant.conftest import Demo
from tests.tenant.test_seats import principal
from tests.twilio_fake import TwilioFake, twilio_fake_fixture  # noqa: F401

#: The AsyncTestClient's base URL; the app is told it is its public URL, so the callback URLs it
#: hands Twilio (Gather actions, StatusCallback) are the ones this client can call.
PUBLIC_URL = "http://testserver.local"
NUMBER = "+85230001000"
CALLER = "+85291234567"
MUSIC = "https://depotline.example/static/hold.mp3"


@dataclass
class TwilioLine:
    world: Demo
    account: CarrierAccount
    number: PhoneNumber
    fake: TwilioFake

    @property
    def query(self) -> dict[str, str]:
        return {"tenant": str(self.account.tenant_id), "account": str(self.account.id)}

    def url(self, kind: str, **extra: str) -> str:
        """A callback URL Depotline hands out for this account (tenant and account named)."""
        return f"{PUBLIC_URL}/webhooks/twilio/{kind}?{urlencode({**self.query, **extra})}"


@pytest.fixture
def public_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"public_url": PUBLIC_URL})


@pytest.fixture
async def app(public_settings: Settings, clean_db: None, clean_redis: None) -> Litestar:
    """The app (and so `client`) with the test client's base URL as its public URL."""
    return create_app(public_settings)


@pytest.fixture
def drain(public_settings: Settings, db: Database, jobs: ArqRedis) -> Drain:
    return drain_with(public_settings, db, jobs)


@pytest.fixture
async def twilio_line(
    db: Database, world: Demo, settings: Settings, twilio_fake: TwilioFake
) -> TwilioLine:
    admin = await principal(db, "admin@swiftfreight.test", world.tenants["swiftfreight"])
    with tenant_scope(admin.acting_tenant_id):
        async with db.session() as session:
            account = await service.create_account(
                session,
                admin,
                provider="twilio",
                label="Twilio HK",
                settings={"account_sid": twilio_fake.account_sid, "api_base": twilio_fake.base_url},
                credentials={"auth_token": twilio_fake.auth_token},
                sender_id=None,
                sms_per_second=50,
                secret=settings.session_secret(),
            )
            await session.flush()
            number = await service.add_number(
                session, admin, number=NUMBER, account_id=account.id, label="HK hotline"
            )
    return TwilioLine(world, account, number, twilio_fake)


# -- helpers ------------------------------------------------------------------------------------


def signature(url: str, form: Mapping[str, str], token: str) -> str:
    signed: str = RequestValidator(token).compute_signature(url, dict(form))
    return signed


async def twilio_post(
    client: AsyncTestClient[Litestar],
    url: str,
    form: Mapping[str, str],
    token: str,
    *,
    signed_url: str | None = None,
    signed_form: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """POST `form` to `url` as Twilio does: the signature covers `signed_url`/`signed_form`
    (by default exactly what is sent)."""
    sig = signature(signed_url or url, form if signed_form is None else signed_form, token)
    return await client.post(
        url,
        data=dict(form),
        headers={
            "X-Twilio-Signature": sig,
            "Content-Type": "application/x-www-form-urlencoded",
            "User-Agent": "TwilioProxy/1.1",
            **(headers or {}),
        },
    )


def voice_form(call_sid: str, **extra: str) -> dict[str, str]:
    return {
        "AccountSid": "AC" + "0" * 32,
        "ApiVersion": "2010-04-01",
        "CallSid": call_sid,
        "CallStatus": "ringing",
        "Called": NUMBER,
        "Caller": CALLER,
        "Direction": "inbound",
        "From": CALLER,
        "FromCountry": "HK",
        "To": NUMBER,
        "ToCountry": "HK",
        **extra,
    }


def sms_form(message_sid: str, body: str, **extra: str) -> dict[str, str]:
    return {
        "AccountSid": "AC" + "0" * 32,
        "ApiVersion": "2010-04-01",
        "Body": body,
        "From": CALLER,
        "FromCountry": "HK",
        "MessageSid": message_sid,
        "NumMedia": "0",
        "NumSegments": "1",
        "SmsMessageSid": message_sid,
        "SmsSid": message_sid,
        "SmsStatus": "received",
        "To": NUMBER,
        "ToCountry": "HK",
        **extra,
    }


def status_form(message_sid: str, status: str, **extra: str) -> dict[str, str]:
    return {
        "AccountSid": "AC" + "0" * 32,
        "ApiVersion": "2010-04-01",
        "From": NUMBER,
        "MessageSid": message_sid,
        "MessageStatus": status,
        "SmsSid": message_sid,
        "SmsStatus": status,
        "To": CALLER,
        **extra,
    }


def twiml(response: Response) -> ET.Element:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/xml")
    root = ET.fromstring(response.text)
    assert root.tag == "Response"
    return root


def sid(prefix: str) -> str:
    return prefix + uuid.uuid4().hex


async def usage(db: Database, line: TwilioLine) -> dict[str, int]:
    with tenant_scope(line.account.tenant_id):
        async with db.session() as session:
            return await service.usage_summary(session)


async def messages(db: Database, line: TwilioLine) -> list[SmsMessage]:
    with tenant_scope(line.account.tenant_id):
        async with db.session() as session:
            return list(await GatewayRepository(session).sms_log())


async def message(db: Database, line: TwilioLine, message_id: str) -> SmsMessage:
    with tenant_scope(line.account.tenant_id):
        async with db.session() as session:
            found = await GatewayRepository(session).sms_by_message_id(message_id)
    assert found is not None
    return found


async def call_events(owner_engine: AsyncEngine) -> list[dict[str, Any]]:
    """What the contact center hears of calls (the outbox's call events), oldest first."""
    async with owner_engine.connect() as conn:
        rows = await conn.execute(
            text("select payload from outbox_events where topic = :topic order by created_at, id"),
            {"topic": service.CALL_EVENT},
        )
        return [dict(row[0]) for row in rows]


# -- voice --------------------------------------------------------------------------------------


async def test_incoming_call_is_answered_by_the_ivr_with_twiml(
    client: AsyncTestClient[Litestar], twilio_line: TwilioLine, owner_engine: AsyncEngine
) -> None:
    token = twilio_line.fake.auth_token
    call_sid = sid("CA")
    # The number's voice webhook, as configured at Twilio: no query, found by the dialled number.
    answer = await twilio_post(
        client, f"{PUBLIC_URL}/webhooks/twilio/voice", voice_form(call_sid), token
    )
    root = twiml(answer)
    # The contact center's IVR answers: the language menu, its last line inside the Gather.
    assert [child.tag for child in root] == ["Say", "Say", "Gather"]
    assert "欢迎致电" in (root[0].text or "")
    gather = root[2]
    assert gather.find("Say") is not None and gather.find("Say").text == "For English, press 3."  # type: ignore[union-attr]
    assert gather.attrib["input"] == "dtmf"
    assert gather.attrib["method"] == "POST"
    assert gather.attrib["numDigits"] == "1"
    action = urlsplit(gather.attrib["action"])
    assert (action.scheme, action.netloc, action.path) == (
        "http",
        "testserver.local",
        "/webhooks/twilio/gather",
    )
    assert parse_qs(action.query) == {k: [v] for k, v in twilio_line.query.items()}

    # Twilio retries a webhook it got no answer to: the same TwiML, and the call starts once.
    again = await twilio_post(
        client, f"{PUBLIC_URL}/webhooks/twilio/voice", voice_form(call_sid), token
    )
    assert again.text == answer.text

    # The caller presses 3 (English): Twilio posts the digits to the action URL, signed over it.
    gathered = voice_form(
        call_sid, CallStatus="in-progress", Digits="3", FinishedOnKey="", msg="Gather End"
    )
    menu = twiml(await twilio_post(client, gather.attrib["action"], gathered, token))
    prompt = menu.find("Gather/Say")
    assert prompt is not None and (prompt.text or "").startswith("To track a parcel, press 1.")
    # A retried gather (same idempotency token) is answered the same and taken once.
    retry_headers = {"I-Twilio-Idempotency-Token": f"{call_sid}-gather-1"}
    first = await twilio_post(
        client, gather.attrib["action"], gathered, token, headers=retry_headers
    )
    second = await twilio_post(
        client, gather.attrib["action"], gathered, token, headers=retry_headers
    )
    assert first.text == second.text

    # The call's start goes to its followers (the contact center, the customer timeline); the
    # keys were answered in the webhook and are followed by nobody else.
    events = await call_events(owner_engine)
    assert [e["type"] for e in events] == ["CallStarted"]
    started = events[0]["event"]
    assert (started["call_id"], started["from_number"], started["to_number"]) == (
        call_sid,
        CALLER,
        NUMBER,
    )
    assert started["direction"] == "inbound" and started["provider"] == "twilio"


async def test_completed_call_counts_inbound_seconds_once_despite_retries(
    client: AsyncTestClient[Litestar],
    db: Database,
    twilio_line: TwilioLine,
    owner_engine: AsyncEngine,
) -> None:
    token = twilio_line.fake.auth_token
    call_sid = sid("CA")
    status_url = twilio_line.url("status")
    ringing = voice_form(call_sid, CallStatus="ringing", CallbackSource="call-progress-events")
    answered = voice_form(call_sid, CallStatus="in-progress", SequenceNumber="1")
    completed = voice_form(
        call_sid,
        CallStatus="completed",
        CallDuration="42",
        Duration="1",
        SequenceNumber="2",
        Timestamp="Tue, 01 Sep 2026 10:00:42 +0000",
    )
    for form in (ringing, answered, completed, completed, completed):  # Twilio retried twice
        response = await twilio_post(client, status_url, form, token)
        assert twiml(response).findall("*") == []  # an empty <Response/>: nothing to do
    # The number's own status callback (no query) names the same call: still counted once.
    plain = await twilio_post(client, f"{PUBLIC_URL}/webhooks/twilio/status", completed, token)
    assert plain.status_code == 200

    assert await usage(db, twilio_line) == {"call_seconds_inbound": 42}
    events = [e for e in await call_events(owner_engine) if e["event"]["call_id"] == call_sid]
    assert [e["type"] for e in events] == ["CallAnswered", "CallEnded"]
    ended = events[1]["event"]
    assert (ended["reason"], ended["duration_seconds"]) == ("completed", 42)
    assert ended["occurred_at"].startswith("2026-09-01T10:00:42")


async def test_queue_wait_url_plays_the_music(
    client: AsyncTestClient[Litestar], app: Litestar, twilio_line: TwilioLine
) -> None:
    """An Enqueue's waitUrl is one of our webhooks: Twilio asks it (signed) what to play."""
    providers: Providers = app.state.providers
    twilio = providers.for_account(twilio_line.account)
    assert isinstance(twilio, TwilioProvider)
    _, body = twilio.render([Enqueue("parcels", music_url=MUSIC)])
    enqueue = ET.fromstring(body).find("Enqueue")
    assert enqueue is not None
    wait_url = enqueue.attrib["waitUrl"]
    assert wait_url == twilio_line.url("wait", music=MUSIC)
    form = voice_form(
        sid("CA"),
        CallStatus="in-progress",
        QueueSid=sid("QU"),
        QueuePosition="1",
        QueueTime="12",
        AvgQueueTime="30",
        CurrentQueueSize="1",
    )
    played = twiml(await twilio_post(client, wait_url, form, twilio_line.fake.auth_token))
    assert [(child.tag, child.text) for child in played] == [("Play", MUSIC)]
    # Without music it waits silently (and Twilio asks again).
    silent = twiml(
        await twilio_post(client, twilio_line.url("wait"), form, twilio_line.fake.auth_token)
    )
    assert [child.tag for child in silent] == ["Pause"]
    # Unsigned, it is refused like any other webhook.
    refused = await client.post(wait_url, data=form)
    assert refused.status_code == 403


# -- SMS ----------------------------------------------------------------------------------------


async def test_inbound_sms_is_stored_once(
    client: AsyncTestClient[Litestar], db: Database, twilio_line: TwilioLine
) -> None:
    token = twilio_line.fake.auth_token
    sms_url = f"{PUBLIC_URL}/webhooks/twilio/sms"
    message_sid = sid("SM")
    form = sms_form(message_sid, "我的包裹 SF123 到哪里了？")
    for _ in range(3):  # delivered, then retried twice
        answer = twiml(await twilio_post(client, sms_url, form, token))
        assert answer.findall("*") == []  # no auto-reply
    stored = [m for m in await messages(db, twilio_line) if m.direction == "inbound"]
    assert [(m.body, m.from_number, m.to_number) for m in stored] == [
        ("我的包裹 SF123 到哪里了？", CALLER, NUMBER)
    ]
    only = stored[0]
    assert (only.provider, only.provider_message_id, only.state) == (
        "twilio",
        message_sid,
        "received",
    )
    assert only.account_id == twilio_line.account.id and only.encoding == "UCS-2"
    assert await usage(db, twilio_line) == {"sms_segments_inbound": 1}


async def test_stop_by_sms_opts_the_sender_out(
    client: AsyncTestClient[Litestar], db: Database, twilio_line: TwilioLine, drain: Drain
) -> None:
    token = twilio_line.fake.auth_token
    stop = await twilio_post(
        client, f"{PUBLIC_URL}/webhooks/twilio/sms", sms_form(sid("SM"), "stop"), token
    )
    assert stop.status_code == 200
    with tenant_scope(twilio_line.account.tenant_id):
        async with db.session() as session:
            await service.send_sms(session, to=CALLER, body="Promotion!", message_id="promo-1")
    await drain()
    assert (await message(db, twilio_line, "promo-1")).state == "opted_out"
    assert not [r for r in twilio_line.fake.requests if r.path.endswith("/Messages.json")]


async def test_sms_sent_through_twilio_is_reported_forward_and_never_backwards(
    client: AsyncTestClient[Litestar], db: Database, twilio_line: TwilioLine, drain: Drain
) -> None:
    fake, token = twilio_line.fake, twilio_line.fake.auth_token
    body = "Your parcel SF123 is out for delivery."
    with tenant_scope(twilio_line.account.tenant_id):
        async with db.session() as session:
            await service.send_sms(session, to="+852 9123 4567", body=body, message_id="out-1")
    await drain()

    (sent,) = [r for r in fake.requests if r.path.endswith("/Messages.json")]
    assert sent.authenticated and sent.auth_user == fake.account_sid
    assert sent.path == f"/2010-04-01/Accounts/{fake.account_sid}/Messages.json"
    assert (sent.form["To"], sent.form["From"], sent.form["Body"]) == (CALLER, NUMBER, body)
    # The StatusCallback is the URL our registry built: the public URL, naming the account.
    assert sent.form["StatusCallback"] == twilio_line.url("sms-status")
    (twilio_sid,) = fake.messages
    sms = await message(db, twilio_line, "out-1")
    assert (sms.state, sms.provider_message_id, sms.attempts) == ("queued", twilio_sid, 1)
    assert await usage(db, twilio_line) == {"sms_segments_outbound": 1}

    callback = sent.form["StatusCallback"]

    async def report(status: str, **extra: str) -> str:
        response = await twilio_post(
            client, callback, status_form(twilio_sid, status, **extra), token
        )
        assert twiml(response).findall("*") == []
        return (await message(db, twilio_line, "out-1")).state

    assert await report("sending") == "queued"
    assert await report("sent") == "sent"
    assert await report("queued") == "sent"  # late and out of order: not backwards
    assert await report("delivered") == "delivered"
    assert await report("delivered") == "delivered"  # retried
    assert await report("sent") == "delivered"  # late: not backwards
    assert await report("undelivered", ErrorCode="30003") == "delivered"  # final stays final
    final = await message(db, twilio_line, "out-1")
    assert final.error_code is None
    # Nothing was sent twice.
    assert len([r for r in fake.requests if r.path.endswith("/Messages.json")]) == 1


async def test_a_failed_delivery_is_recorded_with_twilios_error_code(
    client: AsyncTestClient[Litestar], db: Database, twilio_line: TwilioLine, drain: Drain
) -> None:
    fake, token = twilio_line.fake, twilio_line.fake.auth_token
    with tenant_scope(twilio_line.account.tenant_id):
        async with db.session() as session:
            await service.send_sms(session, to=CALLER, body="hello", message_id="out-2")
    await drain()
    (twilio_sid,) = fake.messages
    response = await twilio_post(
        client,
        twilio_line.url("sms-status"),
        status_form(twilio_sid, "undelivered", ErrorCode="30005"),
        token,
    )
    assert response.status_code == 200
    sms = await message(db, twilio_line, "out-2")
    assert (sms.state, sms.error_code) == ("undelivered", "30005")


async def test_a_report_that_overtakes_the_send_is_applied_once_the_send_is_recorded(
    client: AsyncTestClient[Litestar],
    db: Database,
    twilio_line: TwilioLine,
    drain: Drain,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Twilio can report on a message before it has answered the request that sent it: the
    worker has not recorded the message's SID yet. The report must not be lost."""
    monkeypatch.setattr(service, "EARLY_REPORT_DELAY", timedelta(seconds=1))
    fake, token = twilio_line.fake, twilio_line.fake.auth_token
    with tenant_scope(twilio_line.account.tenant_id):
        async with db.session() as session:
            await service.send_sms(session, to=CALLER, body="hello", message_id="out-early")
    fake.delay_next(2.0)  # Twilio takes the message and answers 2 s later
    sending: asyncio.Future[None] = asyncio.ensure_future(drain())
    deadline = time.monotonic() + 10
    while not fake.messages:
        assert time.monotonic() < deadline, "the message never reached the fake"
        await asyncio.sleep(0.02)
    (twilio_sid,) = fake.messages
    callback = twilio_line.url("sms-status")
    for status in ("sent", "delivered"):
        early = await twilio_post(client, callback, status_form(twilio_sid, status), token)
        assert early.status_code == 200
    assert (await message(db, twilio_line, "out-early")).state == "sending"
    await sending
    await asyncio.sleep(1.1)
    await drain()  # the worker applies the reports it was handed
    sms = await message(db, twilio_line, "out-early")
    assert (sms.state, sms.provider_message_id) == ("delivered", twilio_sid)
    # Retried now, the same reports change nothing and count nothing.
    for status in ("sent", "delivered"):
        again = await twilio_post(client, callback, status_form(twilio_sid, status), token)
        assert again.status_code == 200
    await drain()
    assert (await message(db, twilio_line, "out-early")).state == "delivered"
    assert await usage(db, twilio_line) == {"sms_segments_outbound": 1}


# -- refused ------------------------------------------------------------------------------------


@pytest.fixture
async def sent_sms(db: Database, twilio_line: TwilioLine, drain: Drain) -> str:
    """An SMS sent through the fake (state queued); its Twilio SID."""
    with tenant_scope(twilio_line.account.tenant_id):
        async with db.session() as session:
            await service.send_sms(session, to=CALLER, body="hello", message_id="out-3")
    await drain()
    (twilio_sid,) = twilio_line.fake.messages
    return twilio_sid


async def test_forged_unsigned_tampered_and_misaddressed_webhooks_are_refused(
    client: AsyncTestClient[Litestar],
    db: Database,
    settings: Settings,
    twilio_line: TwilioLine,
    sent_sms: str,
    owner_engine: AsyncEngine,
) -> None:
    token = twilio_line.fake.auth_token
    base = f"{PUBLIC_URL}/webhooks/twilio"
    call_sid, in_sid = sid("CA"), sid("SM")
    voice = voice_form(call_sid)
    sms = sms_form(in_sid, "Where is my parcel?")
    completed = voice_form(call_sid, CallStatus="completed", CallDuration="600")
    delivered = status_form(sent_sms, "delivered")
    cases: list[tuple[str, str, Mapping[str, str], dict[str, Any]]] = [
        # (what, url, form, how it is signed)
        ("forged voice", f"{base}/voice", voice, {"token": "f" * 32}),
        ("forged sms", f"{base}/sms", sms, {"token": "not the auth token"}),
        ("forged status", twilio_line.url("status"), completed, {"token": uuid.uuid4().hex}),
        ("forged sms-status", twilio_line.url("sms-status"), delivered, {"token": "x" * 32}),
        ("tampered sms body", f"{base}/sms", sms, {"signed_form": {**sms, "Body": "hi"}}),
        ("tampered duration", twilio_line.url("status"), completed,
         {"signed_form": {**completed, "CallDuration": "6"}}),
        ("tampered status", twilio_line.url("sms-status"), delivered,
         {"signed_form": status_form(sent_sms, "sent")}),
        ("extra parameter", f"{base}/sms", {**sms, "Extra": "1"}, {"signed_form": sms}),
        # Signed for another URL: another kind, another host, another account's query.
        ("signed for voice, sent to sms", f"{base}/sms", sms, {"signed_url": f"{base}/voice"}),
        ("signed for another host", f"{base}/sms", sms,
         {"signed_url": "https://evil.example/webhooks/twilio/sms"}),
        ("signed for https", f"{base}/voice", voice,
         {"signed_url": "https://testserver.local/webhooks/twilio/voice"}),
        ("signed without the query", twilio_line.url("sms-status"), delivered,
         {"signed_url": f"{base}/sms-status"}),
        ("signed for another account", twilio_line.url("sms-status"), delivered,
         {"signed_url": f"{base}/sms-status?tenant={twilio_line.account.tenant_id}"
          f"&account={uuid.uuid4()}"}),
        # The Auth Token's signature, but claiming a SharedKey the account does not have.
        ("shared key claimed", f"{base}/sms", sms,
         {"headers": {"X-Twilio-Webhooks-Signature-Settings": "key=KS1,algorithm=HMAC_SHA256"}}),
    ]  # fmt: skip
    for what, url, form, how in cases:
        response = await twilio_post(
            client,
            url,
            form,
            how.get("token", token),
            signed_url=how.get("signed_url"),
            signed_form=how.get("signed_form"),
            headers=how.get("headers"),
        )
        assert response.status_code == 403, what
    for what, url, form in [
        ("unsigned voice", f"{base}/voice", voice),
        ("unsigned sms", f"{base}/sms", sms),
        ("unsigned status", twilio_line.url("status"), completed),
        ("unsigned sms-status", twilio_line.url("sms-status"), delivered),
    ]:
        response = await client.post(url, data=dict(form))
        assert response.status_code == 403, what
        empty = await client.post(url, data=dict(form), headers={"X-Twilio-Signature": ""})
        assert empty.status_code == 403, what
    # A webhook for an account of another provider, or of no account, is refused too.
    admin = await principal(
        db, "admin@swiftfreight.test", twilio_line.world.tenants["swiftfreight"]
    )
    with tenant_scope(admin.acting_tenant_id):
        async with db.session() as session:
            simulator = await service.create_account(
                session,
                admin,
                provider="simulator",
                label="sim",
                settings={},
                credentials={},
                sender_id=None,
                sms_per_second=10,
                secret=settings.session_secret(),
            )
    other = f"{base}/sms?" + urlencode(
        {"tenant": str(simulator.tenant_id), "account": str(simulator.id)}
    )
    for url in (
        other,
        f"{base}/sms?tenant={uuid.uuid4()}&account={uuid.uuid4()}",
        f"{base}/sms?tenant=not-a-uuid&account=x",
    ):
        response = await twilio_post(client, url, sms, token)
        assert response.status_code == 403, url
    not_ours = {**sms, "To": "+85230009999"}
    response = await twilio_post(client, f"{base}/sms", not_ours, token)
    assert response.status_code == 403

    # Nothing changed: no message stored, no usage, no call event, the SMS still queued.
    assert [m.message_id for m in await messages(db, twilio_line)] == ["out-3"]
    assert (await message(db, twilio_line, "out-3")).state == "queued"
    assert await usage(db, twilio_line) == {"sms_segments_outbound": 1}
    assert await call_events(owner_engine) == []
    # A refused request did not use up the event ids: the genuine ones are taken in after it.
    assert (await twilio_post(client, f"{base}/sms", sms, token)).status_code == 200
    genuine = await twilio_post(client, twilio_line.url("status"), completed, token)
    assert genuine.status_code == 200
    report = await twilio_post(client, twilio_line.url("sms-status"), delivered, token)
    assert report.status_code == 200
    assert (await message(db, twilio_line, "out-3")).state == "delivered"
    assert await usage(db, twilio_line) == {
        "sms_segments_outbound": 1,
        "sms_segments_inbound": 1,
        "call_seconds_inbound": 600,
    }


async def test_a_webhook_twilio_sends_no_such_kind_of_is_a_bad_request(
    client: AsyncTestClient[Litestar], twilio_line: TwilioLine
) -> None:
    response = await twilio_post(
        client, twilio_line.url("fax"), {"CallSid": sid("CA")}, twilio_line.fake.auth_token
    )
    assert response.status_code == 400
