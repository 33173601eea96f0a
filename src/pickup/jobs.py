"""Outbox handlers of pickup: dispatch right after a booking commits."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from sqlmodel.ext.asyncio.session import AsyncSession

from depotline.outbox import OutboxEvent
from pickup import service


async def on_order_booked(
    session: AsyncSession, event: OutboxEvent, ctx: Mapping[str, Any]
) -> None:
    """Idempotent: an order that is no longer 'booked' has been dispatched already."""
    await service.dispatch(session, UUID(event.payload["order_id"]))


HANDLERS = {service.ORDER_BOOKED: [on_order_booked]}
