"""Hosted seats: leases, assignments, the seat limit (also under a race), exact usage records,
and outsourced access that lasts only while the agent holds a seat."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from uuid import UUID

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from depotline.auth import Principal
from depotline.db import Database, tenant_scope, user_scope
from depotline.errors import Conflict, InvalidInput, NotFound
from tenant import service
from tenant.models import SeatLease, SeatSession, Tenant, TenantKind
from tenant.repository import TenantRepository
from tests.tenant.conftest import Demo, MakeClient, csrf_of, sign_in


async def principal(db: Database, email: str, tenant_id: UUID) -> Principal:
    async with db.session() as session:
        user = await TenantRepository(session).user_by_email(email)
    assert user is not None
    with user_scope(user.id), tenant_scope(tenant_id):
        async with db.session() as session:
            found = await service.principal_for(session, user, tenant_id)
    assert found is not None
    return found


async def test_lease_rules(db: Database, world: Demo) -> None:
    admin = await principal(db, "admin@swiftfreight.test", world.tenants["swiftfreight"])
    today = date.today()

    async def lease(seats: int, operator: str | None, ends_on: date | None = None) -> SeatLease:
        with tenant_scope(admin.acting_tenant_id):
            async with db.session() as session:
                return await service.create_lease(
                    session,
                    admin,
                    seats=seats,
                    starts_on=today,
                    ends_on=ends_on,
                    operator_id=world.tenants[operator] if operator else None,
                )

    with pytest.raises(InvalidInput, match="at least one seat"):
        await lease(0, "callpro")
    with pytest.raises(Conflict, match="already covers"):
        await lease(3, "callpro")  # SwiftFreight already leases from CallPro
    with pytest.raises(InvalidInput, match="No such operator"):
        await lease(3, "harbour")  # a client, not an operator
    with pytest.raises(InvalidInput, match="ends before"):
        await lease(3, None, today - timedelta(days=1))
    assert (await lease(4, None)).seats == 4


async def take(db: Database, email: str, world: Demo, client: str = "swiftfreight") -> SeatSession:
    agent = await principal(db, email, world.tenants["callpro"])
    with tenant_scope(world.tenants[client]):
        async with db.session() as session:
            return await service.take_seat(session, agent, world.tenants[client])


async def test_the_seat_limit_names_who_holds_the_seats(db: Database, world: Demo) -> None:
    await take(db, "agent1@callpro.test", world)
    await take(db, "agent2@callpro.test", world)
    with pytest.raises(Conflict) as refused:
        await take(db, "agent3@callpro.test", world)
    assert "All 2 seats" in refused.value.detail
    assert "Agent Li Na" in refused.value.detail and "Agent Wong Ka" in refused.value.detail


async def test_racing_agents_never_exceed_the_seat_limit(db: Database, world: Demo) -> None:
    """Three assigned agents press 'take a seat' at the same moment for a two-seat lease."""
    results = await asyncio.gather(
        *(take(db, f"agent{n}@callpro.test", world) for n in (1, 2, 3)), return_exceptions=True
    )
    taken = [r for r in results if isinstance(r, SeatSession)]
    refused = [r for r in results if isinstance(r, Conflict)]
    assert len(taken) == 2 and len(refused) == 1, results


async def test_on_a_client_seat_a_supervisor_is_only_an_agent(db: Database, world: Demo) -> None:
    """An operator's supervisor who takes a client's seat must not manage that client's seats
    (nor another operator's agents on them): on the seat, everyone is an agent."""
    async with db.session() as session:
        user = await TenantRepository(session).user_by_email("supervisor@callpro.test")
    assert user is not None
    swift = world.tenants["swiftfreight"]
    with user_scope(user.id), tenant_scope(world.tenants["callpro"]):
        async with db.session() as session:
            on_seat = await service.principal_for(session, user, world.tenants["callpro"], swift)
            at_home = await service.principal_for(session, user, world.tenants["callpro"])
    assert on_seat is not None and on_seat.role == "agent"
    assert at_home is not None and at_home.role == "supervisor"


async def test_agent_without_assignment_gets_no_seat(db: Database, world: Demo) -> None:
    with pytest.raises(NotFound):
        await take(db, "agent2@callpro.test", world, client="harbour")


async def test_seat_usage_is_recorded_from_when_to_when(db: Database, world: Demo) -> None:
    seat = await take(db, "agent1@callpro.test", world)
    supervisor = await principal(db, "supervisor@callpro.test", world.tenants["callpro"])
    with tenant_scope(supervisor.acting_tenant_id):
        async with db.session() as session:
            freed = await service.leave_seat(session, supervisor, seat.id, "freed by supervisor")
    assert freed.ended_at is not None and freed.ended_at >= seat.started_at
    assert freed.ended_by == supervisor.user_id and freed.end_reason == "freed by supervisor"
    # The client sees the same record: billing reads it from the client's side.
    with tenant_scope(world.tenants["swiftfreight"]):
        async with db.session() as session:
            rows = await TenantRepository(session).seat_sessions()
    assert [(r.user_id, r.ended_at is not None) for r in rows] == [
        (world.users["agent1@callpro.test"], True)
    ]
    # Freed seat: someone else can now take it.
    await take(db, "agent2@callpro.test", world)
    await take(db, "agent3@callpro.test", world)


async def test_lease_cannot_shrink_below_seats_in_use(db: Database, world: Demo) -> None:
    await take(db, "agent1@callpro.test", world)
    await take(db, "agent2@callpro.test", world)
    admin = await principal(db, "admin@swiftfreight.test", world.tenants["swiftfreight"])
    with tenant_scope(admin.acting_tenant_id):
        async with db.session() as session:
            lease = (await TenantRepository(session).leases())[0]
        with pytest.raises(Conflict, match="2 seats are in use"):
            async with db.session() as session:
                await service.change_lease_seats(session, admin, lease.id, 1)


async def test_assignment_needs_a_lease_with_that_client(db: Database, world: Demo) -> None:
    async with db.session() as session:
        repo = TenantRepository(session)
        lonely = Tenant(
            name="Lonely Freight",
            slug="lonely",
            kind=TenantKind.CLIENT,
            parent_id=world.tenants["platform"],
        )
        repo.add(lonely)
    supervisor = await principal(db, "supervisor@callpro.test", world.tenants["callpro"])
    with (
        tenant_scope(supervisor.acting_tenant_id),
        pytest.raises(Conflict, match="no current seat lease"),
    ):
        async with db.session() as session:
            await service.assign_agent(
                session, supervisor, lonely.id, world.users["agent1@callpro.test"]
            )


async def test_outsourced_agent_sees_client_data_only_while_on_a_seat(
    client: AsyncTestClient[Litestar], make_client: MakeClient, world: Demo
) -> None:
    swift = world.tenants["swiftfreight"]
    agent = await make_client()
    await sign_in(agent, "agent1@callpro.test")
    assert (await agent.get(f"/api/v1/tenants/{swift}")).status_code == 404
    headers = {"x-csrf-token": await csrf_of(agent, "/seats/")}
    taken = await agent.post(
        "/api/v1/seats/sign-in", json={"client_id": str(swift)}, headers=headers
    )
    assert taken.status_code == 201, taken.text
    me = (await agent.get("/api/v1/me")).json()
    assert me["tenant_name"] == "SwiftFreight" and me["seat_session_id"]
    assert (await agent.get(f"/api/v1/tenants/{swift}")).status_code == 200

    supervisor = await make_client()
    await sign_in(supervisor, "supervisor@callpro.test")
    sup_headers = {"x-csrf-token": await csrf_of(supervisor, "/seats/")}
    freed = await supervisor.post(
        f"/api/v1/seat-sessions/{me['seat_session_id']}/free", headers=sup_headers
    )
    assert freed.status_code == 201, freed.text

    # The very next request of the agent is back in CallPro, without SwiftFreight's data.
    assert (await agent.get("/api/v1/me")).json()["tenant_name"] == "CallPro"
    assert (await agent.get(f"/api/v1/tenants/{swift}")).status_code == 404


async def test_seat_sign_in_over_http_reports_the_limit(
    client: AsyncTestClient[Litestar], make_client: MakeClient, world: Demo
) -> None:
    swift = str(world.tenants["swiftfreight"])
    agents: list[httpx.AsyncClient] = []
    for n in (1, 2, 3):
        agent = await make_client()
        await sign_in(agent, f"agent{n}@callpro.test")
        agents.append(agent)
    statuses = []
    for agent in agents:
        headers = {"x-csrf-token": await csrf_of(agent, "/seats/")}
        response = await agent.post(
            "/api/v1/seats/sign-in", json={"client_id": swift}, headers=headers
        )
        statuses.append(response.status_code)
    assert statuses == [201, 201, 409]
    assert "All 2 seats" in response.json()["detail"]
