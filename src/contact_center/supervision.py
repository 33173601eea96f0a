"""What a supervisor does to the floor from the console: force an agent ready, not ready or
signed out, and listen to, whisper to or barge into an agent's call. The routes let only
supervisors and tenant admins in; every action is written to the audit log.

A busy agent is treated as an ACD treats one:

- on a call: "not ready" and "sign out" wait for the call to end (they are pending), then apply
  in place of wrap-up; "ready" cancels such a pending change (after wrap-up the agent is ready
  anyway).
- being offered a call (ringing): "not ready" and "sign out" withdraw the offer at once; the
  call keeps its place in line and goes on to the next free agent. "Ready" changes nothing: the
  agent is about to answer.
- signed out: refused. A supervisor cannot put an empty chair on the floor; agents sign in.

Run these under the agent's own tenant (`find_agent` says which): an HQ supervisor acting on a
branch's agent narrows to that branch, so the branch's routing lock and scope apply.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from sqlmodel.ext.asyncio.session import AsyncSession

from contact_center import desk, service
from contact_center.models import AgentState, AgentStatus, CallStatus, DeskCodeKind
from contact_center.repository import ContactCenterRepository
from depotline.auth import Principal
from depotline.db import require_tenant
from depotline.errors import Conflict, InvalidInput, NotFound
from telephony_gateway import service as gateway
from telephony_gateway.commands import MonitorMode, Unsupported
from telephony_gateway.providers.base import CarrierRefused, OutcomeUnknown
from telephony_gateway.providers.registry import Providers
from tenant.service import audit

FORCEABLE = (AgentStatus.READY, AgentStatus.NOT_READY, AgentStatus.SIGNED_OUT)


@dataclass(frozen=True)
class Forced:
    status: AgentStatus  # what the supervisor asked for
    applied: bool  # False: it waits for the agent's call to end
    offers: list[service.Offer]  # calls routed because of it (a ready agent takes one)


async def not_ready_reasons(session: AsyncSession) -> list[str]:
    """The tenant's not ready reasons (its own desk codes, else the defaults)."""
    return await desk.code_labels(session, DeskCodeKind.NOT_READY)


async def find_agent(session: AsyncSession, user_id: UUID) -> AgentState:
    """The agent state the console acts on: one signed in before one signed out, the acting
    tenant's before a branch's. NotFound for anyone on no floor this tenant can see."""
    rows = await ContactCenterRepository(session).agent_rows(user_id)
    if not rows:
        raise NotFound("No such agent on this floor")
    acting = require_tenant()
    return min(rows, key=lambda a: (a.status == AgentStatus.SIGNED_OUT, a.tenant_id != acting))


async def force_state(
    session: AsyncSession,
    actor: Principal,
    user_id: UUID,
    status: str,
    reason: str | None = None,
) -> Forced:
    """Force an agent ready, not ready (with one of the tenant's not ready reasons, as agents
    give them at the desk) or signed out."""
    repo = ContactCenterRepository(session)
    await repo.lock_routing(require_tenant())
    agent = await repo.agent(user_id, lock=True)
    if agent is None:
        raise NotFound("No such agent on this floor")
    try:
        wanted = AgentStatus(status)
    except ValueError:
        wanted = AgentStatus.RESERVED  # refused just below, like any state not forceable
    if wanted not in FORCEABLE:
        raise InvalidInput("Ready, not ready or signed out", field="status")
    # Only "not ready" carries a reason, as at the desk.
    why = ((reason or "").strip() or None) if wanted == AgentStatus.NOT_READY else None
    if wanted == AgentStatus.NOT_READY and why not in await not_ready_reasons(session):
        raise InvalidInput("Say why the agent is not ready", field="reason")
    was = AgentStatus(agent.status)
    if was == AgentStatus.SIGNED_OUT:
        raise Conflict("That agent is signed out; only the agent can sign in", field="status")
    offers: list[service.Offer] = []
    if was == AgentStatus.ON_CALL or (was == AgentStatus.RESERVED and wanted == AgentStatus.READY):
        pending = None if wanted == AgentStatus.READY else wanted
        agent.pending_status, agent.pending_reason = pending, why if pending else None
        applied = False
    else:
        if was == AgentStatus.RESERVED and agent.current_call_id is not None:
            # Withdrawn, not missed: the call keeps its place in line and goes to the next agent.
            offers = await service.release_offer(
                session, agent.current_call_id, user_id, "withdrawn"
            )
        if (agent.status, agent.reason) != (wanted, why):
            service._move(agent, wanted, why)
        agent.pending_status = agent.pending_reason = None
        applied = True
    repo.add(agent)
    await repo.flush()
    if applied and wanted == AgentStatus.READY:
        offers += await service.route(session)
    audit(
        session,
        actor,
        f"agent.force_{wanted.value}",
        tenant_id=agent.tenant_id,
        record_type="agent",
        record_id=user_id,
        was=was.value,
        reason=why or "",
        applied="now" if applied else "after the call",
    )
    return Forced(wanted, applied, offers)


async def monitor(
    session: AsyncSession,
    providers: Providers,
    actor: Principal,
    user_id: UUID,
    mode: str,
) -> str:
    """The supervisor joins the agent's current call: listen (muted), whisper (only the agent
    hears) or barge (everyone hears); asked again in another mode, the same leg switches.
    The call's carrier carries it out (gateway Monitor). Returns the carrier's leg id."""
    repo = ContactCenterRepository(session)
    agent = await repo.agent(user_id)
    if agent is None:
        raise NotFound("No such agent on this floor")
    try:
        chosen = MonitorMode(mode)
    except ValueError:
        raise InvalidInput("Listen, whisper or barge", field="mode") from None
    if actor.user_id == user_id:
        raise Conflict("You cannot listen in on your own call", field="mode")
    call = None
    if agent.status == AgentStatus.ON_CALL and agent.current_call_id is not None:
        call = await repo.get_call(agent.current_call_id)
    if call is None or call.status != CallStatus.ON_CALL:
        raise Conflict("That agent is not on a call", field="mode")
    try:
        leg = await gateway.monitor_call(
            session,
            providers,
            number=call.to_number,
            call_id=call.provider_call_id,
            supervisor_endpoint=f"client:{actor.email or actor.user_id}",
            mode=chosen,
        )
    except Unsupported:
        raise Conflict(
            "This call's carrier cannot bring a supervisor onto the call", field="mode"
        ) from None
    except (CarrierRefused, OutcomeUnknown) as exc:
        raise Conflict(f"The carrier did not add you to the call: {exc}", field="mode") from None
    audit(
        session,
        actor,
        f"call.{chosen.value}",
        tenant_id=agent.tenant_id,
        record_type="call",
        record_id=call.id,
        agent=user_id,
        leg=leg,
    )
    return leg
