"""Tenant isolation, proven from outside: every route of the app that takes an identifier is
called by tenant A (signed in, and with an API key) with tenant B's identifiers. Each must answer
404 (never 200, a redirect, or 403, which would tell A that the record exists), and B's data must
be unchanged afterwards. Routes are enumerated from the app itself, so routes added later are
walked too; a new kind of identifier fails the test until B gets a record of that kind."""

from __future__ import annotations

import re
from collections.abc import Callable

import httpx
from litestar import Litestar
from litestar.routes import HTTPRoute
from litestar.testing import AsyncTestClient

from contact_center import desk, flows, ivr
from contact_center import service as contact_center
from contact_center.models import Call
from customers import service as customers
from customers.schemas import CustomerIn
from depotline.db import Database, tenant_scope
from pickup import service as pickup
from pickup.repository import OrderFilter, PickupRepository
from pickup.schemas import DepotIn, ZoneIn
from telephony_gateway import service as gateway
from tenant.repository import TenantRepository
from tests.pickup.conftest import order_in as pickup_probe_order
from tests.tenant.conftest import Demo, MakeClient, csrf_of, sign_in
from tests.tenant.test_seats import principal, take

#: Path parameters that are not identifiers of tenant data (carriers' webhooks are reached by
#: signature, not by session; tests/telephony_gateway proves forged ones are refused).
NOT_IDENTIFIERS = {"locale", "file_path", "path", "action", "provider", "kind"}
#: A body every mutating endpoint accepts as well-formed, so that only the identifier decides.
ANY_BODY = {
    "role": "agent",
    "seats": 1,
    "name": "Probe",
    "email": "probe@example.test",
    "client_id": "00000000-0000-0000-0000-000000000000",
    "user_id": "00000000-0000-0000-0000-000000000000",
    "kind": "client",
    "slug": "probe",
    "starts_on": "2026-01-01",
    "issuer": "https://sso.example.test",
    "password": "long-enough-password",
    "depot_id": "00000000-0000-0000-0000-000000000000",
    "window_start": "2026-01-01T10:00:00",
    "window_end": "2026-01-01T12:00:00",
}
PARAM = re.compile(r"\{(\w+)(?::\w+)?\}")


async def b_records(db: Database, world: Demo) -> dict[str, str]:
    """One record of every kind, all belonging to tenant B (Harbour Logistics)."""
    harbour = world.tenants["harbour"]
    seat = await take(db, "agent1@callpro.test", world, client="harbour")
    admin = await principal(db, "admin@harbour.test", harbour)
    with tenant_scope(harbour):
        async with db.session() as session:
            from tenant import service

            key, _ = await service.create_api_key(
                session, admin, "B's key", "tenant_admin", ["read", "write"]
            )
            lease = (await TenantRepository(session).leases())[0]
            account = await gateway.create_account(
                session,
                admin,
                provider="simulator",
                label="B's carrier",
                settings={},
                credentials={},
                sender_id=None,
                sms_per_second=5,
                secret=b"k" * 32,
            )
            await session.flush()
            await gateway.add_number(session, admin, number="+85230000001", account_id=account.id)
            sms = await gateway.send_sms(
                session, to="+85291234567", body="B's secret", message_id="b-msg-1"
            )
            block = await contact_center.block_number(
                session, admin, "+85291230000", "B's blocklist"
            )
            # B's admin is on B's floor: `user_id` names an agent the console could act on.
            await contact_center.agent_signs_in(session, world.users["admin@harbour.test"], harbour)
            flow = await flows.save_draft(session, admin, ivr.to_json(ivr.DEMO_FLOW))
            # A call on B's line and a wrap-up code of B's (the agent desk's identifiers).
            b_call = Call(
                provider="simulator",
                provider_call_id="b-call-1",
                from_number="+85291234567",
                to_number="+85230000001",
            )
            session.add(b_call)
            code = await desk.add_code(session, admin, "wrap_up", "B's code")
            # A customer of B's and an import of B's (the customers domain's identifiers).
            b_customer = await customers.create_customer(
                session, admin, CustomerIn(name="B's customer", phones=["+85291239999"])
            )
            b_import = await customers.start_import(
                session, admin, file_name="b.csv", content=b"name,phone\nB,+85291238888\n"
            )
            # A depot, a zone and an order of B's (pickup's identifiers).
            b_depot = await pickup.save_depot(
                session, DepotIn(name="B's depot", code="BD", address="B's yard")
            )
            b_zone = await pickup.save_zone(
                session, ZoneIn(name="B's zone", depot_id=b_depot.id, postal_codes=["999xxx"])
            )
            b_order = (
                await pickup.create_order(session, pickup.Actor.system("B"), pickup_probe_order())
            ).order
            assignment = next(
                a for a in await TenantRepository(session).assignments() if a.client_id == harbour
            )
    return {
        "tenant_id": str(harbour),
        "user_id": str(world.users["admin@harbour.test"]),
        "lease_id": str(lease.id),
        "assignment_id": str(assignment.id),
        "seat_session_id": str(seat.id),
        "key_id": str(key.id),
        "token": "not-a-token-of-anyone",
        "message_id": sms.message_id,
        "entry_id": str(block.id),
        "version_id": str(flow.version.id),
        "call_id": str(b_call.id),
        "code_id": str(code.id),
        "customer_id": str(b_customer.id),
        "import_id": str(b_import.id),
        "depot_id": str(b_depot.id),
        "zone_id": str(b_zone.id),
        "order_id": str(b_order.id),
    }


