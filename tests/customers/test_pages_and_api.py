"""Customers over HTTP: the JSON API (bad input is a 4xx naming the field), the pages staff
use, who may see them, and outsourced agents' reads on the client's audit log."""

from __future__ import annotations

from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient

from depotline.db import tenant_scope
from tenant.repository import TenantRepository
from tests.customers.conftest import Desk
from tests.telephony_gateway.conftest import CALLER
from tests.tenant.conftest import MakeClient, csrf_of, sign_in


async def test_api_creates_reads_changes_and_names_the_wrong_field(
    client: AsyncTestClient[Litestar], seeded: Desk
) -> None:
    await sign_in(client, "admin@swiftfreight.test")
    headers = {"x-csrf-token": await csrf_of(client, "/customers")}

    async def refused(method: str, path: str, body: dict[str, Any]) -> tuple[int, str]:
        response = await client.request(method, path, json=body, headers=headers)
        return response.status_code, response.json()["errors"][0]["field"]

    new = {"name": "吴敏", "phones": ["020 8765 4321"], "tags": ["月结"]}
    created = await client.post("/api/v1/customers", json=new, headers=headers)
    assert created.status_code == 201, created.text
    customer = created.json()
    assert customer["phones"] == ["+862087654321"] and customer["tier"] == "standard"

    assert await refused("POST", "/api/v1/customers", {"phones": ["12"]}) == (400, "phones")
    assert await refused("POST", "/api/v1/customers", {"phones": []}) == (400, "phones")
    assert await refused("POST", "/api/v1/customers", {**new, "tier": "gold"}) == (400, "tier")
    assert await refused("POST", "/api/v1/customers", new) == (409, "phones")  # known number
    assert await refused(
        "POST", "/api/v1/customers", {"phones": ["13811119999"], "addresses": [{"city": "广州"}]}
    ) == (400, "addresses[0].line1")
    assert await refused("POST", "/api/v1/customers", {"phones": "not a list"}) == (400, "phones")
    path = f"/api/v1/customers/{customer['id']}"
    assert await refused("PATCH", path, {"language": "fr"}) == (400, "language")
    assert await refused("PATCH", path, {"notes": "x" * 4001}) == (400, "notes")
    assert await refused("POST", f"{path}/merge", {"duplicate": "nobody"}) == (400, "duplicate")

    changed = await client.patch(
        path, json={"tier": "vip", "notes": "Pays monthly"}, headers=headers
    )
    assert changed.status_code == 200 and changed.json()["tier"] == "vip"
    assert changed.json()["name"] == "吴敏"
    found = await client.get("/api/v1/customers", params={"q": "8765"})
    assert [hit["name"] for hit in found.json()] == ["吴敏"]
    card = await client.get("/api/v1/customers/caller-card", params={"phone": CALLER})
    assert card.json()["name"] == "王芳" and card.json()["region"] == "Beijing"
    timeline = await client.get(f"/api/v1/customers/{(card.json())['customer_id']}/timeline")
    assert [entry["kind"] for entry in timeline.json()] == ["sms", "call", "sms", "call"]
    assert (await client.get("/api/v1/customers/caller-card", params={"phone": "?"})).json()[
        "errors"
    ][0]["field"] == "phone"
    missing = await client.get("/api/v1/customers/00000000-0000-0000-0000-000000000000")
    assert missing.status_code == 404


