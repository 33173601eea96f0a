"""Demo pickup data: SwiftFreight's depots in Guangzhou and Shenzhen, zones by postal-code prefix
and one drawn on the map, a depot user and a few orders in different states. Safe to run again."""

from __future__ import annotations

import os
from datetime import datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from depotline.db import Database, tenant_scope, utcnow
from pickup import service
from pickup.models import OrderKind, Payment
from pickup.repository import OrderFilter, PickupRepository
from pickup.schemas import DepotIn, OrderIn, ParcelIn, PartyIn, SettingsIn, ZoneIn
from tenant.demo import DEFAULT_DEMO_PASSWORD
from tenant.models import Membership, Role, User
from tenant.repository import TenantRepository
from tenant.service import hash_password

TENANT = "swiftfreight"
SHANGHAI = ZoneInfo("Asia/Shanghai")
DEPOT_USER = ("depot.gzn@swiftfreight.test", "Guangzhou North depot")
#: Express depots work all week (and the demo's orders are for tomorrow, whatever day that is).
EVERY_DAY = [1, 2, 3, 4, 5, 6, 7]

DEPOTS = [
    DepotIn(
        name="Guangzhou North",
        code="GZN",
        address="白云区机场路1688号",
        city="广州",
        postal_code="510405",
        sms_contacts=["+8613800000101", "+8613800000102"],
        open_days=EVERY_DAY,
        daily_capacity=40,
        slot_capacity=8,
    ),
    DepotIn(
        name="Guangzhou South",
        code="GZS",
        address="海珠区新港东路1000号",
        city="广州",
        postal_code="510308",
        sms_contacts=["+8613800000201"],
        open_days=EVERY_DAY,
        daily_capacity=60,
    ),
    DepotIn(
        name="Shenzhen",
        code="SZ",
        address="南山区科技园南区深南大道9988号",
        city="深圳",
        postal_code="518057",
        sms_contacts=["+8613800000301"],
        language="zh_Hant",
        open_days=EVERY_DAY,
        daily_capacity=80,
    ),
]
#: (zone, depot, priority, postal codes): North first for its districts, South for the rest of
#: Guangzhou (and when North is full), Shenzhen by prefix.
ZONES = [
    ("Guangzhou Baiyun and Huadu", "Guangzhou North", 10, ["5104xx", "5108xx"]),
    ("Guangzhou (all 510)", "Guangzhou South", 0, ["510xxx"]),
    ("Shenzhen (all 518)", "Shenzhen", 0, ["518xxx"]),
]
#: Nanshan Science Park, drawn on the map: wins over the prefix zone there.
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


def _orders(now: datetime) -> list[OrderIn]:
    tomorrow = (now.astimezone(SHANGHAI) + timedelta(days=1)).date()

    def window(hour: int) -> tuple[datetime, datetime]:
        start = datetime.combine(tomorrow, time(hour))
        return start, start + timedelta(hours=2)

    def order(
        name: str, phone: str, address: str, postal: str, hour: int, **extra: object
    ) -> OrderIn:
        start, end = window(hour)
        fields: dict[str, object] = {
            "sender": PartyIn(
                name=name, phone=phone, address=address, city="广州", postal_code=postal
            ),
            "window_start": start,
            "window_end": end,
            "parcels": [ParcelIn(count=1, weight_kg=2.5, declared_value=Decimal("200"))],
        }
        fields.update(extra)
        return OrderIn.model_validate(fields)

    return [
        # The simulator's caller (王芳 in the customers demo).
        order("王芳", "+8613800138000", "白云区云城西路888号", "510410", 10, notes="前台代收"),
        order(
            "Li Hua",
            "+8613912345678",
            "海珠区江南大道中100号",
            "510220",
            14,
            kind=OrderKind.PICKUP_AND_DELIVERY,
            receiver=PartyIn(
                name="王小姐",
                phone="+8613700001111",
                address="深圳市南山区科技南路18号",
                city="深圳",
                postal_code="518057",
            ),
            payment=Payment.CASH_ON_DELIVERY,
            cash_amount=Decimal("35.00"),
            language="en",
        ),
        order(
            "张女士",
            "+8613611112222",
            "南山区科苑南路3099号",
            "518063",
            10,
            sender=PartyIn(
                name="张女士",
                phone="+8613611112222",
                address="南山区科苑南路3099号",
                city="深圳",
                postal_code="518063",
                lat=22.54,
                lon=113.95,
            ),
            language="zh_Hant",
        ),
        # No zone covers Zhuhai: the order lands on the exceptions list.
        order("周先生", "+8613522223333", "珠海市香洲区情侣中路1号", "519000", 15),
    ]


async def seed(db: Database) -> list[str]:
    async with db.session() as session:
        tenant = await TenantRepository(session).tenant_by_slug(TENANT)
    if tenant is None:
        return []
    with tenant_scope(tenant.id):
        async with db.session() as session:
            repo = PickupRepository(session)
            if await repo.depot_by_name(tenant.id, DEPOTS[0].name) is None:
                await service.save_rules(session, SettingsIn(order_prefix="SF"))
                depots = {d.name: await service.save_depot(session, d) for d in DEPOTS}
                for name, depot, priority, codes in ZONES:
                    await service.save_zone(
                        session,
                        ZoneIn(
                            name=name,
                            depot_id=depots[depot].id,
                            priority=priority,
                            postal_codes=codes,
                        ),
                    )
                await service.save_zone(
                    session,
                    ZoneIn(
                        name="Nanshan Science Park",
                        depot_id=depots["Shenzhen"].id,
                        priority=20,
                        geojson=SCIENCE_PARK,
                    ),
                )
        await _depot_user(db, tenant.id)
        async with db.session() as session:
            if not await PickupRepository(session).orders(OrderFilter(limit=1)):
                await _demo_orders(db)
    email, name = DEPOT_USER
    return [
        "",
        "Pickup depots (SwiftFreight): Guangzhou North, Guangzhou South, Shenzhen;",
        f"  the depot page /pickup/depot: {email} ({name})",
    ]


async def _depot_user(db: Database, tenant_id: object) -> None:
    email, name = DEPOT_USER
    password = os.environ.get("DEMO_PASSWORD", DEFAULT_DEMO_PASSWORD)
    async with db.session() as session:
        repo = TenantRepository(session)
        user = await repo.user_by_email(email)
        if user is None:
            user = User(email=email, name=name, password_hash=hash_password(password))
            repo.add(user)
            await repo.flush()
        user_id = user.id
    async with db.session() as session:
        repo = TenantRepository(session)
        pickup = PickupRepository(session)
        depot = await pickup.depot_by_name(tenant_id, "Guangzhou North")  # type: ignore[arg-type]
        assert depot is not None
        if await repo.membership(depot.tenant_id, user_id) is None:
            repo.add(Membership(user_id=user_id, role=Role.DEPOT_USER))
        await service.add_depot_user(session, depot.id, user_id)


async def _demo_orders(db: Database) -> None:
    demo = service.Actor.system("demo data")
    now = utcnow()
    booked = []
    for data in _orders(now):
        async with db.session() as session:
            booked.append((await service.create_order(session, demo, data, now=now)).order.id)
    # Dispatch now rather than waiting for the worker, so the demo starts in a known state.
    for order_id in booked:
        async with db.session() as session:
            await service.dispatch(session, order_id)
    async with db.session() as session:
        first = booked[0]
        depot = service.Actor.system("Guangzhou North (demo)")
        await service.depot_accepts(session, first, depot)
        await service.record_status(session, first, "driver_assigned", depot, driver_name="刘师傅")
