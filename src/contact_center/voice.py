"""How the contact center answers calls the carrier gateway brings in: blocklist, IVR, queue.

The gateway calls `answer` with each voice event (through `Providers.voice_flow`, wired in
depotline.app) and renders the commands it returns for the carrier."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from sqlmodel.ext.asyncio.session import AsyncSession

from contact_center import ivr, service
from contact_center.calendar import BusinessHours, is_open
from contact_center.models import Call, CallStatus
from contact_center.repository import ContactCenterRepository
from depotline.errors import InvalidInput
from telephony_gateway import events as ev
from telephony_gateway.commands import Command, Enqueue, Hangup, Say
from telephony_gateway.service import e164

BLOCKED = "This number cannot reach us. Goodbye."
#: English text, so spoken with an English voice whatever language the caller chose.
NOBODY = "Sorry, nobody can take your call right now. Please call again later."
FALLBACK_QUEUE = "General"


def no_order_lookup(order_number: str) -> str | None:
    """Until the pickup module supplies order status, every order number is unknown."""
    return None


LOOKUPS: dict[str, ivr.Lookup] = {"order_status": no_order_lookup}


async def answer(session: AsyncSession, tenant_id: UUID, event: ev.CarrierEvent) -> list[Command]:
    repo = ContactCenterRepository(session)
    if isinstance(event, ev.CallStarted):
        return await _call_started(session, repo, event)
    if isinstance(event, ev.DigitsGathered):
        call = await repo.call_by_provider_id(event.provider, event.call_id)
        if call is None or call.ivr_progress is None:
            return [Hangup()]
        return await _advance(session, call, event)
    if isinstance(event, ev.CallEnded):
        call = await repo.call_by_provider_id(event.provider, event.call_id)
        if call is not None and call.status not in (CallStatus.ENDED, CallStatus.ABANDONED):
            await service.caller_hangs_up(session, call.id)
    return []


async def _call_started(
    session: AsyncSession, repo: ContactCenterRepository, event: ev.CallStarted
) -> list[Command]:
    call = await repo.call_by_provider_id(event.provider, event.call_id)
    if call is None:
        call = Call(
            provider=event.provider,
            provider_call_id=event.call_id,
            from_number=event.from_number,
            to_number=event.to_number,
            direction=event.direction.value,
        )
        repo.add(call)
        await repo.flush()
    if await service.is_blocked(session, event.from_number):
        call.status, call.disposition, call.ended_at = (
            CallStatus.ENDED,
            "blocked",
            event.occurred_at,
        )
        repo.add(call)
        return [Say(BLOCKED), Hangup()]
    call.ivr_progress = ivr.begin(ivr.DEMO_FLOW).model_dump(mode="json")
    return await _advance(session, call, None)


async def _advance(session: AsyncSession, call: Call, event: ivr.Event) -> list[Command]:
    flow = ivr.DEMO_FLOW  # tenant-edited, published flows arrive with the IVR editor
    progress = ivr.CallProgress.model_validate(call.ivr_progress)
    context = await _context(session, call)
    progress, commands, outcome = ivr.step(flow, progress, event, context)
    call.ivr_progress, call.language = progress.model_dump(mode="json"), progress.language
    session.add(call)
    if outcome is None:
        return list(commands)
    call.ivr_progress = None
    return [*commands, *await _leave_ivr(session, call, outcome, context.vip)]


async def _context(session: AsyncSession, call: Call) -> ivr.CallContext:
    settings = await ContactCenterRepository(session).settings()
    vip = settings is not None and _normalised(call.from_number) in settings.vip_numbers
    open_now = True
    if settings is not None and settings.business_hours:
        open_now = is_open(BusinessHours.model_validate(settings.business_hours), datetime.now(UTC))
    return ivr.CallContext(is_open=open_now, vip=vip, lookups=LOOKUPS)


def _normalised(number: str) -> str:
    """VIP numbers are stored in E.164; carriers send callers in their own formats."""
    try:
        return e164(number, field="from")
    except InvalidInput:
        return number


async def _leave_ivr(session: AsyncSession, call: Call, outcome: Any, vip: bool) -> list[Command]:
    repo = ContactCenterRepository(session)
    if isinstance(outcome, ivr.ToQueue):
        queue = await repo.queue_by_name(outcome.queue_name) or await repo.queue_by_name(
            FALLBACK_QUEUE
        )
        if queue is None:
            call.status, call.disposition = CallStatus.ENDED, "no_queue"
            repo.add(call)
            return [Say(NOBODY), Hangup()]
        await service.enqueue(session, call, queue, vip=vip)
        return [Enqueue(queue.name)]
    if isinstance(outcome, ivr.ToVoicemail):
        # The flow's voicemail node has said its prompt already, in the caller's language.
        call.callback_requested, call.disposition = True, "voicemail"
        repo.add(call)
        return [Hangup()]
    call.status, call.disposition = CallStatus.ENDED, "ivr_hangup"
    repo.add(call)
    return []
