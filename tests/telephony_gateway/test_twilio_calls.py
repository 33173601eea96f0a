"""Twilio carrying what the contact center says after the IVR: the Enqueue's waitUrl (place in
line, the voicemail/callback offer), <Leave> and the Enqueue action, <Record> for a voicemail and
its recording callbacks, the agent's number and the post-call survey. Also: signatures checked
against PUBLIC_URL behind a proxy, and delivery reports retried until their message is known.

Every request is signed with twilio's RequestValidator, as Twilio signs them."""

from __future__ import annotations

import asyncio
import uuid
import xml.etree.ElementTree as ET
from datetime import timedelta
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from contact_center import service as contact_center
from contact_center import waiting
from contact_center.models import AgentStatus, Call, CallStatus, ContactCenterSettings
from contact_center.repository import ContactCenterRepository
from depotline.app import create_app
from depotline.config import Settings
from depotline.db import Database, tenant_scope
from telephony_gateway import service
from telephony_gateway.providers.base import SmsReceipt
from telephony_gateway.repository import GatewayRepository
from tests.telephony_gateway.conftest import Drain
from tests.telephony_gateway.test_twilio_webhooks import (
    CALLER,
    PUBLIC_URL,
    TwilioLine,
    sid,
    signature,
    status_form,
    twilio_post,
    twiml,
    voice_form,
)
from tests.telephony_gateway.test_twilio_webhooks import app as app
from tests.telephony_gateway.test_twilio_webhooks import drain as drain
from tests.telephony_gateway.test_twilio_webhooks import public_settings as public_settings
from tests.telephony_gateway.test_twilio_webhooks import twilio_line as twilio_line
from tests.tenant.conftest import Demo
from tests.tenant.test_seats import take
from tests.twilio_fake import TwilioFake, twilio_fake_fixture  # noqa: F401

EN = "en-US"


class TwilioCall:
    """One inbound call as Twilio places it on the line's number."""

    def __init__(self, client: AsyncTestClient[Litestar], line: TwilioLine) -> None:
        self.client, self.line = client, line
        self.sid = sid("CA")

    async def post(self, url: str, **form: str) -> ET.Element:
        fields = voice_form(self.sid, **{"CallStatus": "in-progress", **form})
        token = {"I-Twilio-Idempotency-Token": uuid.uuid4().hex}  # as Twilio sends it
        response = await twilio_post(
            self.client, url, fields, self.line.fake.auth_token, headers=token
        )
        return twiml(response)

    async def to_pickup(self) -> ET.Element:
        """Dial, English (3), a pickup (2): the TwiML that puts the caller in the queue."""
        first = await self.post(f"{PUBLIC_URL}/webhooks/twilio/voice", CallStatus="ringing")
        gather = first.find("Gather")
        assert gather is not None
        await self.post(gather.attrib["action"], Digits="3")
        return await self.post(gather.attrib["action"], Digits="2")

    async def wait(self, seconds: int) -> ET.Element:
        """Twilio asking the queue's waitUrl, `seconds` into the wait."""
        return await self.post(
            self.line.url("wait"),
            QueueSid="QU" + "1" * 32,
            QueuePosition="1",
            QueueTime=str(seconds),
            AvgQueueTime="0",
            CurrentQueueSize="1",
        )

    async def row(self, db: Database) -> Call:
        with tenant_scope(self.line.account.tenant_id):
            async with db.session() as session:
                call = await ContactCenterRepository(session).call_by_provider_id(
                    "twilio", self.sid
                )
        assert call is not None
        return call


def said(root: ET.Element) -> list[tuple[str, str | None]]:
    return [(child.tag, child.text) for child in root]


async def in_tenant(db: Database, line: TwilioLine, work: Any) -> Any:
    with tenant_scope(line.account.tenant_id):
        async with db.session() as session:
            return await work(session)


