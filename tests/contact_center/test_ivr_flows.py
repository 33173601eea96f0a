"""Tenants' own IVR flows: drafts checked when saved, only a sound draft published (the live one
retired, audited), calls hearing the published version and keeping it to the end, the editor page
(tree, JSON, check, save, publish, export, import) and trying a draft in the simulator console."""

from __future__ import annotations

import json
import re
from typing import Any
from uuid import UUID

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlmodel import col, select

from contact_center import flows, ivr
from contact_center.models import FlowStatus, IvrFlowVersion
from contact_center.repository import ContactCenterRepository
from depotline.db import Database, tenant_scope
from depotline.errors import Conflict
from tenant.models import AuditEntry
from tests.contact_center.conftest import Floor
from tests.contact_center.test_calls_end_to_end import Center, prompt, spoken
from tests.contact_center.test_calls_end_to_end import center as center
from tests.telephony_gateway.conftest import NUMBER, Line
from tests.telephony_gateway.conftest import line as line
from tests.tenant.conftest import Demo, csrf_of, sign_in
from tests.tenant.test_seats import principal

EN = ivr.ENGLISH


def flow_saying(greeting: str, queue: str = "Pickup") -> dict[str, Any]:
    """A small sound flow: a greeting menu whose key 1 goes to `queue`."""
    return {
        "start": "menu",
        "default_language": EN,
        "nodes": {
            "menu": {
                "kind": "menu",
                "prompt": {EN: greeting},
                "options": {"1": "queue"},
                "timeout_next": "bye",
                "invalid_next": "bye",
            },
            "queue": {"kind": "queue", "queue": queue, "prompt": {EN: f"Connecting to {queue}."}},
            "bye": {"kind": "hangup", "prompt": {EN: "Goodbye."}},
        },
    }


async def as_admin(db: Database, floor: Floor) -> Any:
    return await principal(db, "admin@swiftfreight.test", floor.tenant_id)


async def save(db: Database, floor: Floor, document: str | dict[str, Any]) -> flows.Saved:
    text = document if isinstance(document, str) else json.dumps(document)
    admin = await as_admin(db, floor)
    saved = await floor.run(flows.save_draft, admin, text)
    assert isinstance(saved, flows.Saved)
    return saved


async def publish(db: Database, floor: Floor, version_id: UUID) -> IvrFlowVersion:
    admin = await as_admin(db, floor)
    published = await floor.run(flows.publish, admin, version_id)
    assert isinstance(published, IvrFlowVersion)
    return published


async def versions(db: Database, floor: Floor) -> dict[int, str]:
    with tenant_scope(floor.tenant_id):
        async with db.session() as session:
            found = await ContactCenterRepository(session).flow_versions()
    return {v.number: v.status for v in found}


# -- drafts and publishing ----------------------------------------------------------------------
async def test_a_document_that_is_not_a_flow_is_refused_naming_node_and_field(
    db: Database, floor: Floor
) -> None:
    with pytest.raises(flows.FlowRejected) as not_json:
        await save(db, floor, '{"start": "menu", ')
    assert not_json.value.problems[0].startswith("The flow: Invalid JSON")
    assert not_json.value.field == "flow"

    broken = flow_saying("Hello")
    broken["nodes"]["menu"]["options"] = {"x": "queue"}
    broken["nodes"]["menu"]["timeout_seconds"] = 99
    broken["nodes"]["bye"] = {"kind": "fax"}
    with pytest.raises(flows.FlowRejected) as rejected:
        await save(db, floor, broken)
    problems = rejected.value.problems
    assert "Node 'menu', field options.x: String should match pattern '^[0-9*#]$'" in problems
    too_long = "Node 'menu', field timeout_seconds: Input should be less than or equal to 60"
    assert too_long in problems
    assert any(p.startswith("Node 'bye', field kind: Input tag 'fax'") for p in problems)
    assert await versions(db, floor) == {}  # nothing was saved


