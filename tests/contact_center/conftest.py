"""A tenant with a queue and agents, and helpers to make calls."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from uuid import UUID, uuid4

import pytest

from contact_center import service
from contact_center.models import AgentStatus, Call, Queue
from contact_center.repository import ContactCenterRepository
from depotline.db import Database, tenant_scope
from tenant.repository import TenantRepository
from tests.telephony_gateway.conftest import Drain, drain, jobs  # noqa: F401  (fixtures)
from tests.tenant.conftest import Demo
from tests.tenant.conftest import world as world
from tests.tenant.test_seats import take


@dataclass
class Floor:
    db: Database
    tenant_id: UUID
    operator_id: UUID
    queue: Queue
    agents: dict[str, UUID]  # short name -> user id

    async def run(
        self, fn: Callable[..., Awaitable[object]], *args: object, **kwargs: object
    ) -> object:
        """Run a service function in its own transaction under the tenant's scope."""
        with tenant_scope(self.tenant_id):
            async with self.db.session() as session:
                return await fn(session, *args, **kwargs)

    async def ready(self, name: str) -> object:
        return await self.run(service.set_status, self.agents[name], AgentStatus.READY)

    async def call(self, *, vip: bool = False, queue: Queue | None = None) -> UUID:
        with tenant_scope(self.tenant_id):
            async with self.db.session() as session:
                call = Call(
                    provider="simulator",
                    provider_call_id=uuid4().hex,
                    from_number="+8613800138000",
                    to_number="+862088880001",
                )
                session.add(call)
                await session.flush()
                await service.enqueue(session, call, queue or self.queue, vip=vip)
                return call.id

    async def state(self, name: str) -> tuple[str, UUID | None]:
        with tenant_scope(self.tenant_id):
            async with self.db.session() as session:
                agent = await ContactCenterRepository(session).agent(self.agents[name])
        assert agent is not None
        return agent.status, agent.current_call_id

    async def call_row(self, call_id: UUID) -> Call:
        with tenant_scope(self.tenant_id):
            async with self.db.session() as session:
                call = await ContactCenterRepository(session).get_call(call_id)
        assert call is not None
        return call


@pytest.fixture
async def floor(db: Database, world: Demo) -> Floor:
    """SwiftFreight's pickup queue; its agent 'sara' and CallPro's agents 'li', 'wong', 'sam',
    each on a SwiftFreight seat (no seat, no calls)."""
    tenant, operator = world.tenants["swiftfreight"], world.tenants["callpro"]
    with tenant_scope(tenant):
        async with db.session() as session:
            lease = (await TenantRepository(session).leases())[0]
            lease.seats = 4  # and one to spare
            session.add(lease)
    for email in ("agent1@callpro.test", "agent2@callpro.test", "agent3@callpro.test"):
        await take(db, email, world)
    agents = {
        "sara": (world.users["admin@swiftfreight.test"], tenant),
        "li": (world.users["agent1@callpro.test"], operator),
        "wong": (world.users["agent2@callpro.test"], operator),
        "sam": (world.users["agent3@callpro.test"], operator),
    }
    with tenant_scope(tenant):
        async with db.session() as session:
            queue = await service.create_queue(
                session, "Pickup", reservation_seconds=5, wrap_up_seconds=0
            )
            for user_id, home in agents.values():
                await service.agent_signs_in(session, user_id, home)
            for name in ("sara", "li", "wong"):
                await service.set_skill(session, agents[name][0], queue.id, 1)
    return Floor(db, tenant, operator, queue, {name: pair[0] for name, pair in agents.items()})
