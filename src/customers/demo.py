"""Demo customers: SwiftFreight's in Guangzhou and Shenzhen (the simulator's default caller
among them, with a few past contacts) and Harbour Logistics' in Hong Kong. Safe to run again:
a customer whose first number is known already is left as it is."""

from __future__ import annotations

from datetime import timedelta

from customers import service
from customers.repository import CustomerRepository
from customers.schemas import AddressIn, CustomerIn
from depotline.db import Database, tenant_scope, utcnow
from telephony_gateway.simulate import DEFAULT_CALLER
from tenant.repository import TenantRepository

CUSTOMERS: dict[str, list[CustomerIn]] = {
    "swiftfreight": [
        CustomerIn(
            name="王芳",
            phones=[DEFAULT_CALLER],
            tags=["frequent shipper", "e-commerce"],
            notes="Runs an online tea shop; ships most weekdays before 5 pm.",
            language="zh_Hans",
            addresses=[
                AddressIn(
                    label="Shop",
                    line1="天河路 385 号太古汇 2 楼",
                    district="天河区",
                    city="广州",
                    postal_code="510620",
                    lat=23.1327,
                    lon=113.3320,
                )
            ],
        ),
        CustomerIn(
            name="李伟",
            phones=["+8613912345678", "+8675586001234"],
            tier="vip",
            tags=["contract", "electronics"],
            notes="Key account: Nanshan electronics trader. Pickups need a van.",
            language="zh_Hans",
            addresses=[
                AddressIn(
                    label="Warehouse",
                    line1="高新南七道 12 号",
                    district="南山区",
                    city="深圳",
                    postal_code="518057",
                    lat=22.5333,
                    lon=113.9440,
                )
            ],
        ),
        CustomerIn(
            name="John Carter",
            phones=["+8618612345678"],
            tags=["expat"],
            addresses=[
                AddressIn(
                    label="Office",
                    line1="Room 1508, 183 Huanshi East Road",
                    district="Yuexiu District",
                    city="Guangzhou",
                    postal_code="510030",
                    lat=23.1400,
                    lon=113.2800,
                )
            ],
        ),
        CustomerIn(
            name="陈小红",
            phones=["+8613600001111"],
            language="zh_Hans",
            addresses=[
                AddressIn(
                    label="Home",
                    line1="福华三路 88 号",
                    district="福田区",
                    city="深圳",
                    postal_code="518048",
                    lat=22.5360,
                    lon=114.0570,
                )
            ],
        ),
        CustomerIn(
            name="刘洋",
            phones=["+8615000002222", "+862038001234"],
            tags=["returns"],
            language="zh_Hans",
            addresses=[
                AddressIn(
                    label="Home",
                    line1="江南大道中 100 号",
                    district="海珠区",
                    city="广州",
                    postal_code="510220",
                    lat=23.0960,
                    lon=113.2700,
                )
            ],
        ),
    ],
    "harbour": [
        CustomerIn(
            name="張家豪",
            phones=["+85291234567"],
            language="zh_Hant",
            addresses=[
                AddressIn(
                    label="Home",
                    line1="彌敦道 300 號 8 樓",
                    district="油尖旺區",
                    city="九龍",
                    country="HK",
                    lat=22.3080,
                    lon=114.1710,
                )
            ],
        ),
        CustomerIn(
            name="Emily Wong",
            phones=["+85261234567"],
            tier="vip",
            tags=["corporate"],
            addresses=[
                AddressIn(
                    label="Office",
                    line1="18/F, 9 Queen's Road Central",
                    district="Central and Western",
                    city="Hong Kong",
                    country="HK",
                    lat=22.2810,
                    lon=114.1580,
                )
            ],
        ),
    ],
}

#: Past contacts of the simulator's default caller: (kind, direction, days ago, summary).
HISTORY: list[tuple[str, str, int, str]] = [
    ("call", "inbound", 9, "3:12 (completed)"),
    ("sms", "outbound", 8, "您的包裹 SF1234567890 已揽收"),
    ("call", "inbound", 2, "1:45 (completed)"),
    ("sms", "outbound", 1, "您的包裹 SF1234567890 已签收"),
]


async def seed(db: Database) -> list[str]:
    lines = ["", "Demo customers (search them at /customers):"]
    for slug, customers in CUSTOMERS.items():
        async with db.session() as session:
            tenant = await TenantRepository(session).tenant_by_slug(slug)
        if tenant is None:
            continue
        with tenant_scope(tenant.id):
            for data in customers:
                async with db.session() as session:
                    known = await CustomerRepository(session).customer_by_phone(
                        tenant.id, data.phones[0]
                    )
                    if known is None:
                        await service.create_customer(session, None, data)
            lines.append(f"  {tenant.name}: {len(customers)} customers")
            if slug == "swiftfreight":
                await _history(db)
    lines.append(f"  {DEFAULT_CALLER} (the simulator's caller) is 王芳, with past calls and SMS")
    return lines


async def _history(db: Database) -> None:
    now = utcnow()
    async with db.session() as session:
        for number, (kind, direction, days, summary) in enumerate(HISTORY, start=1):
            # A fixed ref per entry: running the seeder again records nothing twice.
            await service.record_contact(
                session,
                kind=kind,
                ref=f"demo-{kind}-{number}",
                summary=summary,
                direction=direction,
                at=now - timedelta(days=days),
                phone=DEFAULT_CALLER,
            )
