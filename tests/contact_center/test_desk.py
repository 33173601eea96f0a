"""The agent desk's rules, without HTTP: declining, hold, transfers, three-way calls, wrap-up
codes, the tenant's codes, the screen pop (and its audit), and the pushes that reach desks.

What the carrier is told goes through the outbox; `drain` runs the worker, and the simulated
network's log of the call shows what it carried out."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any
from uuid import uuid4

import pytest
from redis.asyncio import Redis

from contact_center import desk, service, voice
from contact_center.models import AgentStatus, Call, CallStatus, DeskCodeKind, Queue
from contact_center.repository import ContactCenterRepository
from customers import service as customers
from customers.models import Customer
from customers.schemas import AddressIn, CustomerIn
from depotline import realtime
from depotline.auth import Principal
from depotline.config import Settings
from depotline.db import Database, tenant_scope, utcnow
from depotline.errors import Conflict, InvalidInput, NotFound
from telephony_gateway.providers.registry import Providers
from telephony_gateway.providers.simulator import call_control_log
from tenant.repository import TenantRepository
from tests.contact_center.conftest import Floor
from tests.telephony_gateway.conftest import CALLER, NUMBER, Drain, Line
from tests.telephony_gateway.conftest import line as line
from tests.tenant.conftest import Demo
from tests.tenant.test_seats import principal, take

#: What the demo IVR recorded for a caller who chose English (3), then pickup (2).
IVR_PATH: dict[str, Any] = {
    "path": [["language", "3"], ["hours", None], ["tier", None], ["main", "2"], ["pickup", None]],
    "variables": {"order_number": "123456789"},
}


@pytest.fixture
async def redis(redis_url: str, clean_redis: None) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
def providers(settings: Settings, redis: Redis) -> Providers:
    """The carriers as the app has them: the simulated network keeps its calls in Redis."""
    return Providers(settings.session_secret(), settings.public_url, redis, voice.answer)


async def place(floor: Floor, *, queue: Queue | None = None, caller: str = CALLER) -> Call:
    """A caller who went through the IVR joins the queue (and is offered if someone is free)."""
    with tenant_scope(floor.tenant_id):
        async with floor.db.session() as session:
            call = Call(
                provider="simulator",
                provider_call_id=f"SIMCALL{uuid4().hex}",
                from_number=caller,
                to_number=NUMBER,
                language="en-US",
                ivr_path=IVR_PATH,
            )
            session.add(call)
            await session.flush()
            await service.enqueue(session, call, queue or floor.queue)
    return await floor.call_row(call.id)


async def on_call(floor: Floor, agent: str, **placed: Any) -> Call:
    """`agent` (ready) is offered a new call and accepts it at the desk."""
    await floor.ready(agent)
    call = await place(floor, **placed)
    assert call.agent_id == floor.agents[agent], "the call went to someone else"
    await floor.run(desk.accept, floor.agents[agent], call.id)
    return await floor.call_row(call.id)


async def carrier_did(redis: Redis, call: Call) -> list[str]:
    return [entry["command"] for entry in await call_control_log(redis, call.provider_call_id)]


async def on_seat(db: Database, world: Demo, floor: Floor, email: str) -> Principal:
    """An operator's agent on a seat of the floor's tenant (SwiftFreight)."""
    home = await principal(db, email, floor.operator_id)
    seat = await take(db, email, world)
    return dataclasses.replace(
        home, acting_tenant_id=floor.tenant_id, seat_session_id=seat.id, role="agent"
    )


# -- offers -------------------------------------------------------------------------------------
async def test_a_declined_call_goes_to_the_next_agent_and_the_decliner_is_not_ready(
    floor: Floor,
) -> None:
    await floor.ready("sara")
    await floor.ready("li")
    call = await place(floor)
    assert call.agent_id == floor.agents["sara"]  # ready the longest

    await floor.run(desk.decline, floor.agents["sara"], call.id)

    assert (await floor.call_row(call.id)).agent_id == floor.agents["li"]
    assert await floor.state("sara") == (AgentStatus.NOT_READY, None)
    assert await floor.state("li") == (AgentStatus.RESERVED, call.id)
    with pytest.raises(Conflict):  # it is not offered to sara any more
        await floor.run(desk.decline, floor.agents["sara"], call.id)


# -- call controls --------------------------------------------------------------------------------
async def test_hold_and_resume_reach_the_carrier_and_count_the_time_on_hold(
    floor: Floor, line: Line, providers: Providers, redis: Redis
) -> None:
    call = await on_call(floor, "li")
    li = floor.agents["li"]
    await floor.run(desk.hold, providers, li, call.id)
    with pytest.raises(Conflict):
        await floor.run(desk.hold, providers, li, call.id)
    # Thirty seconds on hold, without waiting for them.
    with tenant_scope(floor.tenant_id):
        async with floor.db.session() as session:
            held = await ContactCenterRepository(session).get_call(call.id, lock=True)
            assert held is not None and held.held_since is not None
            held.held_since -= timedelta(seconds=30)
            session.add(held)
    await floor.run(desk.resume, providers, li, call.id)

    resumed = await floor.call_row(call.id)
    assert resumed.held_since is None and 30 <= resumed.hold_seconds <= 32
    assert await carrier_did(redis, call) == ["hold", "connect_agent"]
    with pytest.raises(Conflict):  # not on that call
        await floor.run(desk.hold, providers, floor.agents["wong"], call.id)


async def test_a_transfer_to_a_queue_carries_the_ivr_path_the_caller_and_a_note(
    floor: Floor, line: Line, providers: Providers, redis: Redis, db: Database
) -> None:
    complaints = await floor.run(service.create_queue, "Complaints", wrap_up_seconds=30)
    assert isinstance(complaints, Queue)
    await floor.run(service.set_skill, floor.agents["wong"], complaints.id)
    call = await on_call(floor, "li")
    await floor.ready("wong")
    first_answer = call.answered_at
    assert first_answer is not None

    await floor.run(
        desk.transfer_to_queue,
        providers,
        floor.agents["li"],
        call.id,
        complaints.id,
        "Parcel damaged",
    )

    assert (await floor.state("li"))[0] == AgentStatus.WRAP_UP
    moved = await floor.call_row(call.id)
    assert moved.queue_id == complaints.id and moved.agent_id == floor.agents["wong"]
    assert moved.legs[0]["agent_id"] == str(floor.agents["li"])
    wong = await principal(db, "agent2@callpro.test", floor.operator_id)
    wong = dataclasses.replace(wong, acting_tenant_id=floor.tenant_id)
    pop = await floor.run(desk.screen_pop, wong, call.id)
    assert isinstance(pop, desk.ScreenPop)
    assert pop.transferred_by == "Agent Li Na" and pop.transfer_note == "Parcel damaged"
    assert [s.keys for s in pop.ivr_steps if s.keys] == ["3", "2"]
    assert pop.ivr_values == {"order_number": "123456789"} and pop.queue_name == "Complaints"
    assert pop.caller.number == CALLER

    await floor.run(desk.accept, floor.agents["wong"], call.id)
    answered = await floor.call_row(call.id)
    assert answered.answered_at == first_answer  # the caller was answered once, by li
    assert answered.agent_answered_at is not None and answered.agent_answered_at > first_answer
    # li closes their part with a code; wong hangs up and closes the call.
    await floor.run(desk.wrap_up, floor.agents["li"], call.id, "Complaint filed", "passed on")
    assert (await floor.state("li"))[0] == AgentStatus.READY
    await floor.run(desk.hang_up, providers, floor.agents["wong"], call.id)
    await floor.run(desk.wrap_up, floor.agents["wong"], call.id, "Resolved")

    done = await floor.call_row(call.id)
    assert (done.status, done.wrap_up_code) == (CallStatus.ENDED, "Resolved")
    assert done.legs[0]["wrap_up_code"] == "Complaint filed"
    assert await carrier_did(redis, call) == ["enqueue", "hangup"]


async def test_a_transfer_to_a_named_agent_falls_back_to_the_queue_if_they_decline(
    floor: Floor, line: Line, providers: Providers
) -> None:
    call = await on_call(floor, "li")
    li, wong = floor.agents["li"], floor.agents["wong"]
    with pytest.raises(Conflict) as busy:
        await floor.run(desk.transfer_to_agent, providers, li, call.id, wong)  # wong is not ready
    assert busy.value.field == "agent_id"
    with pytest.raises(InvalidInput):
        await floor.run(desk.transfer_to_agent, providers, li, call.id, li)

    await floor.ready("wong")
    await floor.run(desk.transfer_to_agent, providers, li, call.id, wong, "VIP, be nice")
    assert await floor.state("wong") == (AgentStatus.RESERVED, call.id)
    await floor.ready("sara")
    await floor.run(desk.decline, wong, call.id)

    back = await floor.call_row(call.id)
    assert back.agent_id == floor.agents["sara"] and back.status == CallStatus.OFFERED


async def test_a_three_way_call_dials_the_third_party_into_a_conference(
    floor: Floor, line: Line, providers: Providers, redis: Redis
) -> None:
    call = await on_call(floor, "li")
    with pytest.raises(InvalidInput) as bad:
        await floor.run(desk.conference, providers, floor.agents["li"], call.id, "not a number")
    assert bad.value.field == "number"

    await floor.run(desk.conference, providers, floor.agents["li"], call.id, "020 8888 0002")
    with pytest.raises(Conflict):
        await floor.run(desk.conference, providers, floor.agents["li"], call.id, "020 8888 0003")

    assert (await floor.call_row(call.id)).conference_with == "+862088880002"
    log = await call_control_log(redis, call.provider_call_id)
    assert [e["command"] for e in log] == ["conference", "place_call"]
    assert log[1]["to_number"] == "+862088880002" and log[0]["room"] == f"call-{call.id}"


# -- wrap-up --------------------------------------------------------------------------------------
async def test_a_wrap_up_code_ends_wrap_up_and_the_next_caller_is_offered_at_once(
    floor: Floor, line: Line, providers: Providers
) -> None:
    call = await on_call(floor, "li")
    with pytest.raises(Conflict):
        await floor.run(desk.wrap_up, floor.agents["li"], call.id, "Resolved")  # still talking
    await floor.run(desk.hang_up, providers, floor.agents["li"], call.id)
    assert (await floor.state("li"))[0] == AgentStatus.WRAP_UP
    waiting = await place(floor)  # nobody is free
    assert waiting.status == CallStatus.QUEUED

    with pytest.raises(InvalidInput) as bad:
        await floor.run(desk.wrap_up, floor.agents["li"], call.id, "Made up", "")
    assert bad.value.field == "code"
    with pytest.raises(NotFound):  # not wong's call
        await floor.run(desk.wrap_up, floor.agents["wong"], call.id, "Resolved")
    await floor.run(desk.wrap_up, floor.agents["li"], call.id, "Pickup booked", "Friday 9-12")

    wrapped = await floor.call_row(call.id)
    assert (wrapped.wrap_up_code, wrapped.wrap_up_notes) == ("Pickup booked", "Friday 9-12")
    assert await floor.state("li") == (AgentStatus.RESERVED, waiting.id)


async def test_a_tenants_own_codes_replace_the_defaults(floor: Floor, db: Database) -> None:
    admin = await principal(db, "admin@swiftfreight.test", floor.tenant_id)
    li = floor.agents["li"]
    await floor.run(desk.add_code, admin, "not_ready", "  Team   huddle ")
    with pytest.raises(Conflict):
        await floor.run(desk.add_code, admin, "not_ready", "Team huddle")
    with pytest.raises(InvalidInput) as bad:
        await floor.run(desk.add_code, admin, "coffee", "Espresso")
    assert bad.value.field == "kind"

    with pytest.raises(InvalidInput) as refused:
        await floor.run(desk.change_status, li, floor.operator_id, "not_ready", "Break")
    assert refused.value.field == "reason"
    await floor.run(desk.change_status, li, floor.operator_id, "not_ready", "Team huddle")
    assert (await floor.state("li"))[0] == AgentStatus.NOT_READY

    own = await floor.run(desk.own_codes, DeskCodeKind.NOT_READY)
    assert isinstance(own, list | tuple) and [c.label for c in own] == ["Team huddle"]
    await floor.run(desk.retire_code, admin, own[0].id)
    labels = await floor.run(desk.code_labels, DeskCodeKind.NOT_READY)
    assert labels == list(desk.DEFAULT_CODES[DeskCodeKind.NOT_READY])


# -- the screen pop -------------------------------------------------------------------------------
async def test_the_screen_pop_of_a_known_caller_shows_the_profile_and_is_audited_for_operators(
    floor: Floor, db: Database, world: Demo
) -> None:
    admin = await principal(db, "admin@swiftfreight.test", floor.tenant_id)
    customer = await floor.run(
        customers.create_customer,
        admin,
        CustomerIn(
            name="Wang Fang",
            phones=[CALLER],
            tier="vip",
            addresses=[AddressIn(label="Home", line1="1 Tianhe Road", city="Guangzhou")],
        ),
    )
    assert isinstance(customer, Customer)
    for n, summary in enumerate(("Pickup booked for Friday", "Asked about parcel SF123")):
        await floor.run(
            customers.record_contact,
            kind="order" if n == 0 else "call",
            ref=f"ref-{n}",
            summary=summary,
            direction="inbound",
            at=utcnow() - timedelta(days=2 - n),
            phone=CALLER,
        )
    li = await on_seat(db, world, floor, "agent1@callpro.test")
    call = await on_call(floor, "li")

    pop = await floor.run(desk.screen_pop, li, call.id, language="en", ip="10.0.0.7")
    assert isinstance(pop, desk.ScreenPop)
    assert pop.caller.name == "Wang Fang" and pop.caller.is_vip
    assert [c.summary for c in pop.caller.recent] == [
        "Asked about parcel SF123",
        "Pickup booked for Friday",
    ]
    assert pop.caller.addresses[0].city == "Guangzhou" and pop.tenant_name == "SwiftFreight"

    # Read by an operator's agent: on the client's record. Read by the client's own: not.
    sara = await principal(db, "admin@swiftfreight.test", floor.tenant_id)
    await floor.run(desk.screen_pop, sara, call.id)
    with tenant_scope(floor.tenant_id):
        async with db.session() as session:
            reads = await TenantRepository(session).audit_entries(action="customer_data.read")
    assert [(r.actor_user_id, r.record_id, r.ip) for r in reads] == [
        (floor.agents["li"], str(customer.id), "10.0.0.7")
    ]


async def test_the_screen_pop_of_an_unknown_caller_shows_region_and_carrier(
    floor: Floor, db: Database
) -> None:
    call = await on_call(floor, "sara", caller="+8613912345678")
    sara = await principal(db, "admin@swiftfreight.test", floor.tenant_id)
    pop = await floor.run(desk.screen_pop, sara, call.id, language="zh_Hans")
    assert isinstance(pop, desk.ScreenPop)
    card = pop.caller
    assert (card.customer_id, card.number) == (None, "+8613912345678")
    assert (card.region, card.carrier) == ("江苏省常州市", "中国移动")


async def test_no_screen_pop_for_an_agent_who_has_nothing_to_do_with_the_call(
    floor: Floor, db: Database, world: Demo
) -> None:
    call = await on_call(floor, "li")
    wong = dataclasses.replace(
        await principal(db, "agent2@callpro.test", floor.operator_id),
        acting_tenant_id=floor.tenant_id,
    )
    with pytest.raises(NotFound):
        await floor.run(desk.screen_pop, wong, call.id)
    # Under another tenant's scope the call does not exist at all.
    harbour = dataclasses.replace(wong, acting_tenant_id=world.tenants["harbour"])
    with tenant_scope(world.tenants["harbour"]), pytest.raises(NotFound):
        async with db.session() as session:
            await desk.screen_pop(session, harbour, call.id)


# -- pushes ---------------------------------------------------------------------------------------
async def test_offers_and_state_changes_reach_the_agent_and_the_floor_once_committed(
    floor: Floor, settings: Settings, redis: Redis, drain: Drain
) -> None:
    announced = Database(settings.app_url, pool_size=2)
    realtime.announce_commits(announced, redis)
    live = dataclasses.replace(floor, db=announced)
    li = floor.agents["li"]
    agent, room = realtime.agent_channel(li), realtime.floor_channel(floor.tenant_id)
    try:
        await live.ready("li")
        call = await place(live)
        await live.run(desk.decline, li, call.id)
        await realtime.flush_pending()
    finally:
        await announced.dispose()

    events = await realtime.read(redis, {agent: "0-0", room: "0-0"})
    mine = [
        (e.event, str(e.data.get("status") or e.data.get("reason")))
        for e in events
        if e.channel == agent
    ]
    assert mine[0] == ("status", "ready")
    # In one transaction the order of the rows' events is the flush's: compare as sets.
    assert sorted(mine[1:3]) == [("offer", "None"), ("status", "reserved")]
    assert sorted(mine[3:]) == [("offer_withdrawn", "declined"), ("status", "not_ready")]
    offer = next(e for e in events if e.event == "offer")
    assert offer.data["call_id"] == str(call.id) and "from_number" not in offer.data
    calls = [e.data["state"] for e in events if e.channel == room and e.event == "call"]
    assert calls == ["ivr", "queued", "offered", "queued"]
    agents = [e.data["status"] for e in events if e.channel == room and e.event == "agent"]
    assert agents == ["ready", "reserved", "not_ready"]
    # The OFFERED outbox handler pushes the same offer: still one offer on the channel.
    await drain()
    again = await realtime.read(redis, {agent: "0-0"})
    assert [e.event for e in again].count("offer") == 1
