"""One desk, several clients: an operator's agent on seats of SwiftFreight (A) and Harbour (B) at
once gets the offers of both, one call at a time, each popped and acted on under its own client
(and audited there); a third client (C) the agent could serve but holds no seat of stays out of
reach; a seat given back (or freed by a supervisor) ends that client's offers and data at once."""

from __future__ import annotations

import dataclasses
from datetime import date
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlmodel.ext.asyncio.session import AsyncSession

from contact_center import desk, seating, service
from contact_center.models import CallStatus, Queue
from contact_center.repository import ContactCenterRepository
from customers import service as customers
from customers.schemas import CustomerIn
from depotline.db import Database, tenant_scope
from depotline.sessions import ChangedOnlySessionBackend
from tenant.models import SeatAssignment, SeatLease, Tenant, TenantKind
from tenant.repository import TenantRepository
from tests.contact_center.conftest import Floor
from tests.contact_center.test_desk import place
from tests.contact_center.test_desk_pages import Agent, audit_reads
from tests.telephony_gateway.conftest import Drain
from tests.tenant.conftest import Demo, MakeClient, csrf_of, sign_in
from tests.tenant.conftest import make_client as make_client
from tests.tenant.test_seats import principal

LI = "agent1@callpro.test"
B_CALLER = "+85291234567"  # Harbour's customer Ho Man
C_CALLER = "+4791234567"  # Nordic's customer Ola Nordmann


@dataclasses.dataclass
class Floors:
    a: Floor
    b: Floor
    c: Floor
    b_customer: UUID
    c_customer: UUID


async def _floor(db: Database, world: Demo, tenant_id: UUID) -> Floor:
    li = world.users[LI]
    with tenant_scope(tenant_id):
        async with db.session() as session:
            queue: Queue = await service.create_queue(
                session, "Pickup", reservation_seconds=30, wrap_up_seconds=0
            )
            await service.set_skill(session, li, queue.id, 1)
    return Floor(db, tenant_id, world.tenants["callpro"], queue, {"li": li})


@pytest.fixture
async def floors(db: Database, world: Demo) -> Floors:
    """A queue on each client's floor that Li Na is skilled for, a known customer of B, and a
    client C with a lease from CallPro that Li is assigned to (but holds no seat of)."""
    callpro = world.tenants["callpro"]
    async with db.session() as session:
        nordic = Tenant(name="Nordic Parcel", slug="nordic", kind=TenantKind.CLIENT)
        nordic.parent_id = world.tenants["platform"]
        TenantRepository(session).add(nordic)
    with tenant_scope(nordic.id):
        async with db.session() as session:
            session.add(SeatLease(operator_id=callpro, seats=2, starts_on=date(2026, 1, 1)))
    with tenant_scope(callpro):
        async with db.session() as session:
            session.add(SeatAssignment(client_id=nordic.id, user_id=world.users[LI]))
    a = await _floor(db, world, world.tenants["swiftfreight"])
    b = await _floor(db, world, world.tenants["harbour"])
    c = await _floor(db, world, nordic.id)
    harbour_admin = await principal(db, "admin@harbour.test", b.tenant_id)
    with tenant_scope(b.tenant_id):
        async with db.session() as session:
            ho = await customers.create_customer(
                session, harbour_admin, CustomerIn(name="Ho Man", phones=[B_CALLER])
            )
    nordic_actor = dataclasses.replace(
        harbour_admin, home_tenant_id=nordic.id, acting_tenant_id=nordic.id
    )
    with tenant_scope(nordic.id):
        async with db.session() as session:
            ola = await customers.create_customer(
                session, nordic_actor, CustomerIn(name="Ola Nordmann", phones=[C_CALLER])
            )
    return Floors(a, b, c, ho.id, ola.id)


async def take_seat(agent: Agent, client_id: UUID) -> httpx.Response:
    token = await csrf_of(agent.browser, "/seats/")
    return await agent.browser.post(
        "/seats/take", data={"client_id": str(client_id), "_csrf": token}
    )


@pytest.fixture
async def li(client: AsyncTestClient[Litestar], make_client: MakeClient, floors: Floors) -> Agent:
    """Li Na of CallPro, on seats of SwiftFreight and Harbour, ready on the desk."""
    browser = await make_client()
    await sign_in(browser, LI)
    agent = Agent(browser, await csrf_of(browser, "/desk"))
    for floor in (floors.a, floors.b):
        assert (await take_seat(agent, floor.tenant_id)).status_code in (302, 303)
    agent.token = await csrf_of(browser, "/desk")
    ready = await agent.post("/desk/status", status="ready")
    assert ready.status_code == 200, ready.text
    return agent


async def status_on(floor: Floor) -> tuple[str, UUID | None]:
    with tenant_scope(floor.tenant_id):
        async with floor.db.session() as session:
            agent = await ContactCenterRepository(session).agent(floor.agents["li"])
    assert agent is not None
    return agent.status, agent.current_call_id