async def test_an_unsound_draft_is_saved_with_its_problems_and_only_a_sound_one_goes_live(
    db: Database, floor: Floor
) -> None:
    unsound = flow_saying("Press 1 for pickups, 2 for complaints.")
    menu = unsound["nodes"]["menu"]
    menu["options"]["2"] = "complaints"  # no such node
    del menu["timeout_next"]
    unsound["nodes"]["orphan"] = {"kind": "hangup"}
    draft = await save(db, floor, unsound)
    assert draft.version.number == 1 and draft.version.status == FlowStatus.DRAFT
    assert "Node 'menu' (menu) has no timeout path: set timeout_next" in draft.problems
    assert "Node 'menu': option 2 goes to 'complaints', which does not exist" in draft.problems
    assert "Node 'orphan' cannot be reached from the start node 'menu'" in draft.problems
    with pytest.raises(flows.FlowRejected) as refused:
        await publish(db, floor, draft.version.id)
    assert refused.value.problems[0] == "Version 1 cannot be published"
    assert "Node 'orphan' cannot be reached from the start node 'menu'" in refused.value.problems

    sound = await save(db, floor, flow_saying("Welcome. Press 1 for pickups."))
    assert sound.problems == [] and sound.version.number == 2
    live = await publish(db, floor, sound.version.id)
    assert live.status == FlowStatus.PUBLISHED and live.published_at is not None
    assert await versions(db, floor) == {1: "draft", 2: "published"}

    newer = await save(db, floor, flow_saying("Welcome again. Press 1 for pickups."))
    await publish(db, floor, newer.version.id)
    assert await versions(db, floor) == {1: "draft", 2: "retired", 3: "published"}
    with pytest.raises(Conflict, match="Version 2 is retired: only a draft can be published"):
        await publish(db, floor, sound.version.id)

    with tenant_scope(floor.tenant_id):
        async with db.session() as session:
            query = select(AuditEntry).where(AuditEntry.action == "ivr.publish")
            entries = (await session.exec(query.order_by(col(AuditEntry.at)))).all()
    admin = await as_admin(db, floor)
    assert [(e.detail["number"], e.detail["retired"]) for e in entries] == [("2", ""), ("3", "2")]
    assert {e.actor_user_id for e in entries} == {admin.user_id}


# -- calls hear the published version -----------------------------------------------------------
async def test_calls_hear_the_published_version_and_keep_it_to_the_end(
    center: Center, floor: Floor, db: Database
) -> None:
    before = await center.phone().dial()  # nothing published: the sample flow
    assert spoken(before)[0] == prompt("language", ivr.MANDARIN)

    await center.queue("Complaints")
    first = await save(db, floor, flow_saying("Version one. Press 1 for pickups."))
    await publish(db, floor, first.version.id)
    early = center.phone()
    assert spoken(await early.dial()) == [("Version one. Press 1 for pickups.", EN)]
    assert (await early.row()).ivr_progress["flow_version"] == str(first.version.id)  # type: ignore[index]

    second = await save(db, floor, flow_saying("Version two. Press 1.", queue="Complaints"))
    await publish(db, floor, second.version.id)
    # The call that began in version one finishes in it: key 1 is still pickups there.
    connecting = await early.press("1")
    assert spoken(connecting) == [("Connecting to Pickup.", EN)]
    assert connecting[-1]["queue"] == "Pickup"
    assert (await early.row()).queue_id == floor.queue.id
    # A new call hears version two.
    late = center.phone()
    assert spoken(await late.dial()) == [("Version two. Press 1.", EN)]
    assert (await late.press("1"))[-1]["queue"] == "Complaints"


# -- the editor page ----------------------------------------------------------------------------
def textarea(page: str) -> str:
    import html

    found = re.search(r'<textarea id="flow" name="flow"[^>]*>(.*?)</textarea>', page, re.S)
    assert found, "no flow editor on the page"
    return html.unescape(found.group(1))


