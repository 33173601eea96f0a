"""Contact-center pages: queues, skills, my status, blocklist, call handling, the IVR check."""

from __future__ import annotations

from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.tenant.conftest import Demo, csrf_of, sign_in


async def test_supervisor_sets_up_a_queue_and_an_agent_goes_ready(
    client: AsyncTestClient[Litestar], world: Demo
) -> None:
    await sign_in(client, "admin@swiftfreight.test")
    csrf = await csrf_of(client, "/contact-center/queues")
    made = await client.post(
        "/contact-center/queues",
        data={
            "_csrf": csrf,
            "name": "Pickup",
            "strategy": "skill_first",
            "overflow_after_seconds": "60",
        },
    )
    assert "Queue created" in made.text and "Pickup" in made.text and "after 60 s" in made.text
    assert "Skill first" in made.text  # the strategy in words, not its identifier
    chinese = await client.get("/contact-center/queues", params={"lang": "zh-Hans"})
    assert "技能等级优先" in chinese.text and ">skill_first<" not in chinese.text
    bad = await client.post("/contact-center/queues", data={"_csrf": csrf, "name": "Pickup"})
    assert "already a queue called Pickup" in bad.text
    ready = await client.post("/contact-center/me/status", data={"_csrf": csrf, "status": "ready"})
    assert "Status changed" in ready.text and "Sara Swift" in ready.text and "ready" in ready.text


async def test_blocklist_and_call_handling_pages(
    client: AsyncTestClient[Litestar], world: Demo
) -> None:
    await sign_in(client, "admin@swiftfreight.test")
    csrf = await csrf_of(client, "/contact-center/blocklist")
    blocked = await client.post(
        "/contact-center/blocklist",
        data={"_csrf": csrf, "phone": "13912345678", "reason": "Abusive calls"},
    )
    assert "Number blocked" in blocked.text and "+8613912345678" in blocked.text
    no_reason = await client.post(
        "/contact-center/blocklist", data={"_csrf": csrf, "phone": "13912345679", "reason": ""}
    )
    assert "Say why" in no_reason.text

    hours = '{"time_zone": "Mars/Olympus", "weekly": {}}'
    wrong = await client.post(
        "/contact-center/settings", data={"_csrf": csrf, "business_hours": hours, "vip_numbers": ""}
    )
    assert "Business hours: time_zone" in wrong.text
    good = (
        '{"time_zone": "Asia/Shanghai", "weekly": {"mon": [["08:00", "20:00"]]}, '
        '"holiday_country": "CN"}'
    )
    saved = await client.post(
        "/contact-center/settings",
        data={
            "_csrf": csrf,
            "business_hours": good,
            "vip_numbers": "+8613800000001",
            "survey_enabled": "on",
        },
    )
    assert "Settings saved" in saved.text and "Asia/Shanghai" in saved.text
    assert 'name="survey_enabled" checked' in saved.text  # the post-call survey is on
    # The IVR flow is edited in the IVR editor, linked from here.
    assert 'href="/contact-center/ivr"' in saved.text


async def test_agents_cannot_manage_the_floor(
    client: AsyncTestClient[Litestar], world: Demo
) -> None:
    await sign_in(client, "agent1@callpro.test")
    assert (await client.get("/contact-center/blocklist")).status_code == 403
    csrf = await csrf_of(client, "/contact-center/queues")
    response = await client.post(
        "/contact-center/queues", data={"_csrf": csrf, "name": "Mine"}, follow_redirects=False
    )
    assert response.status_code == 403
