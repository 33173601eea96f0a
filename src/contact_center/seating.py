"""Outsourced agents on clients' floors.

An operator's agent may hold seats of several clients at once and take the calls of each on one
desk: they have an agent state on each client's floor. Three rules follow:

- No seat, no calls: a floor never offers a call to an outsourced agent without an open seat
  of that client (the tenant domain says who holds one). Routing picks only seated agents and
  the database refuses any other reservation (migration 0011); an agent whose seat ended (left,
  freed by a supervisor) is signed out of that floor by the SEAT_ENDED handler.
- One call at a time: busy on one floor (offered a call, on it, wrapping up), the agent is
  offered nothing on the others (see `AgentEngagement`); free again, the other floors route.
- Missed on one floor, away on all: an offer that timed out makes the agent not ready on the
  other floors too, so their callers do not ring an empty chair in turn.
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

import structlog
from sqlmodel.ext.asyncio.session import AsyncSession

from contact_center import service
from contact_center.models import AgentState, AgentStatus
from contact_center.repository import ContactCenterRepository
from depotline import outbox
from depotline.db import Database, require_tenant, tenant_scope, utcnow
from tenant import service as tenancy

log = structlog.get_logger(__name__)

#: Outbox topics, tenant = the floor: route it (an agent there is free again); an agent missed
#: a call on another floor.
ROUTE_FLOOR = "contact_center.route_floor"
MISSED_ELSEWHERE = "contact_center.missed_elsewhere"
SEAT_ENDED_REASON = "seat ended"
MISSED_REASON = "missed call"


def _move(agent: AgentState, status: AgentStatus, reason: str) -> None:
    agent.status, agent.reason, agent.since = status, reason, utcnow()


def outsourced(agent: AgentState) -> bool:
    return agent.home_tenant_id != agent.tenant_id


async def offerable(session: AsyncSession, agent: AgentState) -> bool:
    """Whether this floor may offer the agent a call now (a transfer names them): an outsourced
    agent needs an open seat of this client and no call on another floor."""
    if not outsourced(agent):
        return True
    if not await tenancy.holds_open_seat(session, agent.user_id, agent.tenant_id):
        return False
    return not await ContactCenterRepository(session).engaged_anywhere(agent.user_id)


async def seat_ended(session: AsyncSession, user_id: UUID) -> list[service.Offer]:
    """The agent's seat of this client ended: off its floor. A call being offered goes to the
    next agent; a call in progress is not cut off, the agent is signed out when it ends."""
    client_id = require_tenant()
    if await tenancy.holds_open_seat(session, user_id, client_id):
        return []  # seated again since
    repo = ContactCenterRepository(session)
    await repo.lock_routing(client_id)
    agent = await repo.agent(user_id, lock=True)
    if agent is None or agent.status == AgentStatus.SIGNED_OUT:
        return []
    offers: list[service.Offer] = []
    if agent.status == AgentStatus.ON_CALL:
        agent.pending_status, agent.pending_reason = AgentStatus.SIGNED_OUT, SEAT_ENDED_REASON
    else:
        if agent.status == AgentStatus.RESERVED and agent.current_call_id is not None:
            offers = await service.release_offer(
                session, agent.current_call_id, user_id, "withdrawn"
            )
        _move(agent, AgentStatus.SIGNED_OUT, SEAT_ENDED_REASON)
        agent.current_call_id = None
    session.add(agent)
    await session.flush()
    return offers


async def other_floors(db: Database, agent: AgentState) -> list[UUID]:
    """The other clients whose seats the outsourced agent holds now."""
    if not outsourced(agent):
        return []
    with tenant_scope(agent.home_tenant_id):
        async with db.session() as session:
            served = await tenancy.clients_served(session, agent.user_id, agent.home_tenant_id)
    return [client for client in served if client != agent.tenant_id]


def tell_floors(session: AsyncSession, topic: str, floors: Sequence[UUID], user_id: UUID) -> None:
    """An event for each of `floors`, relayed once this transaction commits (before that, the
    other floors would still see the agent busy here)."""
    for floor in floors:
        outbox.publish(session, topic, {"user_id": str(user_id)}, tenant_id=floor)


async def missed_elsewhere(session: AsyncSession, user_id: UUID) -> None:
    """The agent let a call ring out on another floor: not ready here too, if ready."""
    repo = ContactCenterRepository(session)
    await repo.lock_routing(require_tenant())
    agent = await repo.agent(user_id, lock=True)
    if agent is not None and agent.status == AgentStatus.READY:
        _move(agent, AgentStatus.NOT_READY, MISSED_REASON)
        session.add(agent)
