"""Outbox handlers of the contact center: the routing timers, and outsourced agents' floors
following their seats (see `seating`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from sqlmodel.ext.asyncio.session import AsyncSession

from contact_center import live, seating, service, voice
from contact_center.models import AgentStatus
from contact_center.repository import ContactCenterRepository
from depotline.outbox import OutboxEvent
from telephony_gateway import service as gateway
from telephony_gateway.events import CallEnded, RecordingReady
from tenant import service as tenancy


async def on_offer_timeout(
    session: AsyncSession, event: OutboxEvent, ctx: Mapping[str, Any]
) -> None:
    payload = event.payload
    agent_id = UUID(payload["agent_id"])
    if await ContactCenterRepository(session).open_offer(UUID(payload["call_id"]), agent_id):
        # Missed here: away on the agent's other floors too (an answered offer is no news).
        await _tell_other_floors(session, ctx, agent_id, seating.MISSED_ELSEWHERE)
    await service.release_offer(session, UUID(payload["call_id"]), agent_id, "timeout")


async def on_offered(session: AsyncSession, event: OutboxEvent, ctx: Mapping[str, Any]) -> None:
    """The offer to the agent's desktop. Usually the process that routed the call pushed it at
    commit already (same once-key: this adds nothing then); this is the push that survives
    that process dying first. An offer no longer open is not pushed."""
    payload = event.payload
    offer = await ContactCenterRepository(session).open_offer(
        UUID(payload["call_id"]), UUID(payload["agent_id"])
    )
    if offer is not None:
        await live.push_offer(ctx["redis"], offer)


async def on_overflow_due(
    session: AsyncSession, event: OutboxEvent, ctx: Mapping[str, Any]
) -> None:
    await service.overflow_due(session, UUID(event.payload["call_id"]))


async def on_wrap_up_done(
    session: AsyncSession, event: OutboxEvent, ctx: Mapping[str, Any]
) -> None:
    payload = event.payload
    call_id = UUID(payload["call_id"]) if payload.get("call_id") else None
    agent_id = UUID(payload["agent_id"])
    await service.wrap_up_done(session, agent_id, call_id)
    # Free again (and not offered a call here at once): the agent's other floors may have
    # calls waiting for them.
    await _tell_other_floors(session, ctx, agent_id, seating.ROUTE_FLOOR, AgentStatus.READY)


async def on_agent_freed(session: AsyncSession, event: OutboxEvent, ctx: Mapping[str, Any]) -> None:
    """Ready again here and not given this floor's next call at once: the other floors route."""
    agent_id = UUID(event.payload["user_id"])
    await _tell_other_floors(session, ctx, agent_id, seating.ROUTE_FLOOR, AgentStatus.READY)


async def _tell_other_floors(
    session: AsyncSession,
    ctx: Mapping[str, Any],
    agent_id: UUID,
    topic: str,
    only_if: AgentStatus | None = None,
) -> None:
    agent = await ContactCenterRepository(session).agent(agent_id)
    if agent is None or not seating.outsourced(agent):
        return
    if only_if is not None and agent.status != only_if:
        return
    seating.tell_floors(session, topic, await seating.other_floors(ctx["db"], agent), agent_id)


async def on_seat_ended(session: AsyncSession, event: OutboxEvent, ctx: Mapping[str, Any]) -> None:
    """The agent gave back (or was freed from) this client's seat: off its floor."""
    await seating.seat_ended(session, UUID(event.payload["user_id"]))


async def on_route_floor(session: AsyncSession, event: OutboxEvent, ctx: Mapping[str, Any]) -> None:
    await service.route(session)


async def on_missed_elsewhere(
    session: AsyncSession, event: OutboxEvent, ctx: Mapping[str, Any]
) -> None:
    await seating.missed_elsewhere(session, UUID(event.payload["user_id"]))


async def on_call_event(session: AsyncSession, event: OutboxEvent, ctx: Mapping[str, Any]) -> None:
    """Calls the gateway took in: a caller who hangs up leaves the queue (or the agent); a
    recording made on a call may be the caller's voicemail."""
    carrier_event = gateway.event_from_payload(event.payload)
    if isinstance(carrier_event, CallEnded | RecordingReady) and event.tenant_id is not None:
        await voice.answer(session, event.tenant_id, carrier_event)


HANDLERS = {
    gateway.CALL_EVENT: [on_call_event],
    service.OFFERED: [on_offered],
    service.OFFER_TIMEOUT: [on_offer_timeout],
    service.OVERFLOW_DUE: [on_overflow_due],
    service.WRAP_UP_DONE: [on_wrap_up_done],
    service.AGENT_FREED: [on_agent_freed],
    tenancy.SEAT_ENDED: [on_seat_ended],
    seating.ROUTE_FLOOR: [on_route_floor],
    seating.MISSED_ELSEWHERE: [on_missed_elsewhere],
}
