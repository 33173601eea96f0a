"""Outbox handlers of the customers domain: calls and SMS onto the timeline, contacts other
domains publish, and bulk imports in batches.

Handlers of one topic from several domains share one transaction: a handler here must never
fail the event for the others, so input it cannot use is logged and skipped, and every insert
is ON CONFLICT (a retried event records nothing twice)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any
from uuid import UUID

import structlog
from sqlmodel.ext.asyncio.session import AsyncSession

from customers import service
from customers.models import ContactDirection, ContactKind
from depotline import outbox
from depotline.db import Database
from depotline.errors import DomainError
from depotline.outbox import OutboxEvent
from telephony_gateway import service as gateway
from telephony_gateway.events import CallEnded, CallStarted, Direction

log = structlog.get_logger(__name__)

#: An import hands over to a fresh job after this long, so one big file never hits the job
#: timeout or holds a worker for long; progress is kept after each batch.
IMPORT_SLICE_SECONDS = 30.0


async def on_call_event(session: AsyncSession, event: OutboxEvent, ctx: Mapping[str, Any]) -> None:
    """A call starts: its customer (created for an unknown number) gets a 'call' entry; the
    call ends: the entry gets its length."""
    carrier_event = gateway.event_from_payload(event.payload)
    if isinstance(carrier_event, CallStarted):
        inbound = carrier_event.direction == Direction.INBOUND
        try:
            await service.record_contact(
                session,
                kind=ContactKind.CALL,
                ref=carrier_event.call_id,
                summary="",
                direction=ContactDirection.INBOUND if inbound else ContactDirection.OUTBOUND,
                at=carrier_event.occurred_at,
                phone=carrier_event.from_number if inbound else carrier_event.to_number,
            )
        except DomainError as exc:  # a withheld or unreadable caller id: nobody to file it under
            log.info("call not on any timeline", call_id=carrier_event.call_id, reason=exc.detail)
    elif isinstance(carrier_event, CallEnded):
        await service.call_ended(
            session,
            carrier_event.call_id,
            carrier_event.duration_seconds,
            carrier_event.reason,
            direction=ContactDirection(carrier_event.direction.value),
            at=carrier_event.occurred_at,
        )


async def on_sms_received(
    session: AsyncSession, event: OutboxEvent, ctx: Mapping[str, Any]
) -> None:
    await _sms(session, event, ContactDirection.INBOUND, event.payload.get("from"))


async def on_sms_requested(
    session: AsyncSession, event: OutboxEvent, ctx: Mapping[str, Any]
) -> None:
    # A retry of a refused send republishes only the id: the first request recorded it already.
    if "to" in event.payload:
        await _sms(session, event, ContactDirection.OUTBOUND, event.payload.get("to"))


async def _sms(
    session: AsyncSession, event: OutboxEvent, direction: ContactDirection, phone: object
) -> None:
    try:
        await service.record_contact(
            session,
            kind=ContactKind.SMS,
            ref=str(event.payload.get("sms_id", "")),
            summary=str(event.payload.get("body", "")),
            direction=direction,
            at=event.created_at,
            phone=str(phone or ""),
        )
    except DomainError as exc:
        log.info("sms not on any timeline", event_id=str(event.id), reason=exc.detail)


async def on_contact(session: AsyncSession, event: OutboxEvent, ctx: Mapping[str, Any]) -> None:
    """A contact another domain published (an order, a complaint, a callback ...)."""
    try:
        await service.record_contact_event(session, event.payload)
    except DomainError as exc:  # retrying would not make the payload any better
        log.warning(
            "customer contact event refused",
            event_id=str(event.id),
            field=exc.field,
            reason=exc.detail,
        )


async def on_import_requested(
    session: AsyncSession, event: OutboxEvent, ctx: Mapping[str, Any]
) -> None:
    """Work through an import, one committed batch at a time, so its page shows progress and
    a worker that dies resumes after the last batch."""
    db: Database = ctx["db"]
    import_id = UUID(event.payload["import_id"])
    async with db.session() as reading:
        rows = await service.import_rows(reading, import_id)
    if rows is None:
        return
    deadline = time.monotonic() + IMPORT_SLICE_SECONDS
    while True:
        async with db.session() as batch:
            more = await service.import_batch(batch, import_id, rows)
        if not more:
            return
        if time.monotonic() > deadline:
            outbox.publish(session, service.IMPORT_REQUESTED, event.payload)
            return


HANDLERS = {
    gateway.CALL_EVENT: [on_call_event],
    gateway.SMS_RECEIVED: [on_sms_received],
    gateway.SMS_REQUESTED: [on_sms_requested],
    service.CONTACT: [on_contact],
    service.IMPORT_REQUESTED: [on_import_requested],
}
