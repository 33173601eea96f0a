"""What a caller hears after the IVR, through signed simulator webhooks: their place in line and
the expected wait, the offer past the queue's limit (voicemail, recorded; or a callback, with
the caller's place kept), the agent's number on answer, and the post-call survey. Also: a
customer of the VIP tier is treated as a VIP, and the simulated carrier holds on in a queue."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from contact_center import service, waiting
from contact_center.ivr import CANTONESE, ENGLISH, MANDARIN
from contact_center.models import AgentStatus, Call, CallStatus
from contact_center.repository import ContactCenterRepository
from customers import service as customers
from customers.schemas import CustomerIn
from depotline.db import Database, tenant_scope, utcnow
from telephony_gateway.simulate import SimulatedCarrier
from tests.contact_center.conftest import Floor
from tests.contact_center.test_calls_end_to_end import Center, Phone, prompt, spoken
from tests.contact_center.test_calls_end_to_end import center as center
from tests.telephony_gateway.conftest import NUMBER, Drain
from tests.telephony_gateway.conftest import line as line
from tests.tenant.test_seats import principal


async def hold_on(phone: Phone) -> list[dict[str, Any]]:
    """The simulated network asks what the waiting caller hears now (the wait URL)."""
    return await phone._webhook("wait", {})


async def leave_queue(phone: Phone) -> list[dict[str, Any]]:
    return await phone._webhook("queue-left", {"result": "leave"})


async def record(phone: Phone) -> None:
    recording = f"SIMREC{uuid4().hex}"
    fields = {"recording_id": recording, "url": f"https://rec.example/{recording}.wav"}
    await phone._webhook("recording", {**fields, "duration": "9"})


async def backdate(db: Database, floor: Floor, phone: Phone, seconds: int) -> None:
    """The caller joined the queue `seconds` ago."""
    call = await phone.row()
    with tenant_scope(floor.tenant_id):
        async with db.session() as session:
            row = await ContactCenterRepository(session).get_call(call.id, lock=True)
            assert row is not None and row.queued_at is not None
            row.queued_at = row.queued_at - timedelta(seconds=seconds)
            session.add(row)


async def accept(floor: Floor, agent: str, call_id: UUID) -> None:
    await floor.run(service.accept, floor.agents[agent], call_id)


# -- place in line and expected wait ------------------------------------------------------------
async def test_a_waiting_caller_hears_their_place_and_the_expected_wait(
    center: Center, floor: Floor, db: Database
) -> None:
    await floor.ready("li")
    await floor.ready("wong")
    first, second = center.phone(), center.phone()
    await first.to_queue("3", "2")
    await second.to_queue("3", "2")
    await accept(floor, "li", (await first.row()).id)
    await accept(floor, "wong", (await second.row()).id)

    third, fourth = center.phone(), center.phone()
    await third.to_queue("3", "2")  # English, pickup
    await fourth.to_queue("2", "2")  # Cantonese, pickup
    # Two agents serve Pickup (both on calls); no call has ended in the last hour, so a call
    # counts DEFAULT_TALK_SECONDS (180 s, wrap-up 0): 1 × 180 / 2 = 90 s, then 2 × 180 / 2.
    heard = await hold_on(third)
    assert spoken(heard) == [
        ("You are number 1 in line.", ENGLISH),
        ("The expected wait is about 2 minutes. Please stay on the line.", ENGLISH),
    ]
    assert heard[-1] == {"command": "pause", "seconds": 20}  # then hold until asked again
    assert spoken(await hold_on(fourth)) == [
        ("你而家排第2位。", CANTONESE),
        ("預計等候大約3分鐘，唔該唔好收線。", CANTONESE),
    ]

    # Calls of the last hour set the pace: one talked for 10 minutes, so 1 × 600 / 2 = 300 s.
    with tenant_scope(floor.tenant_id):
        async with db.session() as session:
            now = utcnow()
            session.add(
                Call(
                    provider="simulator",
                    provider_call_id=uuid4().hex,
                    from_number="+8613800000001",
                    to_number=NUMBER,
                    status=CallStatus.ENDED,
                    queue_id=floor.queue.id,
                    answered_at=now - timedelta(minutes=10),
                    ended_at=now,
                    talk_seconds=600,
                )
            )
    assert spoken(await hold_on(third))[1][0] == (
        "The expected wait is about 5 minutes. Please stay on the line."
    )
    # With nobody serving the queue, only the place is said.
    await center.queue("Complaints")
    complaint = center.phone()
    await complaint.to_queue("1", "3")  # Mandarin, complaints
    assert spoken(await hold_on(complaint)) == [("您现在排在第1位。", MANDARIN)]


# -- the offer past the limit ---------------------------------------------------------------------
async def test_past_the_limit_a_caller_leaves_a_voicemail(
    center: Center, floor: Floor, db: Database, drain: Drain
) -> None:
    await center.queue("Complaints", "sara", callback_offer_after_seconds=60)
    phone = center.phone()
    await phone.to_queue("3", "3")  # English, complaints: sara is not ready
    assert not any(c["command"] == "gather" for c in await hold_on(phone))  # not yet
    await backdate(db, floor, phone, 61)
    offer = await hold_on(phone)
    gather = next(c for c in offer if c["command"] == "gather")
    assert (gather["prompt"]["text"], gather["num_digits"]) == (waiting.OFFER[ENGLISH], 1)

    assert await phone.press("1") == [{"command": "leave"}]
    call = await phone.row()
    assert (call.status, call.disposition, call.callback_requested) == (
        CallStatus.IVR,
        "voicemail",
        True,
    )
    after = await leave_queue(phone)
    assert spoken(after) == [(waiting.LEAVE_MESSAGE[ENGLISH], ENGLISH)]
    assert [c["command"] for c in after] == ["say", "record", "hangup"]
    assert after[1]["max_seconds"] == waiting.VOICEMAIL_SECONDS
    await record(phone)
    await phone.hang_up(40)
    await drain()
    call = await phone.row()
    assert call.status == CallStatus.ENDED and call.disposition == "voicemail"  # not abandoned
    assert call.voicemail_url is not None and call.voicemail_url.startswith("https://rec.example/")
    assert call.queued_at is not None and call.answered_at is None
    await floor.ready("sara")  # the caller left the line: nothing to offer her
    assert await floor.state("sara") == (AgentStatus.READY, None)


async def test_past_the_limit_a_caller_keeps_their_place_and_is_called_back(
    center: Center, floor: Floor, db: Database, drain: Drain, owner_engine: AsyncEngine
) -> None:
    complaints = await center.queue("Complaints", "li", callback_offer_after_seconds=30)
    phone = center.phone()
    await phone.to_queue("1", "3")  # Mandarin
    await backdate(db, floor, phone, 45)
    offer = await hold_on(phone)
    assert spoken(offer)[-1] == (waiting.OFFER[MANDARIN], MANDARIN)
    assert await phone.press("5") == []  # not a choice: keeps waiting
    confirmed = await phone.press("2")
    assert spoken(confirmed) == [(waiting.CALLBACK_CONFIRMED[MANDARIN], MANDARIN)]
    assert confirmed[-1] == {"command": "hangup"}
    call = await phone.row()
    async with owner_engine.connect() as conn:
        published = (
            await conn.execute(
                text("select payload from outbox_events where topic = :t"),
                {"t": waiting.CALLBACK_REQUESTED},
            )
        ).scalar_one()
    assert published["call_id"] == str(call.id) and published["phone"] == call.from_number
    assert published["queued_at"] == call.queued_at.isoformat()  # type: ignore[union-attr]
    assert published["queue_id"] == str(complaints.id) and published["language"] == MANDARIN

    await phone.hang_up(50)
    await drain()
    call = await phone.row()
    assert (call.status, call.disposition, call.callback_requested) == (
        CallStatus.ENDED,
        "callback",
        True,
    )
    await floor.ready("li")  # the caller is not on the line: not offered to an agent
    assert await floor.state("li") == (AgentStatus.READY, None)


# -- the agent's number and the survey ------------------------------------------------------------
async def test_the_caller_hears_the_agents_number_and_rates_the_call(
    center: Center, floor: Floor, db: Database
) -> None:
    await center.configure(survey_enabled=True)
    li = await center.agent("li")
    assert li.agent_number == "1002"  # numbered as they signed in: sara 1001, li 1002 ...
    await floor.ready("li")
    phone = center.phone()
    await phone.to_queue("2", "2")  # Cantonese, pickup: offered to li
    assert [c["command"] for c in await hold_on(phone)] == ["pause"]  # li's phone rings
    call = await phone.row()
    await accept(floor, "li", call.id)
    assert spoken(await hold_on(phone)) == [("工號1002為你服務。", CANTONESE)]
    assert spoken(await hold_on(phone)) == []  # once
    assert (await phone.row()).agent_number == "1002"

    await floor.run(service.agent_hangs_up, floor.agents["li"], call.id)
    survey = await hold_on(phone)
    gather = survey[0]
    assert gather["command"] == "gather" and gather["num_digits"] == 1
    assert (gather["prompt"]["text"], gather["prompt"]["language"]) == (
        waiting.SURVEY[CANTONESE],
        CANTONESE,
    )
    thanks = await phone.press("1")
    assert spoken(thanks) == [(waiting.SURVEY_THANKS[CANTONESE], CANTONESE)]
    assert (await phone.row()).survey_score == 1
    assert [c["command"] for c in await hold_on(phone)] == ["hangup"]  # asked once


async def test_without_the_survey_the_call_just_ends(center: Center, floor: Floor) -> None:
    await floor.ready("wong")
    phone = center.phone()
    await phone.to_queue("3", "2")
    call = await phone.row()
    await accept(floor, "wong", call.id)
    await floor.run(service.agent_hangs_up, floor.agents["wong"], call.id)
    assert [c["command"] for c in await hold_on(phone)] == ["hangup"]
    assert (await phone.row()).survey_score is None


# -- VIP by customer tier -------------------------------------------------------------------------
async def test_a_customer_of_the_vip_tier_is_a_vip(
    center: Center, floor: Floor, db: Database
) -> None:
    await center.queue("VIP", "li")
    admin = await principal(db, "admin@swiftfreight.test", floor.tenant_id)
    vip = "+8613911112222"
    data = CustomerIn(name="Ms Gold", phones=[vip], tier="vip")
    await floor.run(customers.create_customer, admin, data)
    phone = center.phone(vip)
    await phone.dial()
    straight = await phone.press("3")  # no main menu for a VIP
    assert spoken(straight) == [prompt("vip", ENGLISH)]
    assert (await phone.row()).priority == service.VIP_PRIORITY
    ordinary = center.phone("+8613911113333")
    await ordinary.dial()
    assert spoken(await ordinary.press("3")) == [prompt("main", ENGLISH)]


# -- the simulated carrier holds on ---------------------------------------------------------------
async def test_the_simulated_carrier_holds_on_in_the_queue(
    center: Center, floor: Floor, db: Database
) -> None:
    carrier = await SimulatedCarrier.for_number(db, center.providers, NUMBER)
    transcript = await carrier.call("+8613800138000", "32", 5)  # English, pickup; nobody ready
    assert "(waits in queue Pickup)" in transcript.lines
    assert "You are number 1 in line." in transcript.heard
    assert "(on hold)" in transcript.lines  # asked again after the hold