async def test_staff_find_create_and_edit_customers_on_the_pages(
    client: AsyncTestClient[Litestar], seeded: Desk
) -> None:
    await sign_in(client, "admin@swiftfreight.test")
    home = await client.get("/customers")
    assert 'href="/customers" aria-current="page"' in home.text  # the nav link
    assert "王芳" in home.text and "John Carter" in home.text
    search = await client.get("/customers", params={"q": "0013 8000"})
    assert "王芳" in search.text and "John Carter" not in search.text

    csrf = await csrf_of(client, "/customers/new")
    bad = await client.post(
        "/customers/new", data={"_csrf": csrf, "name": "Lee", "phones": "12345"}
    )
    assert bad.status_code == 400 and "Not a valid phone number" in bad.text
    assert 'value="Lee"' in bad.text  # what was typed stays in the form
    made = await client.post(
        "/customers/new",
        data={
            "_csrf": csrf,
            "name": "Lee Ming",
            "phones": "13811118888; 020-3800-5678",
            "tier": "vip",
            "line1": "黄埔大道西 33 号",
            "city": "广州",
        },
    )
    assert made.status_code == 200 and "Customer created" in made.text
    assert "Lee Ming" in made.text and "+8613811118888, +862038005678" in made.text
    profile_path = str(made.url.path)

    edited = await client.post(
        profile_path,
        data={
            "_csrf": csrf,
            "name": "Lee Ming",
            "tier": "standard",
            "tags": "月结, 大客户",
            "notes": "Gate code 1234",
            "language": "zh_Hant",
        },
    )
    assert "Customer saved" in edited.text and "月结, 大客户" in edited.text
    assert "繁體中文" in edited.text
    added = await client.post(
        f"{profile_path}/phones", data={"_csrf": csrf, "phone": "13800138000"}
    )
    assert "This number belongs to another customer" in added.text  # 王芳's
    removed = await client.post(
        f"{profile_path}/phones/remove", data={"_csrf": csrf, "phone": "+862038005678"}
    )
    assert "Number removed" in removed.text and "+862038005678" not in removed.text

    chinese = await client.get(profile_path, params={"lang": "zh-Hans"})
    assert "联系记录" in chinese.text and "合并重复资料" in chinese.text


async def test_who_may_see_customers(
    client: AsyncTestClient[Litestar], make_client: MakeClient, seeded: Desk
) -> None:
    wang = await seeded.owner_of(CALLER)
    assert wang is not None
    harbour = await make_client()
    await sign_in(harbour, "admin@harbour.test")
    assert (await harbour.get(f"/customers/{wang.id}")).status_code == 404
    assert (await harbour.get(f"/api/v1/customers/{wang.id}")).status_code == 404
    results = (await harbour.get("/customers", params={"q": "王"})).text
    assert (
        "No customer matches" in results
        and "王芳" not in results.split('data-testid="customers"')[1]
    )
    # An operator's agent at home sees no client's customers.
    agent = await make_client()
    await sign_in(agent, "agent1@callpro.test")
    assert (await agent.get(f"/api/v1/customers/{wang.id}")).status_code == 404
    assert (await agent.get("/customers/import")).status_code == 403  # imports: managers only


async def test_outsourced_agent_reads_a_profile_only_on_a_seat_and_each_read_is_audited(
    client: AsyncTestClient[Litestar], make_client: MakeClient, seeded: Desk
) -> None:
    wang = await seeded.owner_of(CALLER)
    assert wang is not None
    agent = await make_client()
    await sign_in(agent, "agent1@callpro.test")
    headers = {"x-csrf-token": await csrf_of(agent, "/seats/")}
    seat = await agent.post(
        "/api/v1/seats/sign-in", json={"client_id": str(seeded.tenant_id)}, headers=headers
    )
    assert seat.status_code == 201, seat.text

    page = await agent.get(f"/customers/{wang.id}")
    assert page.status_code == 200 and "王芳" in page.text
    assert (await agent.get(f"/api/v1/customers/{wang.id}")).status_code == 200
    card = await agent.get("/api/v1/customers/caller-card", params={"phone": CALLER})
    assert card.json()["customer_id"] == str(wang.id)
    with tenant_scope(seeded.tenant_id):
        async with seeded.db.session() as session:
            reads = await TenantRepository(session).audit_entries(action="customer_data.read")
    assert [(e.record_type, e.record_id) for e in reads] == [("customer", str(wang.id))] * 3
    callpro = (await agent.get("/api/v1/me")).json()["home_tenant_id"]
    assert {str(e.actor_tenant_id) for e in reads} == {callpro}  # who read, from where

    # Seat given back: the client's customers are out of reach again.
    await agent.post("/api/v1/seats/sign-out", headers=headers)
    assert (await agent.get(f"/api/v1/customers/{wang.id}")).status_code == 404
    # The client's own staff read without an entry per read.
    await sign_in(client, "admin@swiftfreight.test")
    assert (await client.get(f"/api/v1/customers/{wang.id}")).status_code == 200
    with tenant_scope(seeded.tenant_id):
        async with seeded.db.session() as session:
            after = await TenantRepository(session).audit_entries(action="customer_data.read")
    assert len(after) == 3
