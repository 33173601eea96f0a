"""The supervisor console: today's figures per queue (DOMAIN.md's formulas, on a scripted day
of calls with explicit timestamps), agents' states, forcing an agent ready / not ready /
signed out (also on a call and while being offered one), listening, whispering and barging
through the simulator, who may do any of it, and the page's contract."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from contact_center import service, supervision, wallboard
from contact_center.models import AgentStatus, Call, ContactCenterSettings
from contact_center.repository import ContactCenterRepository
from depotline.config import Settings
from depotline.db import Database, tenant_scope, utcnow
from depotline.errors import Conflict, InvalidInput
from telephony_gateway.providers.simulator import call_legs
from tenant import service as tenant_service
from tenant.repository import TenantRepository
from tests.contact_center.conftest import Floor
from tests.telephony_gateway.conftest import CALLER, NUMBER, Line
from tests.telephony_gateway.conftest import line as line
from tests.tenant.conftest import Demo, MakeClient, csrf_of, sign_in
from tests.tenant.conftest import make_client as make_client
from tests.tenant.test_seats import principal

#: 10:00 in Shanghai; the local day began at 2026-11-24 16:00 UTC.
NOW = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
SUPERVISOR = "admin@swiftfreight.test"  # SwiftFreight's tenant admin runs its floor
FIGURES = (
    "waiting",
    "longest_wait",
    "offered",
    "answered",
    "abandoned",
    "answer_rate",
    "answered_15s",
)


async def stamp(floor: Floor, call_id: UUID, **moments: datetime) -> None:
    """Give a call the moments of the script (the service stamped them with the real clock)."""
    with tenant_scope(floor.tenant_id):
        async with floor.db.session() as session:
            call = await ContactCenterRepository(session).get_call(call_id, lock=True)
            assert call is not None
            for name, moment in moments.items():
                setattr(call, name, moment)
            session.add(call)


async def answered_by(floor: Floor, agent: str) -> UUID:
    """The agent goes ready, is offered the next call and answers it."""
    await floor.ready(agent)
    call = await floor.call()
    assert await floor.state(agent) == (AgentStatus.RESERVED, call)
    await floor.run(service.accept, floor.agents[agent], call)
    return call


async def set_zone(floor: Floor, zone: str) -> None:
    with tenant_scope(floor.tenant_id):
        async with floor.db.session() as session:
            session.add(ContactCenterSettings(business_hours={"time_zone": zone, "weekly": {}}))


async def figures_at(floor: Floor, now: datetime) -> wallboard.Floor:
    found = await floor.run(wallboard.floor, now)
    assert isinstance(found, wallboard.Floor)
    return found


async def test_queue_figures_follow_domain_formulas_for_the_local_day(floor: Floor) -> None:
    """Seven calls with hand-set moments (seconds after entering the queue):

    a: queued 01:00 local, answered at 10 s, talked 60 s    (today in Shanghai, not in UTC)
    g: queued 23:50 local yesterday, answered at 5 s         (yesterday: not counted)
    b: answered at exactly 15 s, talked 120 s                (within 15 s)
    c: answered at 40 s, still talking                       (late; no talk time yet)
    d: caller hung up after 30 s in the queue                (abandoned)
    e, f: waiting 90 s and 20 s now
    """
    a = await answered_by(floor, "li")
    await floor.run(service.agent_hangs_up, floor.agents["li"], a)
    g = await answered_by(floor, "li")
    await floor.run(service.agent_hangs_up, floor.agents["li"], g)
    b = await answered_by(floor, "wong")
    await floor.run(service.caller_hangs_up, b)
    c = await answered_by(floor, "sara")
    d = await floor.call()  # li and wong wrap up, sara talks: nobody is free
    await floor.run(service.caller_hangs_up, d)
    e, f = await floor.call(), await floor.call()

    s = timedelta(seconds=1)
    a_in = datetime(2026, 11, 24, 17, 0, tzinfo=UTC)
    g_in = datetime(2026, 11, 24, 15, 50, tzinfo=UTC)
    b_in = NOW - timedelta(hours=2)
    await stamp(floor, a, queued_at=a_in, answered_at=a_in + 10 * s, ended_at=a_in + 70 * s)
    await stamp(floor, g, queued_at=g_in, answered_at=g_in + 5 * s, ended_at=g_in + 65 * s)
    await stamp(floor, b, queued_at=b_in, answered_at=b_in + 15 * s, ended_at=b_in + 135 * s)
    await stamp(floor, c, queued_at=NOW - 100 * s, answered_at=NOW - 60 * s)
    await stamp(floor, d, queued_at=NOW - 50 * s, ended_at=NOW - 20 * s)
    await stamp(floor, e, queued_at=NOW - 90 * s)
    await stamp(floor, f, queued_at=NOW - 20 * s)
    await floor.run(service.create_queue, "Complaints")

    # Without a zone of its own the tenant's day is UTC's: a and g are yesterday's.
    in_utc = await figures_at(floor, NOW)
    pickup = next(q for q in in_utc.queues if q.name == "Pickup")
    assert (in_utc.time_zone, pickup.offered, pickup.answered, pickup.answered_in_time) == (
        "UTC",
        5,
        2,
        1,
    )

    await set_zone(floor, "Asia/Shanghai")
    board = await figures_at(floor, NOW)
    assert (board.day, board.time_zone, board.local_time) == (
        date(2026, 11, 25),
        "Asia/Shanghai",
        "10:00:00",
    )
    complaints, pickup = board.queues  # by name
    assert (pickup.waiting, pickup.ringing, pickup.longest_wait_seconds) == (2, 0, 90)
    # Offered a b c d e f; answered a b c; abandoned d; within 15 s a (10 s) and b (15 s).
    assert (pickup.offered, pickup.answered, pickup.abandoned) == (6, 3, 1)
    assert pickup.answered_in_time == 2 and pickup.threshold_seconds == 15
    assert pickup.answer_rate == 3 / 6
    assert pickup.abandonment_rate == pytest.approx(1 / 6)
    assert pickup.service_level == pytest.approx(2 / 6)
    assert pickup.average_wait_seconds == pytest.approx((10 + 15 + 40) / 3)  # ASA
    assert pickup.average_talk_seconds == pytest.approx((60 + 120) / 2)  # c still talks
    # A queue without calls has no rates at all rather than 0 %.
    assert (complaints.name, complaints.offered, complaints.answer_rate) == ("Complaints", 0, None)
    assert complaints.service_level is None and complaints.average_wait_seconds is None

    agents = {row.email: row for row in board.agents}
    sara = agents["admin@swiftfreight.test"]
    assert sara.status == AgentStatus.ON_CALL and sara.current_call is not None
    assert (sara.current_call.call_id, sara.current_call.queue) == (c, "Pickup")
    assert sara.current_call.seconds == 60 and sara.calls_handled_today == 1
    li, wong = agents["agent1@callpro.test"], agents["agent2@callpro.test"]
    assert li.calls_handled_today == 1  # a; g was answered yesterday
    assert (wong.status, wong.calls_handled_today, wong.current_call) == (
        AgentStatus.WRAP_UP,
        1,
        None,
    )
    sam = agents["agent3@callpro.test"]
    assert (sam.status, sam.reason, sam.calls_handled_today) == (
        AgentStatus.NOT_READY,
        "signed in",
        0,
    )
    at_shift_start = await figures_at(floor, NOW + timedelta(hours=15))  # 01:00 the next day
    # Past midnight the day starts afresh; e and f, still waiting, are waiting all the same.
    pickup = next(q for q in at_shift_start.queues if q.name == "Pickup")
    assert (pickup.offered, pickup.waiting, pickup.longest_wait_seconds) == (0, 2, 15 * 3600 + 90)


async def test_forcing_states_as_an_acd_does(floor: Floor, db: Database) -> None:
    boss = await principal(db, SUPERVISOR, floor.tenant_id)
    li, wong = floor.agents["li"], floor.agents["wong"]

    async def force(user_id: UUID, status: str, reason: str | None = None) -> Any:
        return await floor.run(supervision.force_state, boss, user_id, status, reason)

    await floor.ready("li")
    done = await force(li, "not_ready", "Coaching")
    assert done.applied and await floor.state("li") == (AgentStatus.NOT_READY, None)
    for unheard_of in ("  ", "Gossip"):  # a reason is one of the tenant's not ready reasons
        with pytest.raises(InvalidInput) as no_reason:
            await force(li, "not_ready", unheard_of)
        assert no_reason.value.field == "reason"
    with pytest.raises(InvalidInput) as not_forceable:
        await force(li, "on_call")
    assert not_forceable.value.field == "status"

    # Forced ready, li takes the waiting call at once.
    waiting = await floor.call()
    assert (await force(li, "ready")).offers == [service.Offer(waiting, li)]
    assert await floor.state("li") == (AgentStatus.RESERVED, waiting)

    # Signed out while the call rings: the offer is withdrawn and the call goes to wong.
    await floor.ready("wong")
    out = await force(li, "signed_out")
    assert out.applied and out.offers == [service.Offer(waiting, wong)]
    assert await floor.state("li") == (AgentStatus.SIGNED_OUT, None)
    assert await floor.state("wong") == (AgentStatus.RESERVED, waiting)
    with tenant_scope(floor.tenant_id):
        async with db.session() as session:
            offers = await ContactCenterRepository(session).offers()
    assert [(o.agent_id, o.outcome) for o in offers] == [(li, "withdrawn"), (wong, None)]

    # On a call, not ready and sign out wait for the call to end; ready cancels them.
    await floor.run(service.accept, wong, waiting)
    pending = await force(wong, "signed_out")
    assert not pending.applied and await floor.state("wong") == (AgentStatus.ON_CALL, waiting)
    await force(wong, "ready")
    assert (await wallboard_row(floor, "agent2@callpro.test")).pending_status is None
    await force(wong, "not_ready", "Meeting")
    row = await wallboard_row(floor, "agent2@callpro.test")
    assert (row.status, row.pending_status, row.pending_reason) == (
        AgentStatus.ON_CALL,
        AgentStatus.NOT_READY,
        "Meeting",
    )
    await floor.run(service.caller_hangs_up, waiting)  # not wrap-up: the pending change
    row = await wallboard_row(floor, "agent2@callpro.test")
    assert (row.status, row.reason, row.pending_status) == (
        AgentStatus.NOT_READY,
        "Meeting",
        None,
    )

    # A signed-out agent is not at the desk: a supervisor cannot make them ready.
    with pytest.raises(Conflict, match="signed out"):
        await force(li, "ready")
    with tenant_scope(floor.tenant_id):
        async with db.session() as session:
            logged = await TenantRepository(session).audit_entries(action="agent.force_")
    assert [(e.action, e.record_id, e.detail["applied"]) for e in reversed(logged)] == [
        ("agent.force_not_ready", str(li), "now"),
        ("agent.force_ready", str(li), "now"),
        ("agent.force_signed_out", str(li), "now"),
        ("agent.force_signed_out", str(wong), "after the call"),
        ("agent.force_ready", str(wong), "after the call"),
        ("agent.force_not_ready", str(wong), "after the call"),
    ]
    assert {e.actor_user_id for e in logged} == {boss.user_id}


async def wallboard_row(floor: Floor, email: str) -> wallboard.AgentRow:
    board = await figures_at(floor, utcnow())
    return next(row for row in board.agents if row.email == email)


# -- over HTTP: the page, the actions, the simulator ----------------------------------------------
def row_of(page: str, attribute: str, value: str) -> str:
    found = re.search(rf'<tr {attribute}="{re.escape(value)}"[^>]*>(.*?)</tr>', page, re.S)
    assert found, f"no row {attribute}={value}"
    return found.group(1)


def figure(row: str, name: str) -> str:
    """The text of the element marked data-figure=name (a cell, or a span in one)."""
    found = re.search(rf'<(td|span)[^>]*data-figure="{name}"[^>]*>(.*?)</\1>', row, re.S)
    assert found, f"no figure {name}"
    return re.sub(r"<[^>]+>", "", found.group(2)).strip()


def noon_zone() -> str:
    """A zone where it is around noon now, so "today" cannot roll over during the test."""
    offset = 12 - utcnow().hour  # -11 .. +12
    return f"Etc/GMT{-offset:+d}" if offset else "UTC"  # POSIX signs are inverted


async def test_console_page_shows_the_contract_and_acts(
    client: AsyncTestClient[Litestar], floor: Floor
) -> None:
    await set_zone(floor, noon_zone())
    on_call = await answered_by(floor, "li")
    await stamp(floor, on_call, queued_at=utcnow() - timedelta(seconds=12))
    await floor.call()  # waits: nobody else is ready
    await floor.ready("wong")  # takes it: ringing
    waiting = await floor.call()
    await stamp(floor, waiting, queued_at=utcnow() - timedelta(seconds=75))

    await sign_in(client, SUPERVISOR)
    page = (await client.get("/contact-center/console")).text
    assert 'href="/contact-center/console" aria-current="page"' in page  # the nav link
    pickup = row_of(page, "data-queue", "Pickup")
    shown = {name: figure(pickup, name) for name in FIGURES}
    assert shown.pop("longest_wait") in ("1:15", "1:16")  # 75 s ago, and the page took a moment
    assert shown == {
        "waiting": "1",
        "offered": "3",
        "answered": "1",
        "abandoned": "0",
        "answer_rate": "33%",
        "answered_15s": "33%",
    }
    li = row_of(page, "data-agent", "agent1@callpro.test")
    assert "On call" in figure(li, "state") and re.match(r"0:0\d", figure(li, "time_in_state"))
    assert "+8613800138000 · Pickup" in figure(li, "current_call")
    assert "Reserved" in figure(row_of(page, "data-agent", "agent2@callpro.test"), "state")
    assert "Not ready" in figure(row_of(page, "data-agent", "agent3@callpro.test"), "state")
    sam_id = floor.agents["sam"]
    assert f'action="/contact-center/console/agents/{sam_id}/state"' in page
    assert page.count('name="_csrf"') >= 4 * len(floor.agents)
    assert 'data-chart-queue="Pickup"' in page and "<svg" in page
    assert '<script src="/static/console.js" defer>' in page

    csrf = await csrf_of(client, "/contact-center/console")
    ready = await client.post(
        f"/contact-center/console/agents/{sam_id}/state", data={"_csrf": csrf, "state": "ready"}
    )
    assert "The agent is ready" in ready.text
    assert "Ready" in figure(row_of(ready.text, "data-agent", "agent3@callpro.test"), "state")
    li_id = floor.agents["li"]
    later = await client.post(
        f"/contact-center/console/agents/{li_id}/state",
        data={"_csrf": csrf, "state": "not_ready", "reason": "Coaching"},
    )
    assert "The agent will be not ready when this call ends" in later.text
    state = figure(row_of(later.text, "data-agent", "agent1@callpro.test"), "state")
    assert "On call" in state and "after this call: Not ready" in state
    blank = await client.post(
        f"/contact-center/console/agents/{sam_id}/state",
        data={"_csrf": csrf, "state": "not_ready", "reason": ""},
    )
    assert "Say why the agent is not ready" in blank.text

    # The same figures as JSON, for console.js.
    api = (await client.get("/api/v1/contact-center/floor")).json()
    queue = next(q for q in api["queues"] if q["name"] == "Pickup")
    assert (queue["waiting"], queue["offered"], queue["answered_in_time"]) == (1, 3, 1)
    assert queue["service_level"] == pytest.approx(1 / 3)
    assert {a["email"]: a["status"] for a in api["agents"]}["agent1@callpro.test"] == "on_call"

    chinese = (await client.get("/contact-center/console", params={"lang": "zh-Hans"})).text
    assert "主管控制台" in chinese and "通话中" in chinese and "强制签出" in chinese
    assert "本通话结束后: 未就绪" in chinese  # li's pending change, in words
    traditional = (await client.get("/contact-center/console", params={"lang": "zh-Hant"})).text
    assert "通話中" in traditional and "強制簽出" in traditional and "接聽率" in traditional


async def test_listen_whisper_barge_are_carried_out_by_the_simulator(
    client: AsyncTestClient[Litestar], floor: Floor, line: Line, settings: Settings, db: Database
) -> None:
    await sign_in(client, SUPERVISOR)
    csrf = await csrf_of(client, "/simulator")
    await floor.ready("li")
    # The supervisor plays the caller on the simulator console: English, then pickup.
    await client.post("/simulator/dial", data={"_csrf": csrf, "caller": CALLER, "number": NUMBER})
    for key in ("3", "2"):
        await client.post(
            "/simulator/digits", data={"_csrf": csrf, "caller": CALLER, "digits": key}
        )
    li = floor.agents["li"]
    status, call_id = await floor.state("li")
    assert status == AgentStatus.RESERVED and call_id is not None
    console = f"/contact-center/console/agents/{li}/monitor"
    refused = await client.post(console, data={"_csrf": csrf, "mode": "listen"})
    assert "That agent is not on a call" in refused.text  # ringing, not talking yet
    await floor.run(service.accept, li, call_id)
    carrier_call = (await floor.call_row(call_id)).provider_call_id

    redis = Redis.from_url(settings.required_redis_url)
    try:
        legs = []
        for mode, said in (
            ("listen", "You are listening to the call"),
            ("whisper", "You are whispering to the agent"),
            ("barge", "You have joined the call"),
        ):
            done = await client.post(console, data={"_csrf": csrf, "mode": mode})
            assert said in done.text
            legs.append(await call_legs(redis, carrier_call))
    finally:
        await redis.aclose()
    # One supervisor leg on the call, switching mode as asked.
    assert [[(leg["endpoint"], leg["mode"]) for leg in found] for found in legs] == [
        [("client:admin@swiftfreight.test", mode)] for mode in ("listen", "whisper", "barge")
    ]
    assert len({found[0]["leg_id"] for found in legs}) == 1
    simulator = (await client.get("/simulator")).text
    assert "client:admin@swiftfreight.test · Barge" in simulator  # the caller's console sees it

    wrong = await client.post(console, data={"_csrf": csrf, "mode": "spy"})
    assert "Listen, whisper or barge" in wrong.text
    with tenant_scope(floor.tenant_id):
        async with db.session() as session:
            logged = await TenantRepository(session).audit_entries(action="call.")
    assert [(e.action, e.record_id, e.detail["agent"]) for e in reversed(logged)] == [
        (f"call.{mode}", str(call_id), str(li)) for mode in ("listen", "whisper", "barge")
    ]


async def test_only_the_tenants_supervisors_and_admins_use_the_console(
    client: AsyncTestClient[Litestar],
    make_client: MakeClient,
    floor: Floor,
    db: Database,
    world: Demo,
) -> None:
    sara, li = floor.agents["sara"], floor.agents["li"]
    swift = str(floor.tenant_id)
    # An agent, at home or on a client's seat, gets neither the console nor its actions.
    agent = await make_client()
    await sign_in(agent, "agent1@callpro.test")
    headers = {"x-csrf-token": await csrf_of(agent, "/seats/")}
    assert (await agent.get("/contact-center/console")).status_code == 403
    taken = await agent.post("/api/v1/seats/sign-in", json={"client_id": swift}, headers=headers)
    assert taken.status_code == 201, taken.text
    assert (await agent.get("/contact-center/console")).status_code == 403
    assert (await agent.get("/api/v1/contact-center/floor")).status_code == 403
    acted = await agent.post(
        f"/contact-center/console/agents/{sara}/state",
        data={"_csrf": headers["x-csrf-token"], "state": "signed_out"},
    )
    assert acted.status_code == 403

    # CallPro's supervisor on a SwiftFreight seat is an agent there too.
    boss = await principal(db, "supervisor@callpro.test", world.tenants["callpro"])
    assert boss.user_id is not None
    with tenant_scope(boss.acting_tenant_id):
        async with db.session() as session:
            await tenant_service.assign_agent(session, boss, floor.tenant_id, boss.user_id)
    supervisor = await make_client()
    await sign_in(supervisor, "supervisor@callpro.test")
    sup_headers = {"x-csrf-token": await csrf_of(supervisor, "/seats/")}
    # At home, CallPro's own floor: SwiftFreight's agents are not on it.
    assert (await supervisor.get("/contact-center/console")).status_code == 200
    assert (await supervisor.get("/api/v1/contact-center/floor")).json()["agents"] == []
    not_here = await supervisor.post(
        f"/contact-center/console/agents/{li}/state",
        data={"state": "signed_out"},
        headers=sup_headers,
    )
    assert not_here.status_code == 404
    seat = await supervisor.post(
        "/api/v1/seats/sign-in", json={"client_id": swift}, headers=sup_headers
    )
    assert seat.status_code == 201, seat.text
    assert (await supervisor.get("/contact-center/console")).status_code == 403

    # Another client's admin: SwiftFreight's agents do not exist for them.
    harbour = await make_client()
    await sign_in(harbour, "admin@harbour.test")
    harbour_headers = {"x-csrf-token": await csrf_of(harbour, "/contact-center/console")}
    for path, form in (("state", {"state": "signed_out"}), ("monitor", {"mode": "listen"})):
        response = await harbour.post(
            f"/contact-center/console/agents/{sara}/{path}", data=form, headers=harbour_headers
        )
        assert response.status_code == 404, path
    assert (await harbour.get("/api/v1/contact-center/floor")).json()["queues"] == []
    assert (await floor.state("sara"))[0] == AgentStatus.NOT_READY  # untouched


async def test_hq_runs_a_branch_agent_under_the_branch(
    client: AsyncTestClient[Litestar], floor: Floor, db: Database, world: Demo
) -> None:
    north, nick = world.tenants["swiftfreight-north"], world.users["north@swiftfreight.test"]
    with tenant_scope(north):
        async with db.session() as session:
            queue = await service.create_queue(session, "North pickup")
            await service.agent_signs_in(session, nick, north)
            await service.set_skill(session, nick, queue.id)
    await sign_in(client, SUPERVISOR)
    api = (await client.get("/api/v1/contact-center/floor")).json()
    assert {q["name"] for q in api["queues"]} == {"Pickup", "North pickup"}
    assert api["tenants"][str(north)] == "SwiftFreight North"
    page = (await client.get("/contact-center/console")).text
    assert "SwiftFreight North" in row_of(page, "data-agent", "north@swiftfreight.test")

    csrf = await csrf_of(client, "/contact-center/console")
    ready = await client.post(
        f"/contact-center/console/agents/{nick}/state", data={"_csrf": csrf, "state": "ready"}
    )
    assert "The agent is ready" in ready.text
    with tenant_scope(north):
        async with db.session() as session:
            state = await ContactCenterRepository(session).agent(nick)
            logged = await TenantRepository(session).audit_entries(action="agent.force_")
    assert state is not None and state.status == AgentStatus.READY
    assert [(e.tenant_id, e.action) for e in logged] == [(north, "agent.force_ready")]
    # The next North call goes to Nick, ready on his branch's floor.
    with tenant_scope(north):
        async with db.session() as session:
            call = Call(
                provider="simulator", provider_call_id="n1", from_number=CALLER, to_number=NUMBER
            )
            session.add(call)
            await session.flush()
            assert await service.enqueue(session, call, queue) == [service.Offer(call.id, nick)]
