"""Signing in: passwords, lockout, CSRF, tenant choice and switching, password reset."""

from __future__ import annotations

from litestar import Litestar
from litestar.testing import AsyncTestClient

from depotline.config import Settings
from depotline.db import Database
from tenant import service
from tenant.repository import TenantRepository
from tests.tenant.conftest import PASSWORD, Demo, MakeClient, csrf_of, sign_in


async def test_sign_in_with_one_membership_lands_in_that_tenant(
    client: AsyncTestClient[Litestar], world: Demo
) -> None:
    await sign_in(client, "admin@swiftfreight.test")
    me = (await client.get("/api/v1/me")).json()
    assert me["tenant_name"] == "SwiftFreight" and me["role"] == "tenant_admin"
    page = await client.get("/")
    assert 'data-testid="acting-tenant">SwiftFreight' in page.text


async def test_session_cookie_is_httponly_and_samesite(
    client: AsyncTestClient[Litestar], world: Demo
) -> None:
    token = await csrf_of(client)
    response = await client.post(
        "/auth/sign-in",
        data={"email": "admin@swiftfreight.test", "password": PASSWORD, "_csrf": token},
    )
    cookie = next(
        v
        for k, v in response.headers.multi_items()
        if k == "set-cookie" and v.startswith("depotline_session=")
    )
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie.replace("SameSite=Lax", "SameSite=lax")


async def test_wrong_password_is_refused_without_saying_which_part(
    client: AsyncTestClient[Litestar], world: Demo
) -> None:
    token = await csrf_of(client)
    wrong = await client.post(
        "/auth/sign-in",
        data={"email": "admin@swiftfreight.test", "password": "nope-nope-nope", "_csrf": token},
    )
    unknown = await client.post(
        "/auth/sign-in",
        data={"email": "ghost@nowhere.test", "password": "nope-nope-nope", "_csrf": token},
    )
    assert wrong.status_code == unknown.status_code == 400
    assert "Wrong email or password" in wrong.text and "Wrong email or password" in unknown.text
    assert (await client.get("/api/v1/me")).status_code == 401


async def test_five_failures_lock_the_account(
    client: AsyncTestClient[Litestar], world: Demo
) -> None:
    token = await csrf_of(client)
    for _ in range(5):
        await client.post(
            "/auth/sign-in",
            data={"email": "admin@harbour.test", "password": "wrong-wrong-1", "_csrf": token},
        )
    locked = await client.post(
        "/auth/sign-in", data={"email": "admin@harbour.test", "password": PASSWORD, "_csrf": token}
    )
    assert locked.status_code == 429
    assert "locked" in locked.text


async def test_form_post_without_csrf_token_is_refused(
    client: AsyncTestClient[Litestar], world: Demo
) -> None:
    await sign_in(client, "admin@swiftfreight.test")
    forged = await client.post("/admin/users/invite", data={"email": "x@y.test", "role": "agent"})
    assert forged.status_code == 403
    api = await client.post("/api/v1/invitations", json={"email": "x@y.test", "role": "agent"})
    assert api.status_code == 403
    invitations = (await client.get("/api/v1/invitations")).json()
    assert invitations == []


async def test_user_in_two_tenants_chooses_and_switches(
    make_client: MakeClient, world: Demo, db: Database
) -> None:
    admin = await make_client()
    await sign_in(admin, "admin@harbour.test")
    header = {"x-csrf-token": await csrf_of(admin, "/auth/forgot")}
    invited = await admin.post(
        "/api/v1/invitations",
        json={"email": "admin@swiftfreight.test", "role": "read_only"},
        headers=header,
    )
    assert invited.status_code == 201, invited.text
    token = invited.json()["accept_url"].rsplit("/", 1)[1]
    browser = await make_client()
    accept_path = invited.json()["accept_url"].split("testserver.local", 1)[1]
    csrf = await csrf_of(browser, accept_path)
    accepted = await browser.post(accept_path, data={"name": "", "password": "", "_csrf": csrf})
    assert accepted.status_code in (302, 303), accepted.text
    assert token

    user = await make_client()
    token_field = await csrf_of(user)
    response = await user.post(
        "/auth/sign-in",
        data={"email": "admin@swiftfreight.test", "password": PASSWORD, "_csrf": token_field},
    )
    assert response.headers["location"].startswith("/auth/choose-tenant")
    choices = await user.get("/auth/choose-tenant")
    assert "SwiftFreight" in choices.text and "Harbour Logistics" in choices.text
    csrf = await csrf_of(user, "/auth/choose-tenant")
    await user.post(
        "/auth/choose-tenant", data={"tenant_id": str(world.tenants["harbour"]), "_csrf": csrf}
    )
    assert (await user.get("/api/v1/me")).json()["role"] == "read_only"
    await user.post(
        "/auth/choose-tenant", data={"tenant_id": str(world.tenants["swiftfreight"]), "_csrf": csrf}
    )
    assert (await user.get("/api/v1/me")).json()["tenant_name"] == "SwiftFreight"
    # A tenant one is not a member of cannot be chosen.
    await user.post(
        "/auth/choose-tenant", data={"tenant_id": str(world.tenants["callpro"]), "_csrf": csrf}
    )
    assert (await user.get("/api/v1/me")).json()["tenant_name"] == "SwiftFreight"


async def test_password_reset_link_works_once(
    client: AsyncTestClient[Litestar], world: Demo, db: Database, settings: Settings
) -> None:
    async with db.session() as session:
        user = await TenantRepository(session).user_by_email("agent1@callpro.test")
        assert user is not None
        link = service.reset_token(user, settings.session_secret())
    csrf = await csrf_of(client, f"/auth/reset/{link}")
    changed = await client.post(
        f"/auth/reset/{link}",
        data={"password": "a-brand-new-pass", "_csrf": csrf},
        follow_redirects=False,
    )
    assert changed.status_code in (302, 303)
    await sign_in(client, "agent1@callpro.test", "a-brand-new-pass")
    again = await client.get(f"/auth/reset/{link}")
    assert again.status_code == 404
    forged = await client.get(f"/auth/reset/{link[:-4]}abcd")
    assert forged.status_code == 404


async def test_not_signed_in_browser_is_sent_to_sign_in(
    client: AsyncTestClient[Litestar], world: Demo
) -> None:
    response = await client.get(
        "/admin/users", headers={"accept": "text/html"}, follow_redirects=False
    )
    assert response.status_code in (302, 303)
    assert response.headers["location"] == "/auth/sign-in?next=/admin/users"
    api = await client.get("/api/v1/users")
    assert api.status_code == 401
