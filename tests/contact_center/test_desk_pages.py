"""The agent desk over HTTP: an operator's agent on a client's seat works a call from offer to
wrap-up, the screen pop is audited and gone with the seat, bad input is a 4xx naming the field
(in the agent's language), and the page works without JavaScript (plain form posts)."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from contact_center.models import CallStatus
from depotline.db import Database, tenant_scope
from tenant.repository import TenantRepository
from tests.contact_center.conftest import Floor
from tests.contact_center.test_desk import IVR_PATH, place
from tests.telephony_gateway.conftest import Line
from tests.telephony_gateway.conftest import line as line
from tests.tenant.conftest import Demo, MakeClient, csrf_of, sign_in
from tests.tenant.conftest import make_client as make_client

JSON = {"accept": "application/json"}


class Agent:
    """One person's browser on the desk, sending what desk.js sends (forms, CSRF header)."""

    def __init__(self, browser: httpx.AsyncClient, token: str) -> None:
        self.browser, self.token = browser, token

    async def post(self, path: str, **form: str) -> httpx.Response:
        headers = {**JSON, "x-csrf-token": self.token}
        return await self.browser.post(path, data=form, headers=headers)

    async def state(self) -> dict[str, Any]:
        found: dict[str, Any] = (await self.browser.get("/desk/state")).json()
        return found


@pytest.fixture
async def li(client: AsyncTestClient[Litestar], make_client: MakeClient, world: Demo) -> Agent:
    """CallPro's Agent Li Na, signed in and on a SwiftFreight seat."""
    browser = await make_client()
    await sign_in(browser, "agent1@callpro.test")
    token = await csrf_of(browser, "/seats/")
    taken = await browser.post(
        "/seats/take", data={"client_id": str(world.tenants["swiftfreight"]), "_csrf": token}
    )
    assert taken.status_code in (302, 303)
    return Agent(browser, await csrf_of(browser, "/desk"))


async def audit_reads(db: Database, tenant_id: UUID) -> list[tuple[str | None, str | None]]:
    with tenant_scope(tenant_id):
        async with db.session() as session:
            entries = await TenantRepository(session).audit_entries(action="customer_data.read")
    return [(e.record_type, e.record_id) for e in entries]


async def test_an_outsourced_agent_works_a_call_and_loses_its_data_with_the_seat(
    li: Agent, floor: Floor, line: Line, db: Database
) -> None:
    page = await li.browser.get("/desk")
    assert page.status_code == 200
    assert 'data-testid="serving">SwiftFreight<' in page.text

    ready = await li.post("/desk/status", status="ready")
    assert ready.status_code == 200 and ready.json()["state"]["status"] == "ready"
    call = await place(floor, caller="+8613912345678")
    offer = (await li.state())["offer"]
    assert offer["call_id"] == str(call.id) and offer["expires_at"] > offer["offered_at"]

    pop = await li.browser.get(f"/desk/calls/{call.id}/pop")
    assert pop.status_code == 200
    assert "New caller" in pop.text and "Changzhou, Jiangsu" in pop.text
    assert "China Mobile" in pop.text and "<kbd>3</kbd>" in pop.text
    assert "123456789" in pop.text  # the order number keyed in the IVR
    assert await audit_reads(db, floor.tenant_id) == [("call", str(call.id))]

    accepted = await li.post(f"/desk/calls/{call.id}/accept")
    assert accepted.json()["state"]["call"]["call_id"] == str(call.id)
    held = await li.post(f"/desk/calls/{call.id}/hold")
    assert held.json()["state"]["call"]["held"] is True
    resumed = await li.post(f"/desk/calls/{call.id}/resume")
    assert resumed.json()["state"]["call"]["held"] is False
    ended = await li.post(f"/desk/calls/{call.id}/hang-up")
    wrap = ended.json()["state"]["wrap_up"]
    assert ended.json()["state"]["status"] == "wrap_up" and wrap["call_id"] == str(call.id)
    done = await li.post(f"/desk/calls/{call.id}/wrap-up", code="Resolved", notes="Told ETA")
    assert done.json()["state"]["status"] == "ready"
    row = await floor.call_row(call.id)
    assert (row.status, row.wrap_up_code, row.wrap_up_notes) == (
        CallStatus.ENDED,
        "Resolved",
        "Told ETA",
    )

    # Off the seat, the client's call and caller do not exist for this agent.
    token = await csrf_of(li.browser, "/seats/")
    await li.browser.post("/seats/leave", data={"_csrf": token})
    assert (await li.browser.get(f"/desk/calls/{call.id}/pop")).status_code == 404
    assert (await li.post(f"/desk/calls/{call.id}/wrap-up", code="Resolved")).status_code == 404