async def test_offers_of_two_clients_reach_one_desk_one_call_at_a_time(
    li: Agent, floors: Floors, db: Database
) -> None:
    page = (await li.browser.get("/desk")).text
    assert 'data-testid="serving">Harbour Logistics, SwiftFreight<' in page
    assert "Nordic Parcel" in page  # one more client Li may take a seat of
    assert await status_on(floors.a) == ("ready", None)
    assert await status_on(floors.b) == ("ready", None)

    # B's call pops with B's caller, under B's name, and the read is on B's audit log.
    b_call = await place(floors.b, caller=B_CALLER)
    state = await li.state()
    assert state["offer"]["call_id"] == str(b_call.id)
    assert state["tenant_id"] == str(floors.b.tenant_id)
    pop = await li.browser.get(f"/desk/calls/{b_call.id}/pop")
    assert pop.status_code == 200
    assert "Ho Man" in pop.text and "Harbour Logistics" in pop.text
    assert await audit_reads(db, floors.b.tenant_id) == [("customer", str(floors.b_customer))]
    assert await audit_reads(db, floors.a.tenant_id) == []

    # Busy with B's call, Li is offered nothing of A's: the call waits in A's queue.
    a_call = await place(floors.a)
    assert a_call.status == CallStatus.QUEUED and a_call.agent_id is None
    assert (await status_on(floors.a))[0] == "ready"

    accepted = await li.post(f"/desk/calls/{b_call.id}/accept")
    assert accepted.json()["state"]["call"]["call_id"] == str(b_call.id)
    assert (await li.post(f"/desk/calls/{b_call.id}/hang-up")).status_code == 200
    assert (await floors.a.call_row(a_call.id)).status == CallStatus.QUEUED  # still wrapping up
    done = await li.post(f"/desk/calls/{b_call.id}/wrap-up", code="Resolved")
    assert done.status_code == 200
    assert (await floors.b.call_row(b_call.id)).wrap_up_code == "Resolved"

    # Free again: A's waiting call is offered at once, and worked under A.
    assert done.json()["state"]["offer"]["call_id"] == str(a_call.id)
    assert (await li.post(f"/desk/calls/{a_call.id}/accept")).status_code == 200
    assert (await floors.a.call_row(a_call.id)).status == CallStatus.ON_CALL


async def test_a_caller_who_leaves_a_ringing_offer_frees_the_agent_for_other_floors(
    li: Agent, floors: Floors, drain: Drain
) -> None:
    a_call = await place(floors.a)
    assert (await status_on(floors.a)) == ("reserved", a_call.id)
    b_call = await place(floors.b, caller=B_CALLER)  # Li rings for A: B's call waits
    assert b_call.status == CallStatus.QUEUED and b_call.agent_id is None

    await floors.a.run(service.caller_hangs_up, a_call.id)
    assert (await status_on(floors.a)) == ("ready", None)
    await drain()
    offered = await floors.b.call_row(b_call.id)
    assert offered.status == CallStatus.OFFERED and offered.agent_id == floors.b.agents["li"]
    assert (await li.state())["offer"]["call_id"] == str(b_call.id)


async def test_a_client_without_a_seat_does_not_exist_for_the_desk(
    li: Agent, floors: Floors, db: Database
) -> None:
    c_call = await place(floors.c, caller=C_CALLER)
    assert c_call.status == CallStatus.QUEUED  # not offered to Li: no seat of C
    assert (await li.browser.get(f"/desk/calls/{c_call.id}/pop")).status_code == 404
    for action in ("accept", "decline", "hold", "resume", "hang-up", "conference"):
        refused = await li.post(f"/desk/calls/{c_call.id}/{action}", number="+8613800138000")
        assert refused.status_code == 404, action
    refused = await li.post(f"/desk/calls/{c_call.id}/wrap-up", code="Resolved")
    assert refused.status_code == 404
    assert (await li.browser.get(f"/api/v1/customers/{floors.c_customer}")).status_code == 404
    card = await li.browser.get("/api/v1/customers/caller-card", params={"number": C_CALLER})
    assert "Ola Nordmann" not in card.text
    assert await audit_reads(db, floors.c.tenant_id) == []
    # Nor can the desk leave a seat it does not hold, or take one of a client not assigned.
    left = await li.post("/desk/seat/leave", client_id=str(floors.c.tenant_id))
    assert left.status_code == 404
    row = await floors.c.call_row(c_call.id)
    assert (row.status, row.agent_id) == (CallStatus.QUEUED, None)


async def test_after_leaving_a_client_its_offers_stop_and_its_data_is_refused(
    li: Agent, floors: Floors, drain: Drain
) -> None:
    a_call = await place(floors.a)
    assert (await li.state())["offer"]["call_id"] == str(a_call.id)
    assert (await li.post(f"/desk/calls/{a_call.id}/decline")).status_code == 200

    left = await li.post("/desk/seat/leave", client_id=str(floors.a.tenant_id))
    assert left.status_code in (302, 303)
    await drain()
    assert (await status_on(floors.a))[0] == "signed_out"
    page = (await li.browser.get("/desk")).text
    assert 'data-testid="serving">Harbour Logistics<' in page

    # A's calls: no offer, no pop, no controls. B's still come.
    again = await place(floors.a)
    assert again.status == CallStatus.QUEUED and again.agent_id is None
    assert (await li.browser.get(f"/desk/calls/{a_call.id}/pop")).status_code == 404
    assert (await li.post(f"/desk/calls/{again.id}/accept")).status_code == 404
    b_call = await place(floors.b, caller=B_CALLER)
    assert (await li.state())["offer"]["call_id"] == str(b_call.id)