async def test_a_twilio_caller_hears_their_place_and_leaves_a_voicemail(
    client: AsyncTestClient[Litestar], db: Database, twilio_line: TwilioLine, drain: Drain
) -> None:
    async def queue(session: Any) -> None:
        await contact_center.create_queue(session, "Pickup", callback_offer_after_seconds=30)

    await in_tenant(db, twilio_line, queue)
    call = TwilioCall(client, twilio_line)
    enqueued = await call.to_pickup()
    enqueue = enqueued.find("Enqueue")
    assert enqueue is not None and enqueue.text == "Pickup"
    assert enqueue.attrib["waitUrl"] == twilio_line.url("wait")
    assert enqueue.attrib["action"] == twilio_line.url("queue-left")

    # Nobody serves Pickup: the place only, then silence until Twilio asks again.
    assert said(await call.wait(5)) == [("Say", "You are number 1 in line."), ("Pause", None)]

    async def backdate(session: Any) -> None:
        row = await ContactCenterRepository(session).call_by_provider_id("twilio", call.sid)
        assert row is not None and row.queued_at is not None
        row.queued_at -= timedelta(seconds=40)
        session.add(row)

    await in_tenant(db, twilio_line, backdate)
    offer = await call.wait(45)
    gather = offer.find("Gather")
    assert gather is not None and gather.attrib["action"] == twilio_line.url("gather")
    assert gather.find("Say") is not None and gather.find("Say").text == waiting.OFFER[EN]  # type: ignore[union-attr]

    # 1: out of Twilio's queue; Twilio then asks the Enqueue's action what comes next.
    assert said(await call.post(gather.attrib["action"], Digits="1")) == [("Leave", None)]
    left = await call.post(twilio_line.url("queue-left"), QueueResult="leave", QueueTime="50")
    assert [child.tag for child in left] == ["Say", "Record", "Hangup"]
    recording = left[1].attrib
    assert recording["action"] == twilio_line.url("recording")
    assert recording["recordingStatusCallback"] == twilio_line.url("recording")
    assert (recording["maxLength"], recording["finishOnKey"], recording["playBeep"]) == (
        "120",
        "#",
        "true",
    )

    # The recording is reported to the action and to the status callback: taken in once.
    rec_sid, rec_url = sid("RE"), "https://api.twilio.com/2010-04-01/Accounts/AC1/Recordings/RE1"
    recorded = {"RecordingSid": rec_sid, "RecordingUrl": rec_url, "RecordingDuration": "12"}
    ended = await call.post(twilio_line.url("recording"), **recorded)
    assert list(ended) == []  # an empty answer: the call ends
    await call.post(twilio_line.url("recording"), **recorded, RecordingStatus="completed")
    await call.post(twilio_line.url("status"), CallStatus="completed", CallDuration="70")
    await drain()
    row = await call.row(db)
    assert (row.status, row.disposition, row.voicemail_url) == (
        CallStatus.ENDED,
        "voicemail",
        rec_url,
    )
    assert row.callback_requested and row.language == EN


async def test_a_twilio_caller_hears_the_agent_number_and_rates_the_call(
    client: AsyncTestClient[Litestar], db: Database, twilio_line: TwilioLine, world: Demo
) -> None:
    agent = world.users["agent1@callpro.test"]
    await take(db, "agent1@callpro.test", world)  # an operator's agent takes calls on a seat

    async def floor(session: Any) -> None:
        session.add(ContactCenterSettings(survey_enabled=True))
        queue = await contact_center.create_queue(session, "Pickup")
        await contact_center.agent_signs_in(session, agent, world.tenants["callpro"])
        await contact_center.set_skill(session, agent, queue.id)
        await contact_center.set_status(session, agent, AgentStatus.READY)

    await in_tenant(db, twilio_line, floor)
    call = TwilioCall(client, twilio_line)
    await call.to_pickup()
    row = await call.row(db)
    assert row.status == CallStatus.OFFERED and row.agent_id == agent

    async def answer(session: Any) -> None:
        await contact_center.accept(session, agent, row.id)

    await in_tenant(db, twilio_line, answer)
    # The agent's number, once, while Twilio still holds the caller.
    assert said(await call.wait(8)) == [
        ("Say", "You are speaking with agent number 1001."),
        ("Pause", None),
    ]
    assert said(await call.wait(18)) == [("Pause", None)]

    async def hang_up(session: Any) -> None:
        await contact_center.agent_hangs_up(session, agent, row.id)

    await in_tenant(db, twilio_line, hang_up)
    # Twilio asks the Enqueue's action once the bridged call is over: the survey.
    survey = await call.post(twilio_line.url("queue-left"), QueueResult="bridged", QueueTime="9")
    assert [child.tag for child in survey] == ["Gather", "Say", "Hangup"]
    question = survey[0]
    assert question.attrib["numDigits"] == "1"
    assert question.find("Say") is not None and question.find("Say").text == waiting.SURVEY[EN]  # type: ignore[union-attr]
    thanks = await call.post(question.attrib["action"], Digits="2")
    assert said(thanks) == [("Say", waiting.SURVEY_THANKS[EN]), ("Hangup", None)]
    assert (await call.row(db)).survey_score == 2


