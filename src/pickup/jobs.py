"""Outbox handlers of pickup: dispatch right after a booking commits."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from sqlmodel.ext.asyncio.session import AsyncSession

from depotline.outbox import OutboxEvent
from pickup import notifications, service


async def on_order_booked(
    session: AsyncSession, event: OutboxEvent, ctx: Mapping[str, Any]
) -> None:
    """Dispatch, and SMS the chosen depot in the same transaction: the depot's SMS is queued
    the moment the decision commits, not one event later. Idempotent: an order that is no
    longer 'booked' has been dispatched (and its depot told) already."""
    offered = await service.dispatch(session, UUID(event.payload["order_id"]), depot_told=True)
    if offered is not None:
        await notifications.offer(session, offered)


HANDLERS = {service.ORDER_BOOKED: [on_order_booked]}