async def test_the_editor_checks_saves_draws_publishes_exports_and_imports(
    client: AsyncTestClient[Litestar], world: Demo
) -> None:
    await sign_in(client, "admin@swiftfreight.test")
    empty = await client.get("/contact-center/ivr")
    assert "No version is live: callers hear the sample flow." in empty.text
    csrf = await csrf_of(client, "/contact-center/ivr")

    broken = '{"start": "menu", "nodes": {"menu": {"kind": "menu", "prompt": {"en-US": "Hi"}, "options": {"x": "a"}}}}'  # noqa: E501
    checked = await client.post(
        "/contact-center/ivr", data={"_csrf": csrf, "flow": broken, "action": "check"}
    )
    assert "Node &#39;menu&#39;, field options.x" in checked.text
    assert textarea(checked.text) == broken  # the edit is kept, not lost

    demo = ivr.to_json(ivr.DEMO_FLOW)
    fine = await client.post(
        "/contact-center/ivr", data={"_csrf": csrf, "flow": demo, "action": "check"}
    )
    assert "OK: the flow can be published." in fine.text

    saved = await client.post(
        "/contact-center/ivr",
        data={"_csrf": csrf, "flow": demo, "action": "save", "note": "The courier line"},
    )
    assert "Draft saved: try it in the simulator, then publish it" in saved.text
    # The tree: nodes with their prompts per language, branches labelled with their keys, a
    # loop back to the main menu drawn as a link to it.
    assert 'id="node-language"' in saved.text and 'id="node-main"' in saved.text
    assert '<dd lang="yue-HK">廣東話服務請撳2。</dd>' in saved.text
    assert "Key 2" in saved.text and "No key pressed" in saved.text and "VIP caller?" in saved.text
    assert '<a href="#node-main"><code>main</code></a>' in saved.text
    assert "queue: <code>Pickup</code>" in saved.text
    assert "The courier line" in saved.text and "Sara Swift" in saved.text
    version_id = re.search(r"/contact-center/ivr/([0-9a-f-]{36})/publish", saved.text)
    assert version_id, saved.text

    published = await client.post(
        f"/contact-center/ivr/{version_id.group(1)}/publish", data={"_csrf": csrf}
    )
    assert "Version published: new calls hear it" in published.text
    assert 'state-published">Live<' in published.text

    exported = await client.get(f"/contact-center/ivr/{version_id.group(1)}/export")
    assert exported.status_code == 200
    assert exported.headers["content-disposition"] == 'attachment; filename="ivr-flow-v1.json"'
    assert ivr.from_json(exported.content) == ivr.DEMO_FLOW

    imported = await client.post(
        "/contact-center/ivr/import",
        data={"_csrf": csrf},
        files={"file": ("swift-line.json", exported.content, "application/json")},
    )
    assert "Draft saved" in imported.text and "Imported from swift-line.json" in imported.text
    bad_file = await client.post(
        "/contact-center/ivr/import",
        data={"_csrf": csrf},
        files={"file": ("notes.json", b"[1, 2]", "application/json")},
    )
    assert "The flow: Input should be an object" in bad_file.text

    chinese = await client.get("/contact-center/ivr", params={"lang": "zh-Hans"})
    assert "IVR 流程" in chinese.text and "按键 2" in chinese.text and "已上线" in chinese.text


async def test_only_managers_edit_flows(client: AsyncTestClient[Litestar], world: Demo) -> None:
    await sign_in(client, "agent1@callpro.test")
    assert (await client.get("/contact-center/ivr")).status_code == 403


# -- trying a draft -----------------------------------------------------------------------------
async def test_a_draft_is_tried_in_the_simulator_console_before_it_goes_live(
    client: AsyncTestClient[Litestar], line: Line, db: Database
) -> None:
    await sign_in(client, "admin@swiftfreight.test")
    csrf = await csrf_of(client, "/contact-center/ivr")
    draft = json.dumps(flow_saying("This is the new draft. Press 1 for pickups."))
    saved = await client.post(
        "/contact-center/ivr", data={"_csrf": csrf, "flow": draft, "action": "save"}
    )
    assert 'href="/simulator?flow_version=1"' in saved.text

    console = await client.get("/simulator", params={"flow_version": "1"})
    assert "Calls you dial now hear IVR flow version 1" in console.text
    assert '<input type="hidden" name="flow_version" value="1">' in console.text
    tried = await client.post(
        "/simulator/dial",
        data={"_csrf": csrf, "caller": "+8613700137000", "number": NUMBER, "flow_version": "1"},
    )
    assert "This is the new draft. Press 1 for pickups." in tried.text
    await client.post("/simulator/hangup", data={"_csrf": csrf, "caller": "+8613700137000"})

    # Without the version, the same number answers with what is live (nothing: the sample).
    live = await client.post(
        "/simulator/dial", data={"_csrf": csrf, "caller": "+8613700137000", "number": NUMBER}
    )
    assert "欢迎致电" in live.text
    await client.post("/simulator/hangup", data={"_csrf": csrf, "caller": "+8613700137000"})
    missing = await client.post(
        "/simulator/dial",
        data={"_csrf": csrf, "caller": "+8613700137000", "number": NUMBER, "flow_version": "9"},
    )
    assert "There is no IVR flow version 9" in missing.text
    with tenant_scope(line.account.tenant_id):
        async with db.session() as session:
            assert await ContactCenterRepository(session).published_flow() is None
