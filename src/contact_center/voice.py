"""How the contact center answers calls the carrier gateway brings in: blocklist, IVR, queue.

The gateway calls `answer` with each voice event (through `Providers.voice_flow`, wired in
depotline.app) and renders the commands it returns for the carrier. A call hears its tenant's
published IVR flow (`flows`; the demo flow when there is none) and keeps that version to the end;
once in a queue, `waiting` answers what the caller hears while waiting and after the agent."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from sqlmodel.ext.asyncio.session import AsyncSession

from contact_center import flows, ivr, service, waiting
from contact_center.calendar import BusinessHours, is_open
from contact_center.models import Call, CallStatus, ContactCenterSettings
from contact_center.repository import ContactCenterRepository
from customers import service as customers
from depotline.db import utcnow
from depotline.errors import InvalidInput
from telephony_gateway import events as ev
from telephony_gateway.commands import Command, Enqueue, Hangup, Record, Say
from telephony_gateway.service import e164

BLOCKED = "This number cannot reach us. Goodbye."
#: English text, so spoken with an English voice whatever language the caller chose.
NOBODY = "Sorry, nobody can take your call right now. Please call again later."
FALLBACK_QUEUE = "General"


#: A self-service lookup as a domain supplies it (depotline.app registers them): the
#: transaction, the keyed-in digits and the caller's language in, text to say out (None: unknown).
AsyncLookup = Callable[[AsyncSession, str, str], Awaitable[str | None]]


async def no_order_lookup(session: AsyncSession, order_number: str, language: str) -> str | None:
    """Until a domain supplies order status, every order number is unknown."""
    return None


LOOKUPS: dict[str, AsyncLookup] = {"order_status": no_order_lookup}


async def answer(session: AsyncSession, tenant_id: UUID, event: ev.CarrierEvent) -> list[Command]:
    repo = ContactCenterRepository(session)
    if isinstance(event, ev.CallStarted):
        return await _call_started(session, repo, event)
    if isinstance(event, ev.DigitsGathered):
        call = await repo.call_by_provider_id(event.provider, event.call_id)
        if call is None:
            return [Hangup()]
        if call.ivr_progress is None:  # a choice while waiting, or the survey's answer
            return await waiting.digits(session, call, event.digits)
        return await _advance(session, call, event)
    if isinstance(event, ev.QueueWait | ev.QueueLeft | ev.RecordingReady):
        call = await repo.call_by_provider_id(event.provider, event.call_id)
        return [] if call is None else await waiting.answer(session, call, event)
    if isinstance(event, ev.CallEnded):
        call = await repo.call_by_provider_id(event.provider, event.call_id)
        if call is not None and call.status not in (CallStatus.ENDED, CallStatus.ABANDONED):
            await service.caller_hangs_up(session, call.id)
    return []


class _Settings:
    """The tenant's settings, read at most once per webhook (and not at all when a query that
    ran anyway brought them along)."""

    def __init__(self, *known: ContactCenterSettings | None) -> None:
        self.known, self.row = bool(known), known[0] if known else None

    async def get(self, session: AsyncSession, tenant_id: UUID) -> ContactCenterSettings | None:
        if not self.known:
            self.row = await ContactCenterRepository(session).settings_of(tenant_id)
            self.known = True
        return self.row


async def _call_started(
    session: AsyncSession, repo: ContactCenterRepository, event: ev.CallStarted
) -> list[Command]:
    """A new call, in as few round trips as a call can take (this is most of what answering a
    call costs): one query for the blocklist, the settings and the published flow, and the call
    inserted once, with its first IVR step, when the transaction ends. The carrier's event is
    taken in once (de-duplicated before this runs), so the call is new."""
    blocked, settings, published = await repo.call_start_facts(_e164(event.from_number), utcnow())
    call = Call(
        provider=event.provider,
        provider_call_id=event.call_id,
        from_number=event.from_number,
        to_number=event.to_number,
        direction=event.direction.value,
    )
    if blocked:
        call.status, call.disposition, call.ended_at = (
            CallStatus.ENDED,
            "blocked",
            event.occurred_at,
        )
        repo.add(call)
        return [Say(BLOCKED), Hangup()]
    version_id: UUID | None
    if event.flow_version is not None:  # the simulator console tries a version out
        version_id, flow = await flows.trial_flow(session, event.flow_version)
    else:
        version_id, flow = published, await flows.flow_for(session, published)
    progress = ivr.begin(flow, flow_version=str(version_id) if version_id else None)
    call.ivr_progress = progress.model_dump(mode="json")
    return await _advance(session, call, None, flow, _Settings(settings))


async def _advance(
    session: AsyncSession,
    call: Call,
    event: ivr.Event,
    flow: ivr.Flow | None = None,
    settings: _Settings | None = None,
) -> list[Command]:
    settings = settings or _Settings()
    progress = ivr.CallProgress.model_validate(call.ivr_progress)
    if flow is None:  # the version the call began in, whatever has been published since
        version = progress.flow_version
        flow = await flows.flow_by_id(session, UUID(version)) if version else ivr.DEMO_FLOW
    lookups = await _lookups(session, flow, progress, event)
    context = await _context(session, call, lookups, bool(progress.vip), settings)
    stepped = ivr.step(flow, progress, event, context)
    if progress.vip is None and _passed_a_tier(flow, progress, stepped[0]):
        # The caller's tier is looked up the first time the flow asks: step again knowing it
        # (the interpreter is pure, so the first try changed nothing).
        vip = await _is_vip(session, call, settings)
        progress = progress.model_copy(update={"vip": vip})
        context = replace(context, vip=vip)
        stepped = ivr.step(flow, progress, event, context)
    progress, commands, outcome = stepped
    call.ivr_progress, call.language = progress.model_dump(mode="json"), progress.language
    session.add(call)
    if outcome is None:
        return list(commands)
    # The path and the keys pressed stay with the call: the agent's screen pop shows them.
    call.ivr_path = {"path": progress.path, "variables": progress.variables}
    call.ivr_progress = None
    return [*commands, *await _leave_ivr(session, call, outcome, progress.vip, settings)]


def _passed_a_tier(flow: ivr.Flow, before: ivr.CallProgress, after: ivr.CallProgress) -> bool:
    entered = after.path[len(before.path) :]
    return any(isinstance(flow.nodes.get(node_id), ivr.TierNode) for node_id, _ in entered)


async def _lookups(
    session: AsyncSession, flow: ivr.Flow, progress: ivr.CallProgress, event: ivr.Event
) -> dict[str, ivr.Lookup]:
    """The interpreter looks digits up synchronously: run the lookup the caller's answer needs
    now (it may query the database) and hand the interpreter its result."""
    lookups: dict[str, ivr.Lookup] = {name: lambda _digits: None for name in LOOKUPS}
    node = flow.nodes.get(progress.node)
    if (
        isinstance(event, ev.DigitsGathered)
        and isinstance(node, ivr.InputNode)
        and node.lookup in LOOKUPS
    ):
        said = await LOOKUPS[node.lookup](
            session, event.digits.removesuffix("#"), progress.language
        )
        lookups[node.lookup] = lambda _digits: said
    return lookups


async def _context(
    session: AsyncSession,
    call: Call,
    lookups: dict[str, ivr.Lookup],
    vip: bool,
    known: _Settings,
) -> ivr.CallContext:
    settings = await known.get(session, call.tenant_id)
    open_now = True
    if settings is not None and settings.business_hours:
        open_now = is_open(BusinessHours.model_validate(settings.business_hours), datetime.now(UTC))
    return ivr.CallContext(is_open=open_now, vip=vip, lookups=lookups)


async def _is_vip(session: AsyncSession, call: Call, known: _Settings) -> bool:
    """A VIP by the tenant's list of numbers, or by the customer's tier."""
    settings = await known.get(session, call.tenant_id)
    if settings is not None and _normalised(call.from_number) in settings.vip_numbers:
        return True
    return await customers.is_vip(session, call.from_number)


def _e164(number: str) -> str | None:
    try:
        return e164(number, field="phone")
    except InvalidInput:
        return None


def _normalised(number: str) -> str:
    """VIP numbers are stored in E.164; carriers send callers in their own formats."""
    try:
        return e164(number, field="from")
    except InvalidInput:
        return number


async def _leave_ivr(
    session: AsyncSession, call: Call, outcome: Any, vip: bool | None, known: _Settings
) -> list[Command]:
    repo = ContactCenterRepository(session)
    if isinstance(outcome, ivr.ToQueue):
        queue = await repo.queue_by_name(outcome.queue_name) or await repo.queue_by_name(
            FALLBACK_QUEUE
        )
        if queue is None:
            call.status, call.disposition = CallStatus.ENDED, "no_queue"
            repo.add(call)
            return [Say(NOBODY), Hangup()]
        if vip is None:  # a flow without a tier node: decided now, for the queue's priority
            vip = await _is_vip(session, call, known)
        await service.enqueue(session, call, queue, vip=vip)
        return [Enqueue(queue.name, announcements=True)]
    if isinstance(outcome, ivr.ToVoicemail):
        # The flow's voicemail node has said its prompt already, in the caller's language.
        call.callback_requested, call.disposition = True, waiting.VOICEMAIL
        repo.add(call)
        return [Record(max_seconds=waiting.VOICEMAIL_SECONDS), Hangup()]
    call.status, call.disposition = CallStatus.ENDED, "ivr_hangup"
    repo.add(call)
    return []
