"""The demo data: SwiftFreight's depots and zones and a few orders in telling states; seeding
again changes nothing."""

from __future__ import annotations

from depotline.db import Database, tenant_scope
from pickup import demo
from pickup.models import OrderStatus
from pickup.repository import OrderFilter, PickupRepository
from tests.tenant.conftest import Demo


async def test_the_demo_seeds_depots_zones_and_orders_once(db: Database, world: Demo) -> None:
    lines = await demo.seed(db)
    assert any("/pickup/depot" in line for line in lines)
    await demo.seed(db)  # again: nothing doubles
    with tenant_scope(world.tenants["swiftfreight"]):
        async with db.session() as session:
            repo = PickupRepository(session)
            depots = {d.id: d.name for d in await repo.depots()}
            zones = await repo.zones()
            orders = list(await repo.orders(OrderFilter()))
    assert sorted(depots.values()) == ["Guangzhou North", "Guangzhou South", "Shenzhen"]
    assert len(zones) == 4 and sum(1 for z in zones if z.polygon) == 1
    assert len(orders) == 4 and all(o.number.startswith("SF-") for o in orders)
    by_address = {o.sender_address: o for o in orders}
    assert by_address["白云区云城西路888号"].status == OrderStatus.DRIVER_ASSIGNED
    assert depots[by_address["南山区科苑南路3099号"].depot_id] == "Shenzhen"  # type: ignore[index]
    assert by_address["珠海市香洲区情侣中路1号"].status == OrderStatus.UNSERVICEABLE
