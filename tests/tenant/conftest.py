"""Demo tenants as test data, and signed-in HTTP clients."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from uuid import UUID

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from depotline.db import Database
from tenant import demo
from tenant.repository import TenantRepository

PASSWORD = demo.DEFAULT_DEMO_PASSWORD
CSRF_INPUT = re.compile(r'name="_csrf" value="([^"]+)"')


@dataclass
class Demo:
    tenants: dict[str, UUID]
    users: dict[str, UUID]


@pytest.fixture
async def world(db: Database) -> Demo:
    await demo.seed(db)
    async with db.session() as session:
        repo = TenantRepository(session)
        tenants = {slug: (await repo.tenant_by_slug(slug)).id for slug, *_ in demo.TENANTS}  # type: ignore[union-attr]
        users = {email: (await repo.user_by_email(email)).id for email, *_ in demo.USERS}  # type: ignore[union-attr]
    return Demo(tenants, users)


async def csrf_of(client: httpx.AsyncClient, path: str = "/auth/sign-in") -> str:
    page = await client.get(path)
    found = CSRF_INPUT.search(page.text)
    assert found, f"no CSRF field on {path}"
    return found.group(1)


async def sign_in(
    client: httpx.AsyncClient, email: str, password: str = PASSWORD, tenant: UUID | None = None
) -> None:
    token = await csrf_of(client)
    response = await client.post(
        "/auth/sign-in", data={"email": email, "password": password, "_csrf": token}
    )
    assert response.status_code in (200, 302, 303), response.text
    if tenant is not None:
        token = await csrf_of(client, "/auth/choose-tenant")
        await client.post("/auth/choose-tenant", data={"tenant_id": str(tenant), "_csrf": token})
    me = await client.get("/api/v1/me")
    assert me.status_code == 200, f"{email} could not sign in: {me.text}"


async def csrf_header(client: httpx.AsyncClient) -> dict[str, str]:
    return {"x-csrf-token": await csrf_of(client, "/auth/forgot")}


MakeClient = Callable[[], Awaitable[httpx.AsyncClient]]


@pytest.fixture
async def make_client(client: AsyncTestClient[Litestar]) -> AsyncIterator[MakeClient]:
    """Independent browsers (each with its own cookies) on the app that `client` started. They
    share its transport, so every request runs on the app's own event loop."""

    async def make() -> httpx.AsyncClient:
        # Not closed: closing would close the shared transport; `client` does that.
        return httpx.AsyncClient(transport=client._transport, base_url=client.base_url)

    yield make
