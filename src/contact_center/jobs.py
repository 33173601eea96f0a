"""Outbox handlers of the contact center: the routing timers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from sqlmodel.ext.asyncio.session import AsyncSession

from contact_center import live, service, voice
from contact_center.repository import ContactCenterRepository
from depotline.outbox import OutboxEvent
from telephony_gateway import service as gateway
from telephony_gateway.events import CallEnded, RecordingReady


async def on_offer_timeout(
    session: AsyncSession, event: OutboxEvent, ctx: Mapping[str, Any]
) -> None:
    payload = event.payload
    await service.release_offer(
        session, UUID(payload["call_id"]), UUID(payload["agent_id"]), "timeout"
    )


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
    await service.wrap_up_done(session, UUID(payload["agent_id"]), call_id)


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
}
