"""The supervisor console in Chromium: the figures follow the floor without a reload (console.js
reads the floor API), and the supervisor forces an agent ready and not ready from the page."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID, uuid4

from playwright.async_api import expect
from sqlmodel.ext.asyncio.session import AsyncSession

from contact_center import service
from contact_center.models import Call, Queue
from depotline.db import Database, tenant_scope
from tenant import demo
from tenant import service as tenant_service
from tenant.repository import TenantRepository
from tests.e2e.test_tenancy_flow import Browsers, flash, sign_in
from tests.e2e.test_tenancy_flow import browsers as browsers
from tests.tenant.test_seats import principal

SUPERVISOR = "admin@swiftfreight.test"
AGENT = "agent1@callpro.test"


async def test_the_console_follows_the_floor_live_and_acts(
    browsers: Browsers, db: Database
) -> None:
    await demo.seed(db)
    async with db.session() as session:
        tenants = TenantRepository(session)
        swift, li = await tenants.tenant_by_slug("swiftfreight"), await tenants.user_by_email(AGENT)
        callpro = await tenants.tenant_by_slug("callpro")
    assert swift is not None and li is not None and callpro is not None
    on_seat = await principal(db, AGENT, callpro.id)
    with tenant_scope(swift.id):
        async with db.session() as session:
            await tenant_service.take_seat(session, on_seat, swift.id)  # no seat, no calls
    with tenant_scope(swift.id):
        async with db.session() as session:
            queue = await service.create_queue(session, "Pickup", wrap_up_seconds=60)
            await service.agent_signs_in(session, li.id, callpro.id)
            await service.set_skill(session, li.id, queue.id)

    async def run(work: Callable[..., Awaitable[Any]], *args: object) -> Any:
        """A service function in its own transaction, as SwiftFreight."""
        with tenant_scope(swift.id):
            async with db.session() as session:
                return await work(session, *args)

    page = await browsers.open()
    await sign_in(page, SUPERVISOR)
    await page.get_by_role("link", name="Console").click()
    pickup = page.locator('[data-queue="Pickup"]')
    await expect(pickup.locator('[data-figure="waiting"]')).to_have_text("0")

    call_id = await run(enqueue_a_call, queue)  # a caller joins the queue
    await expect(pickup.locator('[data-figure="waiting"]')).to_have_text("1")
    await expect(pickup.locator('[data-figure="offered"]')).to_have_text("1")

    agent = page.locator(f'[data-agent="{AGENT}"]')
    state = agent.locator('[data-figure="state"]')
    await expect(state).to_contain_text("Not ready")
    await expect(agent.get_by_role("button", name="Listen")).to_be_disabled()
    await agent.get_by_role("button", name="Force ready").click()
    await expect(flash(page)).to_have_text("The agent is ready")
    await expect(state).to_contain_text("Reserved")  # the waiting call rings at once

    await run(service.accept, li.id, call_id)  # Li Na answers at her desk
    await expect(state).to_contain_text("On call")
    await expect(agent.get_by_role("button", name="Listen")).to_be_enabled()
    await expect(pickup.locator('[data-figure="answered_15s"]')).to_have_text("100%")
    await agent.get_by_label("Reason").select_option("Coaching")
    await agent.get_by_role("button", name="Force not ready").click()
    await expect(flash(page)).to_have_text("The agent will be not ready when this call ends")
    await expect(state).to_contain_text("after this call: Not ready")

    await run(service.caller_hangs_up, call_id)
    await expect(state).to_contain_text("Not ready · Coaching")  # not wrap-up
    await expect(state).not_to_contain_text("On call")
    answered_bar = page.locator('[data-chart-queue="Pickup"] [data-bar="answered"]')
    assert float(await answered_bar.get_attribute("width") or 0) > 0
    assert browsers.server_errors == []


async def enqueue_a_call(session: AsyncSession, queue: Queue) -> UUID:
    call = Call(
        provider="simulator",
        provider_call_id=uuid4().hex,
        from_number="+8613800138000",
        to_number="+862088880001",
    )
    session.add(call)
    await session.flush()
    await service.enqueue(session, call, queue)
    return call.id