def routes_with_identifiers(app: Litestar) -> list[tuple[str, str, list[str]]]:
    found: list[tuple[str, str, list[str]]] = []
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        names = [n for n in PARAM.findall(route.path) if n not in NOT_IDENTIFIERS]
        if not names:
            continue
        for method in sorted(route.methods):
            if method not in ("HEAD", "OPTIONS"):
                found.append((str(method), route.path, names))
    return found


async def walk(
    browser: httpx.AsyncClient, app: Litestar, records: dict[str, str], headers: dict[str, str]
) -> list[str]:
    leaks = []
    for method, path, names in routes_with_identifiers(app):
        unknown = [n for n in names if n not in records]
        assert not unknown, f"{method} {path}: give tenant B a record for {unknown}"
        url = PARAM.sub(lambda m: records.get(m.group(1), m.group(0)), path)
        if method == "GET":
            response = await browser.get(url, headers=headers, follow_redirects=False)
        else:
            response = await browser.request(
                method, url, json=ANY_BODY, headers=headers, follow_redirects=False
            )
        if response.status_code != 404:
            leaks.append(f"{method} {url} -> {response.status_code} {response.text[:120]}")
    return leaks


async def b_state(db: Database, world: Demo) -> tuple[object, ...]:
    harbour = world.tenants["harbour"]
    with tenant_scope(harbour):
        async with db.session() as session:
            repo = TenantRepository(session)
            leases = [(lease.id, lease.seats) for lease in await repo.leases()]
            keys = [(k.id, k.revoked_at) for k in await repo.api_keys()]
            members = [(m.user_id, m.role) for m, _ in await repo.members([harbour])]
            seats = [(s.id, s.ended_at) for s in await repo.seat_sessions()]
            assignments = [(a.id, a.revoked_at) for a in await repo.assignments()]
            pickups = PickupRepository(session)
            orders = [
                (o.id, o.status, o.depot_id, o.window_start)
                for o in await pickups.orders(OrderFilter())
            ]
            depots = [(d.id, d.name, d.active) for d in await pickups.depots()]
            zones = [(z.id, z.active, z.priority) for z in await pickups.zones()]
    return leases, keys, members, seats, assignments, orders, depots, zones


async def check_isolation(
    app: Litestar,
    db: Database,
    world: Demo,
    browser: httpx.AsyncClient,
    headers: Callable[[], dict[str, str]] | dict[str, str],
) -> None:
    records = await b_records(db, world)
    before = await b_state(db, world)
    headers = headers if isinstance(headers, dict) else headers()
    # Control: the same caller does reach its own tenant's records through the same routes.
    own = world.users["admin@swiftfreight.test"]
    assert (await browser.get(f"/api/v1/users/{own}", headers=headers)).status_code == 200
    leaks = await walk(browser, app, records, headers)
    assert leaks == [], "\n".join(leaks)
    assert await b_state(db, world) == before
    assert len(routes_with_identifiers(app)) >= 15  # the walk really covered the app


async def test_signed_in_user_of_a_cannot_reach_b(
    app: Litestar,
    client: AsyncTestClient[Litestar],
    make_client: MakeClient,
    db: Database,
    world: Demo,
) -> None:
    browser = await make_client()
    await sign_in(browser, "admin@swiftfreight.test")
    headers = {"x-csrf-token": await csrf_of(browser, "/auth/forgot")}
    await check_isolation(app, db, world, browser, headers)


async def test_api_key_of_a_cannot_reach_b(
    app: Litestar,
    client: AsyncTestClient[Litestar],
    make_client: MakeClient,
    db: Database,
    world: Demo,
) -> None:
    admin = await principal(db, "admin@swiftfreight.test", world.tenants["swiftfreight"])
    with tenant_scope(admin.acting_tenant_id):
        async with db.session() as session:
            from tenant import service

            _, raw = await service.create_api_key(
                session, admin, "A's key", "tenant_admin", ["read", "write"]
            )
    integration = await make_client()
    await check_isolation(app, db, world, integration, {"authorization": f"Bearer {raw}"})


async def test_api_keys_are_scoped_and_revocable(
    client: AsyncTestClient[Litestar], db: Database, world: Demo
) -> None:
    admin = await principal(db, "admin@swiftfreight.test", world.tenants["swiftfreight"])
    with tenant_scope(admin.acting_tenant_id):
        async with db.session() as session:
            from tenant import service

            reader, read_key = await service.create_api_key(
                session, admin, "reader", "tenant_admin", ["read"]
            )
    bearer = {"authorization": f"Bearer {read_key}"}
    assert (await client.get("/api/v1/users", headers=bearer)).status_code == 200
    write = await client.post(
        "/api/v1/invitations", json={"email": "x@y.test", "role": "agent"}, headers=bearer
    )
    assert write.status_code == 403 and "write scope" in write.json()["detail"]
    forged = read_key[:-3] + ("aaa" if not read_key.endswith("aaa") else "bbb")
    assert (
        await client.get("/api/v1/users", headers={"authorization": f"Bearer {forged}"})
    ).status_code == 401
    with tenant_scope(admin.acting_tenant_id):
        async with db.session() as session:
            await service.revoke_api_key(session, admin, reader.id)
    assert (await client.get("/api/v1/users", headers=bearer)).status_code == 401
    # The key was shown once and is stored only as a hash.
    with tenant_scope(admin.acting_tenant_id):
        async with db.session() as session:
            stored = await TenantRepository(session).get_api_key(reader.id)
    assert stored is not None and read_key.split("_")[-1] not in stored.key_hash
