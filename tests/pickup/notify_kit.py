"""What the notification and tracking tests share: SwiftFreight's depots (tests/pickup/conftest),
a carrier line, the handsets of the simulated network, SMS typed on a depot's phone, and a
clock that can be moved on for the outbox's delayed events.

Import the fixtures into a test module: `from tests.pickup.notify_kit import line, network`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from uuid import uuid4

import pytest
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from depotline.config import Settings
from depotline.db import Database, tenant_scope
from pickup.notifications import DEPOT_ANSWER_DUE
from telephony_gateway import service as gateway
from telephony_gateway.models import SmsMessage
from telephony_gateway.providers.base import InboundRequest
from telephony_gateway.providers.registry import Providers
from telephony_gateway.providers.simulator import handset_key, signed_form
from telephony_gateway.repository import GatewayRepository
from telephony_gateway.routes import take_in
from tests.telephony_gateway.conftest import NUMBER, Line
from tests.telephony_gateway.conftest import line as line

#: The customer of `order_in()` (its sender) and the depots' SMS contacts (tests/pickup/conftest).
CUSTOMER = "+8613800138000"
NORTH = "+8613800000101"
SOUTH = "+8613800000201"

__all__ = ["CUSTOMER", "NORTH", "SOUTH", "Network", "line", "network"]


@dataclass
class Network:
    """The simulated carrier as the people on it see it."""

    db: Database
    line: Line
    redis_url: str
    providers: Providers
    owner: AsyncEngine

    async def inbox(self, number: str) -> list[str]:
        """Every SMS the handset `number` received, oldest first."""
        redis = Redis.from_url(self.redis_url)
        try:
            items = await redis.lrange(handset_key(number), 0, -1)
        finally:
            await redis.aclose()
        return [json.loads(item)["body"] for item in reversed(items)]

    async def text(self, sender: str, body: str, message_id: str | None = None) -> None:
        """`sender` texts the tenant's number (a signed simulator webhook, as the carrier's)."""
        event_id = message_id or uuid4().hex
        form, headers = signed_form(
            self.providers.webhook_secret(self.line.account),
            {
                "event_id": event_id,
                "message_id": event_id,
                "from": sender,
                "to": NUMBER,
                "body": body,
            },
        )
        await take_in(
            self.db,
            self.providers,
            "simulator",
            "sms",
            InboundRequest("", "POST", headers, {}, form),
        )

    async def messages(self) -> list[SmsMessage]:
        with tenant_scope(self.line.account.tenant_id):
            async with self.db.session() as session:
                return list(await GatewayRepository(session).sms_log())

    async def time_passes(self, topic: str = DEPOT_ANSWER_DUE) -> int:
        """The delayed events of `topic` fall due now (as if their minutes had gone by)."""
        async with self.owner.begin() as conn:
            moved = await conn.execute(
                text(
                    "update outbox_events set available_at = now() "
                    "where topic = :topic and processed_at is null"
                ),
                {"topic": topic},
            )
        return int(moved.rowcount)


@pytest.fixture
def network(
    db: Database, line: Line, redis_url: str, settings: Settings, owner_engine: AsyncEngine
) -> Network:
    providers = Providers(settings.session_secret(), settings.public_url, None)
    return Network(db, line, redis_url, providers, owner_engine)


async def usage(db: Database, line: Line) -> dict[str, int]:
    with tenant_scope(line.account.tenant_id):
        async with db.session() as session:
            return await gateway.usage_summary(session)
