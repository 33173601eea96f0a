"""SwiftFreight with depots and zones, and helpers to book and move orders."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, TypeVar
from uuid import UUID
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from depotline.db import Database, tenant_scope, utcnow
from depotline.outbox import OutboxEvent
from pickup import service
from pickup.models import Depot, Order, OrderEvent, Zone
from pickup.repository import OrderFilter, PickupRepository
from pickup.schemas import DepotIn, OrderIn, SettingsIn, ZoneIn
from pickup.service import Actor
from tenant.models import Membership, Role, User
from tenant.repository import TenantRepository
from tenant.service import hash_password
from tests.telephony_gateway.conftest import Drain, drain, jobs  # noqa: F401  (fixtures)
from tests.tenant.conftest import PASSWORD, Demo
from tests.tenant.conftest import make_client as make_client
from tests.tenant.conftest import world as world

T = TypeVar("T")
SHANGHAI = ZoneInfo("Asia/Shanghai")
EVERY_DAY = [1, 2, 3, 4, 5, 6, 7]
AGENT = Actor(kind="user", name="Agent Sara")
#: Nanshan Science Park, longitude/latitude.
SCIENCE_PARK = {
    "type": "Polygon",
    "coordinates": [
        [
            [113.935, 22.525],
            [113.960, 22.525],
            [113.960, 22.555],
            [113.935, 22.555],
            [113.935, 22.525],
        ]
    ],
}
INSIDE_PARK = (22.54, 113.95)  # lat, lon
OUTSIDE_PARK = (22.60, 114.05)


def tomorrow() -> date:
    return (utcnow().astimezone(SHANGHAI) + timedelta(days=1)).date()


def at(day: date, hour: int, minute: int = 0) -> datetime:
    """A naive local time: what a booking form sends."""
    return datetime.combine(day, time(hour, minute))


def order_in(**fields: Any) -> OrderIn:
    """A valid pickup for tomorrow 10:00-12:00 in Guangzhou North's area, changed by `fields`
    (sender_* keys change the sender)."""
    sender = {
        "name": "陈先生",
        "phone": "+8613800138000",
        "address": "白云区云城西路888号",
        "city": "广州",
        "postal_code": "510410",
    }
    for key in list(fields):
        if key.startswith("sender_"):
            sender[key.removeprefix("sender_")] = fields.pop(key)
    day = fields.pop("day", tomorrow())
    data: dict[str, Any] = {
        "sender": sender,
        "window_start": at(day, 10),
        "window_end": at(day, 12),
        "parcels": [{"count": 2, "weight_kg": 1.5, "declared_value": "100.00"}],
    }
    data.update(fields)
    return OrderIn.model_validate(data)


@dataclass
class Pickup:
    db: Database
    world: Demo
    tenant_id: UUID
    depots: dict[str, Depot]
    zones: dict[str, Zone]

    async def run(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """A service function in its own transaction under SwiftFreight's scope."""
        with tenant_scope(self.tenant_id):
            async with self.db.session() as session:
                return await fn(session, *args, **kwargs)

    async def book(self, data: OrderIn | None = None, **kwargs: Any) -> Order:
        booking = await self.run(service.create_order, AGENT, data or order_in(), **kwargs)
        return booking.order

    async def dispatched(self, data: OrderIn | None = None) -> Order:
        """Booked and dispatched at once (the outbox job does the same a moment later)."""
        order = await self.book(data)
        await self.run(service.dispatch, order.id)
        return await self.order(order.id)

    async def order(self, order_id: UUID) -> Order:
        return await self.run(service.get_order, order_id)

    async def timeline(self, order_id: UUID) -> list[OrderEvent]:
        return list(await self.run(service.timeline, order_id))

    async def events(self, topic: str) -> list[dict[str, Any]]:
        """Payloads of the outbox events of a topic, oldest first."""
        with tenant_scope(self.tenant_id):
            async with self.db.session() as session:
                rows = await session.exec(
                    select(OutboxEvent)
                    .where(OutboxEvent.topic == topic)
                    .order_by(OutboxEvent.created_at)  # type: ignore[arg-type]
                )
                return [row.payload for row in rows]

    def depot_name(self, depot_id: UUID | None) -> str | None:
        return next((d.name for d in self.depots.values() if d.id == depot_id), None)


async def _setup(session: AsyncSession) -> tuple[dict[str, Depot], dict[str, Zone]]:
    await service.save_rules(session, SettingsIn(order_prefix="SF"))
    depots = {
        name: await service.save_depot(
            session,
            DepotIn(
                name=name,
                code=code,
                address=f"{name} depot",
                sms_contacts=[contact],
                daily_capacity=capacity,
                open_days=EVERY_DAY,  # tests book for tomorrow, whatever day that is
            ),
        )
        for name, code, contact, capacity in (
            ("Guangzhou North", "GZN", "+8613800000101", 2),
            ("Guangzhou South", "GZS", "+8613800000201", None),
            ("Shenzhen", "SZ", "+8613800000301", None),
            ("Shenzhen Tech", "SZT", "+8613800000401", None),
        )
    }
    zones = {}
    for name, depot, priority, codes, polygon in (
        ("Baiyun", "Guangzhou North", 10, ["5104xx"], None),
        ("Guangzhou", "Guangzhou South", 0, ["510xxx"], None),
        ("Shenzhen", "Shenzhen", 0, ["518xxx"], None),
        ("Science Park", "Shenzhen Tech", 20, [], SCIENCE_PARK),
    ):
        zones[name] = await service.save_zone(
            session,
            ZoneIn(
                name=name,
                depot_id=depots[depot].id,
                priority=priority,
                postal_codes=codes,
                geojson=polygon,
            ),
        )
    return depots, zones


@pytest.fixture
async def pickup(db: Database, world: Demo) -> Pickup:
    """SwiftFreight (orders SF-...): Guangzhou North (2 orders a day) serves 5104xx first,
    Guangzhou South all of 510xxx, Shenzhen 518xxx, Shenzhen Tech the Science Park polygon."""
    tenant_id = world.tenants["swiftfreight"]
    with tenant_scope(tenant_id):
        async with db.session() as session:
            depots, zones = await _setup(session)
    return Pickup(db, world, tenant_id, depots, zones)


async def depot_user(db: Database, tenant_id: UUID, depot_id: UUID, email: str) -> UUID:
    """A member with the depot user role, linked to one depot."""
    async with db.session() as session:
        user = User(email=email, name=email.split("@")[0], password_hash=hash_password(PASSWORD))
        TenantRepository(session).add(user)
        await session.flush()
        user_id = user.id
    with tenant_scope(tenant_id):
        async with db.session() as session:
            session.add(Membership(user_id=user_id, role=Role.DEPOT_USER))
            await service.add_depot_user(session, depot_id, user_id)
    return user_id


async def count_orders(pickup: Pickup) -> int:
    with tenant_scope(pickup.tenant_id):
        async with pickup.db.session() as session:
            return len(await PickupRepository(session).orders(OrderFilter()))