# -- signatures behind a proxy --------------------------------------------------------------------
async def test_signatures_are_checked_against_the_public_url_behind_a_proxy(
    settings: Settings, db: Database, twilio_line: TwilioLine, clean_redis: None
) -> None:
    """Twilio calls https://calls.depotline.example; a proxy hands the request on to the app at
    another address (here the test client's). The signature covers the public URL."""
    public = "https://calls.depotline.example"
    token = twilio_line.fake.auth_token
    behind = create_app(settings.model_copy(update={"public_url": public + "/"}))
    async with AsyncTestClient(app=behind) as client:
        form = voice_form(sid("CA"))
        signed = signature(f"{public}/webhooks/twilio/voice", form, token)
        answer = await client.post(
            "/webhooks/twilio/voice", data=form, headers={"X-Twilio-Signature": signed}
        )
        assert answer.status_code == 200 and "<Gather" in answer.text
        gather = ET.fromstring(answer.text).find("Gather")
        assert gather is not None and gather.attrib["action"].startswith(public)

        # A callback URL keeps its query; signed over the public URL with it, it is taken in.
        path = "/webhooks/twilio/status?" + gather.attrib["action"].split("?", 1)[1]
        done = voice_form(form["CallSid"], CallStatus="completed", CallDuration="3")
        reported = await client.post(
            path,
            data=done,
            headers={"X-Twilio-Signature": signature(public + path, done, token)},
        )
        assert reported.status_code == 200

        for forged_url in (f"https://evil.example{path}", f"http://calls.depotline.example{path}"):
            forged = await client.post(
                path,
                data=done,
                headers={"X-Twilio-Signature": signature(forged_url, done, token)},
            )
            assert forged.status_code == 403, forged_url


# -- delivery reports ahead of their message ------------------------------------------------------
async def carrier_events(owner_engine: AsyncEngine) -> list[tuple[int, bool]]:
    """The reports handed to the worker: (attempt, handled), oldest first."""
    async with owner_engine.connect() as conn:
        rows = await conn.execute(
            text(
                "select payload, processed_at is not null from outbox_events "
                "where topic = :topic order by created_at"
            ),
            {"topic": service.CARRIER_EVENT},
        )
        return [(int(payload.get("attempt", 0)), done) for payload, done in rows]


async def test_a_report_is_tried_again_until_its_message_is_known_then_dropped(
    client: AsyncTestClient[Litestar],
    db: Database,
    twilio_line: TwilioLine,
    drain: Drain,
    owner_engine: AsyncEngine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(service, "EARLY_REPORT_DELAY", timedelta(seconds=0.3))
    monkeypatch.setattr(service, "EARLY_REPORT_ATTEMPTS", 3)
    token, callback = twilio_line.fake.auth_token, twilio_line.url("sms-status")

    async def sending(session: Any) -> Any:
        sms = await service.send_sms(session, to=CALLER, body="hello", message_id="out-slow")
        await session.flush()
        return await service.claim_for_sending(session, sms.id)

    sms = await in_tenant(db, twilio_line, sending)
    twilio_sid = sid("SM")
    early = await twilio_post(client, callback, status_form(twilio_sid, "delivered"), token)
    assert early.status_code == 200
    await asyncio.sleep(0.35)
    await drain()  # the first retry: the carrier's answer is still not recorded
    assert await carrier_events(owner_engine) == [(1, True), (2, False)]

    async def answered(session: Any) -> None:  # the worker records Twilio's (slow) answer
        outcome = service.SendOutcome(receipt=SmsReceipt(twilio_sid))
        await service.record_outcome(session, sms.id, outcome)

    await in_tenant(db, twilio_line, answered)
    await asyncio.sleep(0.65)
    await drain()
    message = await in_tenant(
        db, twilio_line, lambda s: GatewayRepository(s).sms_by_message_id("out-slow")
    )
    assert (message.state, message.provider_message_id) == ("delivered", twilio_sid)

    # A report on a message that never turns up is tried EARLY_REPORT_ATTEMPTS times, then
    # dropped (logged), not kept forever.
    stray = await twilio_post(client, callback, status_form(sid("SM"), "delivered"), token)
    assert stray.status_code == 200
    for wait in (0.35, 0.65, 1.25):
        await asyncio.sleep(wait)
        await drain()
    assert (await carrier_events(owner_engine))[2:] == [(1, True), (2, True), (3, True)]
