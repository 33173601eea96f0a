"""Outbox handlers of the carrier gateway (run by the worker)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any
from uuid import UUID

from redis.asyncio import Redis
from sqlmodel.ext.asyncio.session import AsyncSession

from depotline.db import Database
from depotline.outbox import OutboxEvent
from telephony_gateway import service
from telephony_gateway.events import SmsStatus
from telephony_gateway.providers.base import SmsProvider
from telephony_gateway.providers.registry import Providers
from telephony_gateway.repository import GatewayRepository


async def wait_for_send_slot(redis: Redis, account_id: UUID, per_second: float) -> None:
    """A per-account send rate shared by every worker: at most `per_second` sends are started
    in each wall-clock second; a sender over the limit waits for the next second."""
    limit = max(1, int(per_second))
    while True:
        second = int(time.time())
        key = f"depotline:sms-rate:{account_id}:{second}"
        count = await redis.incr(key)
        if count == 1:
            await redis.expire(key, 2)
        if count <= limit:
            return
        await asyncio.sleep(max(0.01, second + 1 - time.time()))


async def on_sms_requested(
    session: AsyncSession, event: OutboxEvent, ctx: Mapping[str, Any]
) -> None:
    """Claim (own transaction, committed), call the carrier, record what it said (with the
    outbox event): see `service.claim_for_sending` for why the claim commits first."""
    sms_id = UUID(event.payload["sms_id"])
    db: Database = ctx["db"]
    async with db.session() as claim_session:
        sms = await service.claim_for_sending(claim_session, sms_id)
        account = (
            await GatewayRepository(claim_session).get_account(sms.account_id)
            if sms and sms.account_id
            else None
        )
    if sms is None or account is None:
        return
    providers: Providers = ctx["providers"]
    provider: SmsProvider = providers.for_account(account)  # type: ignore[assignment]
    await wait_for_send_slot(ctx["redis"], account.id, account.sms_per_second)
    outcome = await service.hand_to_carrier(
        sms, provider, providers.status_url(account, sms.message_id)
    )
    await service.record_outcome(session, sms_id, outcome)


async def on_carrier_event(
    session: AsyncSession, event: OutboxEvent, ctx: Mapping[str, Any]
) -> None:
    """A carrier event that came through the outbox: the simulator's delivery reports, and
    reports that arrived before their message was recorded (tried again a few times)."""
    carrier_event = service.event_from_payload(event.payload)
    if event.tenant_id is None:
        return
    if isinstance(carrier_event, SmsStatus) and await service.before_its_message(
        session, carrier_event
    ):
        service.defer_report(session, carrier_event, int(event.payload.get("attempt", 1)) + 1)
        return
    if await service.first_sighting(session, carrier_event):
        await service.apply_event(session, event.tenant_id, None, carrier_event)


HANDLERS = {
    service.SMS_REQUESTED: [on_sms_requested],
    service.CARRIER_EVENT: [on_carrier_event],
}