async def test_a_freed_seat_is_never_offered_a_call_even_before_the_floor_hears_of_it(
    li: Agent, floors: Floors, make_client: MakeClient, drain: Drain, db: Database
) -> None:
    me = await li.browser.get("/api/v1/me")
    seat = me.json()["seat_session_id"]  # the seat the browser acts on: the last taken, B's
    assert me.json()["tenant_id"] == str(floors.b.tenant_id)
    supervisor = await make_client()
    await sign_in(supervisor, "supervisor@callpro.test")
    headers = {"x-csrf-token": await csrf_of(supervisor, "/seats/")}
    freed = await supervisor.post(f"/api/v1/seat-sessions/{seat}/free", headers=headers)
    assert freed.status_code == 201, freed.text

    # The floor has not been told yet (the outbox is not drained): Li still looks ready there,
    # and still no call of B's rings for them.
    assert (await status_on(floors.b))[0] == "ready"
    ghost = await place(floors.b, caller=B_CALLER)
    assert ghost.status == CallStatus.QUEUED and ghost.agent_id is None
    await drain()
    assert (await status_on(floors.b))[0] == "signed_out"
    # The browser now acts for A, the client still served; B's data is gone.
    assert (await li.browser.get("/api/v1/me")).json()["tenant_id"] == str(floors.a.tenant_id)
    assert (await li.browser.get(f"/desk/calls/{ghost.id}/pop")).status_code == 404
    a_call = await place(floors.a)
    assert (await li.state())["offer"]["call_id"] == str(a_call.id)


async def test_the_database_refuses_a_seatless_or_double_booked_reservation(
    li: Agent, floors: Floors
) -> None:
    """Whatever code reserves an agent, not one without a seat, not one busy elsewhere: the
    row is left as it was (no error: a floor racing another picks again)."""
    a_call = await place(floors.a)
    assert (await status_on(floors.a)) == ("reserved", a_call.id)

    async def reserve_on_b(session: AsyncSession) -> int:
        # What a routing statement that saw Li free a moment ago would write.
        changed = await session.execute(
            text(
                "update agent_states set status = 'reserved' "
                "where tenant_id = :tenant and user_id = :user and status = 'ready'"
            ),
            {"tenant": floors.b.tenant_id, "user": floors.b.agents["li"]},
        )
        return int(getattr(changed, "rowcount", -1))

    assert await floors.b.run(reserve_on_b) == 0
    assert (await status_on(floors.b)) == ("ready", None)
    # B's next call waits for her instead of ringing her twice.
    b_call = await place(floors.b, caller=B_CALLER)
    assert b_call.status == CallStatus.QUEUED and b_call.agent_id is None

    # A transfer on B naming Li is refused the same way, as a rule, not an error.
    async def offerable_on_b(session: AsyncSession) -> bool:
        agent = await ContactCenterRepository(session).agent(floors.b.agents["li"])
        assert agent is not None
        return await seating.offerable(session, agent)

    assert await floors.b.run(offerable_on_b) is False

    # Nor do B's agents see Li among those a call can be transferred to while she is busy on A.
    async def targets_on_b(session: AsyncSession) -> list[UUID]:
        return [user_id for user_id, _ in await desk.transfer_targets(session, uuid4())]

    targets = await floors.b.run(targets_on_b)
    assert isinstance(targets, list) and floors.b.agents["li"] not in targets


async def test_a_page_that_polls_does_not_rewrite_the_session(
    li: Agent, floors: Floors, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A poll saved back the copy of the session it loaded, over a flash message saved in the
    meantime: unchanged sessions are no longer written at all."""
    writes: list[str] = []
    real_set = ChangedOnlySessionBackend.set

    async def counting_set(
        self: ChangedOnlySessionBackend, session_id: str, data: bytes, store: Any
    ) -> None:
        writes.append(session_id)
        await real_set(self, session_id, data, store)

    monkeypatch.setattr(ChangedOnlySessionBackend, "set", counting_set)
    for _ in range(3):
        assert (await li.browser.get("/desk/state")).status_code == 200
    await li.browser.get("/desk")
    assert writes == []
    posted = await li.browser.post(
        "/desk/status", data={"status": "not_ready", "reason": "Break", "_csrf": li.token}
    )
    assert posted.status_code in (302, 303)
    assert len(writes) == 1  # the flash message
    await li.browser.get("/desk/state")  # a poll between the post and the page
    assert len(writes) == 1
    assert "Status changed" in (await li.browser.get("/desk")).text