async def test_bad_input_is_refused_naming_the_field_in_the_agents_language(
    li: Agent, floor: Floor, line: Line
) -> None:
    def field_of(response: httpx.Response) -> str:
        body = response.json()
        return str(body["errors"][0]["field"])

    dancing = await li.post("/desk/status", status="dancing")
    assert (dancing.status_code, field_of(dancing)) == (400, "status")
    no_reason = await li.post("/desk/status", status="not_ready")
    assert (no_reason.status_code, field_of(no_reason)) == (400, "reason")
    assert (await li.post(f"/desk/calls/{uuid4()}/hold")).status_code == 404

    await li.post("/desk/status", status="ready")
    call = await place(floor)
    await li.post(f"/desk/calls/{call.id}/accept")
    nowhere = await li.post(f"/desk/calls/{call.id}/transfer", to="moon:1")
    assert (nowhere.status_code, field_of(nowhere)) == (400, "to")
    bad_number = await li.post(f"/desk/calls/{call.id}/conference", number="abc")
    assert (bad_number.status_code, field_of(bad_number)) == (400, "number")
    await li.post(f"/desk/calls/{call.id}/hang-up")

    li.browser.cookies.set("lang", "zh_Hans")
    made_up = await li.post(f"/desk/calls/{call.id}/wrap-up", code="Made up")
    assert made_up.status_code == 400 and field_of(made_up) == "code"
    assert made_up.json()["detail"] == "请选择结束代码"


async def test_the_desk_works_without_javascript(li: Agent, floor: Floor, line: Line) -> None:
    form_token = {"_csrf": li.token}
    answer = await li.browser.post("/desk/status", data={"status": "ready", **form_token})
    assert answer.status_code in (302, 303) and answer.headers["location"] == "/desk"
    call = await place(floor)
    page = await li.browser.get("/desk")
    assert f'action="/desk/calls/{call.id}/accept"' in page.text
    assert 'data-testid="screen-pop"' in page.text  # rendered on the server, no fetch needed

    await li.browser.post(f"/desk/calls/{call.id}/accept", data=form_token)
    await li.browser.post(f"/desk/calls/{call.id}/hang-up", data=form_token)
    refused = await li.browser.post(
        f"/desk/calls/{call.id}/wrap-up", data={"code": "Made up", **form_token}
    )
    assert refused.status_code in (302, 303)
    assert "Choose a wrap-up code" in (await li.browser.get("/desk")).text


async def test_a_tenant_admin_sets_the_codes_its_agents_choose_from(
    li: Agent, make_client: MakeClient, floor: Floor
) -> None:
    admin = await make_client()
    await sign_in(admin, "admin@swiftfreight.test")
    token = await csrf_of(admin, "/desk/codes")
    for kind, label in (("not_ready", "Team huddle"), ("wrap_up", "Depot informed")):
        added = await admin.post("/desk/codes", data={"kind": kind, "label": label, "_csrf": token})
        assert added.status_code in (302, 303)
    assert "Team huddle" in (await admin.get("/desk/codes")).text
    desk_page = (await li.browser.get("/desk")).text
    assert '<option value="Team huddle">' in desk_page
    assert '<option value="Depot informed">' in desk_page
    assert '<option value="Break">' not in desk_page  # the defaults give way to the tenant's own
    # Agents do not manage codes.
    assert (await li.browser.get("/desk/codes")).status_code == 403


async def test_a_transferred_call_pops_with_its_history_for_the_next_agent(
    li: Agent, client: AsyncTestClient[Litestar], make_client: MakeClient, floor: Floor, line: Line
) -> None:
    wong_browser = await make_client()
    await sign_in(wong_browser, "agent2@callpro.test")
    token = await csrf_of(wong_browser, "/seats/")
    await wong_browser.post("/seats/take", data={"client_id": str(floor.tenant_id), "_csrf": token})
    wong = Agent(wong_browser, await csrf_of(wong_browser, "/desk"))
    await li.post("/desk/status", status="ready")
    call = await place(floor)
    await li.post(f"/desk/calls/{call.id}/accept")
    await wong.post("/desk/status", status="ready")
    targets = (await li.browser.get("/desk/agents")).json()
    assert [t["name"] for t in targets] == ["Agent Wong Ka"]

    moved = await li.post(
        f"/desk/calls/{call.id}/transfer", to=f"agent:{targets[0]['id']}", note="Wants a refund"
    )
    assert moved.json()["state"]["status"] == "wrap_up"
    assert (await wong.state())["offer"]["call_id"] == str(call.id)
    pop = (await wong.browser.get(f"/desk/calls/{call.id}/pop")).text
    assert "Transferred to you by" in pop and "Agent Li Na" in pop and "Wants a refund" in pop
    assert "<kbd>2</kbd>" in pop  # the IVR path travelled with the call
    assert IVR_PATH["variables"]["order_number"] in pop
