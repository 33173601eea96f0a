"""Administration: pages render for the people who use them, bad input is refused with a clear
message and changes nothing, and the audit log is append-only, searchable and exportable."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from depotline.db import Database, tenant_scope, utcnow
from tenant import service
from tenant.repository import TenantRepository
from tests.tenant.conftest import Demo, MakeClient, csrf_of, sign_in
from tests.tenant.test_seats import principal

PAGES = {
    "admin@swiftfreight.test": [
        "/admin/users",
        "/admin/seats",
        "/admin/branches",
        "/admin/api-keys",
        "/admin/sso",
        "/admin/audit",
    ],
    "supervisor@callpro.test": ["/admin/seats", "/seats/", "/admin/branches"],
    "agent1@callpro.test": ["/seats/", "/admin/seats"],
    "admin@depotline.test": ["/platform/tenants", "/admin/audit", "/admin/users"],
}


@pytest.mark.parametrize("email", sorted(PAGES))
async def test_every_page_renders_for_its_users(
    client: AsyncTestClient[Litestar], make_client: MakeClient, world: Demo, email: str
) -> None:
    browser = await make_client()
    await sign_in(browser, email)
    for path in PAGES[email]:
        response = await browser.get(path)
        assert response.status_code == 200, f"{path}: {response.status_code} {response.text[:300]}"
        assert "<main" in response.text


async def test_platform_console_does_not_exist_for_tenants(
    client: AsyncTestClient[Litestar], world: Demo
) -> None:
    await sign_in(client, "admin@swiftfreight.test")
    assert (await client.get("/platform/tenants")).status_code == 404
    assert (await client.get("/api/v1/platform/tenants")).status_code == 404


async def test_agents_cannot_administer(client: AsyncTestClient[Litestar], world: Demo) -> None:
    await sign_in(client, "agent1@callpro.test")
    assert (await client.get("/api/v1/audit")).status_code == 403
    headers = {"x-csrf-token": await csrf_of(client, "/seats/")}
    invite = await client.post(
        "/api/v1/invitations", json={"email": "a@b.test", "role": "agent"}, headers=headers
    )
    assert invite.status_code == 403


async def test_bad_input_is_refused_with_the_field_named(
    client: AsyncTestClient[Litestar], world: Demo
) -> None:
    await sign_in(client, "admin@swiftfreight.test")
    headers = {"x-csrf-token": await csrf_of(client, "/auth/forgot")}
    cases = [
        (
            "/api/v1/invitations",
            {"email": "north@swiftfreight.test", "role": "superhero"},
            400,
            "role",
        ),
        ("/api/v1/invitations", {"email": "not-an-email", "role": "agent"}, 400, "email"),
        ("/api/v1/seat-leases", {"seats": 0, "starts_on": "2026-12-01"}, 400, "seats"),
        (
            "/api/v1/seat-leases",
            {"seats": 2, "starts_on": "2026-12-01", "operator_id": str(world.tenants["callpro"])},
            409,
            "starts_on",
        ),
        ("/api/v1/tenants", {"name": "Bad", "slug": "NO SPACES", "kind": "client"}, 400, "slug"),
        ("/api/v1/tenants", {"name": "Dup", "slug": "harbour", "kind": "client"}, 409, "slug"),
    ]
    for path, body, status, field in cases:
        response = await client.post(path, json=body, headers=headers)
        assert response.status_code == status, (path, body, response.text)
        problem = response.json()
        assert response.headers["content-type"].startswith("application/problem+json")
        assert any(e["field"] == field for e in problem["errors"]), problem
    # Nothing was created by the refused requests.
    assert (await client.get("/api/v1/invitations")).json() == []
    assert len((await client.get("/api/v1/seat-leases")).json()) == 1


async def test_duplicate_and_expired_invitations(
    client: AsyncTestClient[Litestar], make_client: MakeClient, db: Database, world: Demo
) -> None:
    await sign_in(client, "admin@swiftfreight.test")
    headers = {"x-csrf-token": await csrf_of(client, "/auth/forgot")}
    member = await client.post(
        "/api/v1/invitations",
        json={"email": "north@swiftfreight.test", "role": "agent"},
        headers=headers,
    )
    assert member.status_code == 201  # North is a member of the branch, not of HQ itself
    twice = await client.post(
        "/api/v1/invitations",
        json={"email": "north@swiftfreight.test", "role": "agent"},
        headers=headers,
    )
    assert twice.status_code == 409 and "pending invitation" in twice.json()["detail"]
    again = await client.post(
        "/api/v1/invitations",
        json={"email": "admin@swiftfreight.test", "role": "agent"},
        headers=headers,
    )
    assert again.status_code == 409 and "already a member" in again.json()["detail"]

    fresh = await client.post(
        "/api/v1/invitations", json={"email": "late@example.test", "role": "agent"}, headers=headers
    )
    accept_path = fresh.json()["accept_url"].split("testserver.local", 1)[1]
    with tenant_scope(world.tenants["swiftfreight"]):
        async with db.session() as session:
            await session.execute(
                text("update invitations set expires_at = :t"), {"t": utcnow() - timedelta(days=1)}
            )
    stranger = await make_client()
    response = await stranger.get(accept_path)
    assert response.status_code == 410 and "expired" in response.text


async def test_audit_log_is_append_only_for_the_app(db: Database, world: Demo) -> None:
    admin = await principal(db, "admin@swiftfreight.test", world.tenants["swiftfreight"])
    with tenant_scope(admin.acting_tenant_id):
        async with db.session() as session:
            service.audit(session, admin, "test.entry")
        for statement in ("update audit_log set action = 'rewritten'", "delete from audit_log"):
            with pytest.raises(DBAPIError, match="permission denied"):
                async with db.session() as session:
                    await session.execute(text(statement))
        async with db.session() as session:
            entries = await TenantRepository(session).audit_entries(action="test.")
    assert [e.action for e in entries] == ["test.entry"]


async def test_outsourced_reads_of_client_data_are_audited(db: Database, world: Demo) -> None:
    agent = await principal(db, "agent1@callpro.test", world.tenants["callpro"])
    swift = world.tenants["swiftfreight"]
    on_seat = replace(agent, acting_tenant_id=swift, acting_tenant_name="SwiftFreight")
    own = await principal(db, "admin@swiftfreight.test", swift)
    with tenant_scope(swift):
        async with db.session() as session:
            service.record_client_data_read(session, on_seat, "customer", "c-1", "10.0.0.7")
            service.record_client_data_read(session, own, "customer", "c-2", "10.0.0.8")
        async with db.session() as session:
            reads = await TenantRepository(session).audit_entries(action="customer_data.read")
    assert [(e.record_id, e.actor_tenant_id, e.ip) for e in reads] == [
        ("c-1", world.tenants["callpro"], "10.0.0.7")
    ]


async def test_audit_search_export_and_platform_view(
    client: AsyncTestClient[Litestar], make_client: MakeClient, db: Database, world: Demo
) -> None:
    await sign_in(client, "admin@swiftfreight.test")
    headers = {"x-csrf-token": await csrf_of(client, "/auth/forgot")}
    await client.post(
        "/api/v1/invitations", json={"email": "new@example.test", "role": "agent"}, headers=headers
    )
    found = (await client.get("/api/v1/audit", params={"action": "invitation."})).json()
    assert [e["action"] for e in found] == ["invitation.create"]
    csv = await client.get("/api/v1/audit.csv")
    assert csv.headers["content-type"].startswith("text/csv")
    lines = csv.text.strip().splitlines()
    assert lines[0].startswith("at,tenant_id,actor_user_id") and "invitation.create" in lines[1]

    harbour_admin = await make_client()
    await sign_in(harbour_admin, "admin@harbour.test")
    assert (await harbour_admin.get("/api/v1/audit", params={"action": "invitation."})).json() == []

    platform = await make_client()
    await sign_in(platform, "admin@depotline.test")
    seen = (await platform.get("/api/v1/audit", params={"action": "invitation."})).json()
    assert [e["tenant_id"] for e in seen] == [str(world.tenants["swiftfreight"])]


async def test_hq_sees_branches_and_a_branch_sees_only_itself(
    client: AsyncTestClient[Litestar], make_client: MakeClient, world: Demo
) -> None:
    await sign_in(client, "admin@swiftfreight.test")
    hq = {t["name"] for t in (await client.get("/api/v1/tenants")).json()}
    assert hq == {"SwiftFreight", "SwiftFreight North", "SwiftFreight South"}
    branch = await make_client()
    await sign_in(branch, "north@swiftfreight.test")
    assert {t["name"] for t in (await branch.get("/api/v1/tenants")).json()} == {
        "SwiftFreight North"
    }
    assert (
        await branch.get(f"/api/v1/tenants/{world.tenants['swiftfreight-south']}")
    ).status_code == 404
    members = {m["email"] for m in (await client.get("/api/v1/users")).json()}
    assert "north@swiftfreight.test" in members  # HQ sees the branch's people


async def test_platform_adds_an_operator_and_hq_adds_a_branch_by_form(
    client: AsyncTestClient[Litestar], make_client: MakeClient, world: Demo
) -> None:
    platform = await make_client()
    await sign_in(platform, "admin@depotline.test")
    csrf = await csrf_of(platform, "/platform/tenants")
    done = await platform.post(
        "/platform/tenants",
        data={"_csrf": csrf, "name": "TeleServe", "slug": "teleserve", "kind": "operator"},
        follow_redirects=True,
    )
    assert "Tenant created" in done.text and "TeleServe" in done.text
    dup = await platform.post(
        "/platform/tenants",
        data={"_csrf": csrf, "name": "Again", "slug": "teleserve", "kind": "operator"},
        follow_redirects=True,
    )
    assert "is taken" in dup.text

    await sign_in(client, "admin@swiftfreight.test")
    csrf = await csrf_of(client, "/admin/branches")
    added = await client.post(
        "/admin/branches",
        data={"_csrf": csrf, "name": "SwiftFreight East", "slug": "swiftfreight-east"},
        follow_redirects=True,
    )
    assert "SwiftFreight East" in added.text
    names = {t["name"] for t in (await client.get("/api/v1/tenants")).json()}
    assert "SwiftFreight East" in names and "TeleServe" not in names
