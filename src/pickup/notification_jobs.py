"""Outbox handlers of pickup notifications: SMS to depots and customers as orders move, depots'
SMS answers, and the reminder when a depot stays silent.

Message ids come from the event (or the offer, or the inbound SMS), so an event handled again
sends nothing new. Each handler runs in the event's transaction next to other domains'
handlers: an SMS that cannot be sent is noted on the order, never raised.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from sqlmodel.ext.asyncio.session import AsyncSession

from depotline.config import Settings
from depotline.outbox import OutboxEvent
from pickup import notifications, service
from telephony_gateway import service as gateway


def _public_url(ctx: Mapping[str, Any]) -> str:
    settings: Settings = ctx["settings"]
    return settings.public_url


async def on_order_booked(
    session: AsyncSession, event: OutboxEvent, ctx: Mapping[str, Any]
) -> None:
    order_id = event.payload["order_id"]
    await notifications.tell_customer(
        session, UUID(order_id), "booked", f"pickup:{order_id}:booked", _public_url(ctx)
    )


async def on_depot_assigned(
    session: AsyncSession, event: OutboxEvent, ctx: Mapping[str, Any]
) -> None:
    """A depot chosen after the booking (a redispatch, by hand) hears of it here; a new
    booking's depot was told by dispatch itself (pickup.jobs)."""
    payload = event.payload
    if payload.get("depot_told"):
        return
    await notifications.offer_to_depot(
        session,
        UUID(payload["order_id"]),
        UUID(payload["depot_id"]),
        UUID(payload["assignment_id"]),
    )


async def on_depot_answered(
    session: AsyncSession, event: OutboxEvent, ctx: Mapping[str, Any]
) -> None:
    """The customer hears of the depot once it has said yes."""
    payload = event.payload
    if not payload.get("accepted"):
        return
    order_id = payload["order_id"]
    await notifications.tell_customer_depot_confirmed(
        session,
        UUID(order_id),
        UUID(payload["depot_id"]),
        f"pickup:{order_id}:depot_assigned:{event.id}",
        _public_url(ctx),
    )


async def on_status_changed(
    session: AsyncSession, event: OutboxEvent, ctx: Mapping[str, Any]
) -> None:
    payload = event.payload
    kind = payload["to"]
    if kind not in notifications.STATUS_KINDS:
        return
    order_id = payload["order_id"]
    await notifications.tell_customer(
        session,
        UUID(order_id),
        kind,
        f"pickup:{order_id}:{kind}:{event.id}",
        _public_url(ctx),
        reason=payload.get("reason") or "",
    )


async def on_window_moved(
    session: AsyncSession, event: OutboxEvent, ctx: Mapping[str, Any]
) -> None:
    await notifications.tell_window_moved(session, event.payload, _public_url(ctx))


async def on_sms_received(
    session: AsyncSession, event: OutboxEvent, ctx: Mapping[str, Any]
) -> None:
    payload = event.payload
    await notifications.answer_depot_sms(
        session, payload["sms_id"], payload["from"], payload["body"]
    )


async def on_depot_answer_due(
    session: AsyncSession, event: OutboxEvent, ctx: Mapping[str, Any]
) -> None:
    await notifications.depot_answer_due(session, event.payload)


HANDLERS = {
    service.ORDER_BOOKED: [on_order_booked],
    service.DEPOT_ASSIGNED: [on_depot_assigned],
    service.DEPOT_ANSWERED: [on_depot_answered],
    service.STATUS_CHANGED: [on_status_changed],
    service.WINDOW_MOVED: [on_window_moved],
    gateway.SMS_RECEIVED: [on_sms_received],
    notifications.DEPOT_ANSWER_DUE: [on_depot_answer_due],
}
