"""Single sign-on per tenant, against a real OpenID provider (authlib's server) over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from depotline.config import Settings
from depotline.db import Database, tenant_scope
from tenant import service
from tests.oidc_provider import (
    OidcProvider,
    ProviderUser,
    RegisteredClient,
    oidc_provider_fixture,  # noqa: F401 - registers the `oidc_provider` fixture
)
from tests.tenant.conftest import Demo
from tests.tenant.test_seats import principal

CALLBACK = "http://localhost/auth/sso/callback"  # plain http is accepted on loopback only


@pytest.fixture
async def client(app: Litestar) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app=app, base_url="http://localhost") as browser:
        yield browser


async def configure(db: Database, world: Demo, provider: OidcProvider, settings: Settings) -> None:
    provider.client = RegisteredClient(redirect_uris=(CALLBACK,))
    admin = await principal(db, "admin@swiftfreight.test", world.tenants["swiftfreight"])
    config = provider.client_config()
    with tenant_scope(admin.acting_tenant_id):
        async with db.session() as session:
            await service.save_sso(
                session,
                admin,
                config.issuer,
                config.client_id,
                config.client_secret,
                settings.session_secret(),
            )


async def sso_round_trip(client: AsyncTestClient[Litestar]) -> httpx.Response:
    start = await client.get(
        "/auth/sso/", params={"tenant": "swiftfreight"}, follow_redirects=False
    )
    assert start.status_code in (302, 303), start.text
    async with httpx.AsyncClient() as browser:  # the provider runs on 127.0.0.1
        at_provider = await browser.get(start.headers["location"])
    assert at_provider.status_code == 302, at_provider.text
    back = urlsplit(at_provider.headers["location"])
    assert f"{back.scheme}://{back.netloc}{back.path}" == CALLBACK
    return await client.get(f"{back.path}?{back.query}", follow_redirects=False)


async def test_member_signs_in_through_the_tenants_provider(
    client: AsyncTestClient[Litestar],
    db: Database,
    world: Demo,
    oidc_provider: OidcProvider,
    settings: Settings,
) -> None:
    await configure(db, world, oidc_provider, settings)
    oidc_provider.user = ProviderUser(sub="sara-1", email="admin@swiftfreight.test", name="Sara")
    done = await sso_round_trip(client)
    assert done.status_code in (302, 303) and done.headers["location"] == "/"
    me = (await client.get("/api/v1/me")).json()
    assert me["tenant_name"] == "SwiftFreight" and me["role"] == "tenant_admin"
    # The stored client secret is encrypted, and the API never shows it.
    shown = (await client.get("/api/v1/sso")).json()
    assert "client_secret" not in shown and shown["client_id"] == oidc_provider.client.client_id


@pytest.mark.parametrize(
    "person",
    [
        ProviderUser(sub="x", email="stranger@elsewhere.test", name="Stranger"),  # no account
        ProviderUser(sub="h", email="admin@harbour.test", name="Hana"),  # another tenant's
    ],
)
async def test_only_the_tenants_members_get_in(
    client: AsyncTestClient[Litestar],
    db: Database,
    world: Demo,
    oidc_provider: OidcProvider,
    settings: Settings,
    person: ProviderUser,
) -> None:
    await configure(db, world, oidc_provider, settings)
    oidc_provider.user = person
    refused = await sso_round_trip(client)
    assert refused.status_code == 403
    assert f"{person.email} has no account here" in refused.text
    assert (await client.get("/api/v1/me")).status_code == 401


async def test_company_without_sso_gets_a_clear_message(
    client: AsyncTestClient[Litestar], world: Demo
) -> None:
    response = await client.get("/auth/sso/", params={"tenant": "harbour"})
    assert response.status_code == 404
    assert "No single sign-on is set up" in response.text
