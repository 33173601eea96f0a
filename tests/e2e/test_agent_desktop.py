"""Issue #6 end to end, in headless Chromium: an operator's agent takes a SwiftFreight seat and
opens the desk; the simulated network places a call from a known customer; the desk pops the
customer's profile and last contacts; the agent answers, hangs up and wraps up with a code, all
by keyboard; the supervisor console, open in a second browser context, shows the call answered
and the agent back to ready.

Each person has a browser context of their own. The call comes in the way a carrier's would:
signed webhooks to the live server, which routes it and pushes the offer to the desk."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Page, expect

from contact_center import service as contact_center
from customers import service as customers
from customers.schemas import AddressIn, CustomerIn
from depotline.config import Settings
from depotline.db import Database, tenant_scope, utcnow
from telephony_gateway import demo as gateway_demo
from telephony_gateway.models import CarrierAccount
from telephony_gateway.providers.registry import Providers
from telephony_gateway.repository import GatewayRepository
from tenant import demo
from tenant.repository import TenantRepository
from tests.contact_center.test_two_replicas import Caller
from tests.e2e.test_tenancy_flow import Browsers, sign_in
from tests.e2e.test_tenancy_flow import browsers as browsers
from tests.telephony_gateway.conftest import NUMBER
from tests.tenant.test_seats import principal

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
AGENT = "agent1@callpro.test"
SUPERVISOR = "admin@swiftfreight.test"  # SwiftFreight's own admin watches its floor
CUSTOMER = "+8613800138000"


@pytest.fixture
async def swiftfreight(db: Database) -> CarrierAccount:
    """The demo tenants and hotline, the VIP queue CallPro's Li Na works, and Wang Fang, a VIP
    customer who called before. Returns the hotline's carrier account."""
    await demo.seed(db)
    await gateway_demo.seed(db)
    async with db.session() as session:
        tenants = TenantRepository(session)
        swift = await tenants.tenant_by_slug("swiftfreight")
        li = await tenants.user_by_email(AGENT)
    assert swift is not None and li is not None
    admin = await principal(db, SUPERVISOR, swift.id)
    with tenant_scope(swift.id):
        async with db.session() as session:
            queue = await contact_center.create_queue(
                session, "VIP", reservation_seconds=60, wrap_up_seconds=60
            )
            await contact_center.set_skill(session, li.id, queue.id, 5)
            await customers.create_customer(
                session,
                admin,
                CustomerIn(
                    name="Wang Fang",
                    phones=[CUSTOMER],
                    tier="vip",
                    addresses=[AddressIn(label="Shop", line1="8 Huangpu Avenue", city="Guangzhou")],
                ),
            )
        for days, kind, summary in (
            (9, "order", "Pickup of 3 parcels, Friday 9-12"),
            (2, "complaint", "Courier came late"),
        ):
            async with db.session() as session:
                await customers.record_contact(
                    session,
                    kind=kind,
                    ref=f"{kind}-{days}",
                    summary=summary,
                    direction="inbound",
                    at=utcnow() - timedelta(days=days),
                    phone=CUSTOMER,
                )
        async with db.session() as session:
            number = await GatewayRepository(session).number_by_e164(NUMBER)
            assert number is not None
            account = await GatewayRepository(session).get_account(number.account_id)
    assert account is not None
    return account


async def take_a_seat_and_open_the_desk(page: Page) -> None:
    await sign_in(page, AGENT)
    await page.goto("/seats/")
    await page.get_by_role("button", name="Take a seat for SwiftFreight").click()
    await page.get_by_role("link", name="Desk", exact=True).click()
    await expect(page.get_by_test_id("serving")).to_have_text("SwiftFreight")
    await expect(page.get_by_test_id("agent-state")).to_have_text("Signed out")
    await expect(page.locator("#desk[data-live]")).to_be_attached()  # its stream is open


async def test_an_agent_answers_a_known_customer_and_the_supervisor_sees_it(
    browsers: Browsers, swiftfreight: CarrierAccount, settings: Settings
) -> None:
    desk = await browsers.open()
    await take_a_seat_and_open_the_desk(desk)
    await desk.keyboard.press("r")
    await expect(desk.get_by_test_id("agent-state")).to_have_text("Ready")

    # Wang Fang calls the hotline and chooses English (3); a VIP, she goes to the VIP queue.
    async with httpx.AsyncClient(base_url=browsers.base_url, timeout=10) as network:
        key = Providers(settings.session_secret(), "", None).webhook_secret(swiftfreight)
        caller = Caller(network, key)
        await caller.step("voice", **{"from": CUSTOMER})
        queued = (await caller.step("gather", digits="3"))[-1]
        assert (queued["command"], queued["queue"]) == ("enqueue", "VIP")

    offer = desk.get_by_test_id("offer")
    await expect(offer).to_be_visible()
    pop = desk.get_by_test_id("screen-pop")
    await expect(pop.get_by_test_id("caller-name")).to_contain_text("Wang Fang")
    await expect(pop.get_by_test_id("caller-name").get_by_text("VIP", exact=True)).to_be_visible()
    await expect(pop.get_by_test_id("pop-tenant")).to_have_text("SwiftFreight")
    contacts = pop.get_by_test_id("recent-contacts")
    await expect(contacts.get_by_role("row")).to_have_count(3)  # the header and two contacts
    await expect(contacts).to_contain_text("Courier came late")
    await expect(contacts).to_contain_text("Pickup of 3 parcels, Friday 9-12")
    await expect(pop.get_by_test_id("ivr-path")).to_contain_text("language 3")
    await expect(desk.locator("#announce")).to_contain_text(
        "Wang Fang"
    )  # read out to a screen reader

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await desk.screenshot(path=str(SCREENSHOTS / "desk.png"))

    await desk.keyboard.press("a")
    await expect(desk.get_by_test_id("call-controls")).to_be_visible()
    await expect(offer).to_be_hidden()
    await desk.keyboard.press("x")
    wrap = desk.get_by_test_id("wrap-up")
    await expect(wrap).to_be_visible()
    await expect(desk.get_by_test_id("agent-state")).to_have_text("Wrap up")
    countdown = desk.get_by_test_id("wrap-countdown")
    await expect(countdown).to_have_text(re.compile(r"^(5\d|60)$"))  # of the queue's 60 s

    await desk.keyboard.press("w")  # to the code
    await expect(desk.get_by_label("Wrap-up code")).to_be_focused()
    await desk.get_by_label("Wrap-up code").select_option("Pickup booked")
    await desk.get_by_label("Notes").fill("Booked Friday 9-12, 3 parcels")
    await desk.keyboard.press("Escape")
    await wrap.get_by_role("button", name="Save and get ready").click()
    await expect(desk.get_by_test_id("agent-state")).to_have_text("Ready")
    await expect(wrap).to_be_hidden()

    # The supervisor's console, in another browser.
    console = await browsers.open()
    await sign_in(console, SUPERVISOR)
    await console.goto("/contact-center/console")
    vip = console.locator('[data-queue="VIP"]')
    await expect(vip.locator('[data-figure="answered"]')).to_have_text("1")
    agent = console.locator(f'[data-agent="{AGENT}"]')
    await expect(agent.locator('[data-figure="state"]')).to_contain_text("Ready")
    assert browsers.server_errors == []
