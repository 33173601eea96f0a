"""Issue #3 end to end, in a browser: a client onboards a colleague and leases hosted seats from
an operator; the operator's supervisor assigns agents; agents take seats up to the limit; one more
is refused with the limit and the holders named; a supervisor frees a seat and the refused agent
gets it.

Every person has a browser context of their own (own cookies), as if on their own laptop.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from uuid import UUID

import pytest
from playwright.async_api import Browser, Locator, Page, Response, Route, expect

from depotline.db import Database, tenant_scope
from tenant import demo
from tenant.models import (
    Membership,
    Role,
    SeatAssignment,
    SeatLease,
    Tenant,
    TenantKind,
    User,
)
from tenant.repository import TenantRepository
from tenant.service import hash_password
from tests.e2e.conftest import VIEWPORT, is_local

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
DEMO_PASSWORD = demo.DEFAULT_DEMO_PASSWORD

CLIENT = "Nordic Parcel"
CLIENT_ADMIN = "admin@nordicparcel.test"
CLIENT_ADMIN_PASSWORD = "nordic-parcel-admin-1"
INVITEE = "dispatch@nordicparcel.test"
INVITEE_NAME = "Dana Dispatch"
INVITEE_PASSWORD = "dispatch-password-1"
OPERATOR = "CallPro"
SUPERVISOR = "supervisor@callpro.test"
SEATS = 2  # N; CallPro's demo staff has three agents, so the third is agent N+1
AGENTS = {  # CallPro's agents (demo data): email -> name
    "agent1@callpro.test": "Agent Li Na",
    "agent2@callpro.test": "Agent Wong Ka",
    "agent3@callpro.test": "Agent Sam Lee",
}
INVITATION_LINK = re.compile(r"https?://\S+/invitations/[0-9a-f-]{36}/[A-Za-z0-9_-]+")


@dataclass(frozen=True)
class World:
    client_id: UUID
    operator_id: UUID
    users: dict[str, UUID]  # email -> id


@pytest.fixture
async def nordic_parcel(db: Database) -> World:
    """The demo world (platform, CallPro and its staff, two other clients with their own leases),
    plus a fresh client with one admin and no lease yet, so the test's lease collides with none."""
    await demo.seed(db)
    async with db.session() as session:
        repo = TenantRepository(session)
        platform = await repo.tenant_by_slug("platform")
        assert platform is not None
        client = Tenant(
            slug="nordic-parcel", name=CLIENT, kind=TenantKind.CLIENT, parent_id=platform.id
        )
        admin = User(
            email=CLIENT_ADMIN, name="Nora Nord", password_hash=hash_password(CLIENT_ADMIN_PASSWORD)
        )
        repo.add(client, admin)
        await repo.flush()
    with tenant_scope(client.id):
        async with db.session() as session:
            TenantRepository(session).add(Membership(user_id=admin.id, role=Role.TENANT_ADMIN))
    async with db.session() as session:
        repo = TenantRepository(session)
        operator = await repo.tenant_by_slug("callpro")
        assert operator is not None
        users = {}
        for email in (CLIENT_ADMIN, SUPERVISOR, *AGENTS):
            user = await repo.user_by_email(email)
            assert user is not None
            users[email] = user.id
    return World(client.id, operator.id, users)


@dataclass
class Browsers:
    """Opens one isolated browser context per person and notes every server error any page
    met, so no step can pass over a 500 that the page happened to render nicely."""

    browser: Browser
    base_url: str
    server_errors: list[str] = field(default_factory=list)
    pages: list[Page] = field(default_factory=list)

    async def open(self) -> Page:
        context = await self.browser.new_context(viewport=VIEWPORT, base_url=self.base_url)

        async def keep_local(route: Route) -> None:
            if is_local(route.request.url):
                await route.continue_()
            else:
                await route.abort("blockedbyclient")

        await context.route("**/*", keep_local)
        page = await context.new_page()
        page.on("response", self._note)
        self.pages.append(page)
        return page

    def _note(self, response: Response) -> None:
        if response.status >= 500:
            self.server_errors.append(f"{response.status} {response.request.method} {response.url}")


@pytest.fixture
async def browsers(browser: Browser, live_server: str) -> AsyncIterator[Browsers]:
    people = Browsers(browser, live_server)
    yield people
    for page in people.pages:
        await page.context.close()


async def sign_in(page: Page, email: str, password: str = DEMO_PASSWORD) -> None:
    await page.goto("/auth/sign-in")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in", exact=True).click()
    await expect(page.get_by_role("button", name="Sign out")).to_be_visible()


def flash(page: Page) -> Locator:
    """The page's confirmation message (a flash with role=status)."""
    return page.get_by_role("status")


def error(page: Page) -> Locator:
    return page.get_by_role("alert")


def row(table: Locator, *cells: str) -> Locator:
    """The table row whose text holds every one of `cells`."""
    rows = table.get_by_role("row")
    for cell in cells:
        rows = rows.filter(has_text=cell)
    return rows


async def take_seat(page: Page, client: str) -> None:
    await page.goto("/seats/")
    await page.get_by_role("button", name=f"Take a seat for {client}").click()


async def test_client_leases_seats_operator_staffs_them_and_the_seat_limit_holds(
    browsers: Browsers, nordic_parcel: World
) -> None:
    today = date.today().isoformat()

    # -- the client's admin signs in and invites a colleague ------------------------------------
    admin = await browsers.open()
    await sign_in(admin, CLIENT_ADMIN, CLIENT_ADMIN_PASSWORD)
    await expect(admin.get_by_test_id("acting-tenant")).to_have_text(CLIENT)

    await admin.get_by_role("link", name="Users").click()
    await expect(admin.get_by_role("heading", name="Users", level=1)).to_be_visible()
    invite = admin.get_by_test_id("invite-form")
    await invite.get_by_label("Email").fill(INVITEE)
    await invite.get_by_label("Role").select_option("depot_user")
    await invite.get_by_role("button", name="Invite").click()
    await expect(flash(admin)).to_contain_text(f"Invitation created for {INVITEE}")
    found = INVITATION_LINK.search(await flash(admin).inner_text())
    assert found, "the flash message shows no invitation link"
    link = found.group(0)
    await expect(admin.get_by_role("listitem").filter(has_text=INVITEE)).to_contain_text("pending")

    # -- the colleague opens the link on their own computer, joins, and signs in ----------------
    invitee = await browsers.open()
    await invitee.goto(link)
    await expect(invitee.get_by_role("heading", name="Accept the invitation")).to_be_visible()
    await expect(invitee.get_by_role("main")).to_contain_text(f"Join {CLIENT} · {INVITEE}")
    await invitee.get_by_label("Your name").fill(INVITEE_NAME)
    await invitee.get_by_label("Password").fill(INVITEE_PASSWORD)
    await invitee.get_by_role("button", name="Join").click()
    await expect(invitee).to_have_url(re.compile(r"/auth/sign-in$"))
    await expect(flash(invitee)).to_have_text("Welcome aboard. Sign in to continue.")
    await sign_in(invitee, INVITEE, INVITEE_PASSWORD)
    await expect(invitee.get_by_test_id("acting-tenant")).to_have_text(CLIENT)
    await expect(invitee.get_by_role("banner")).to_contain_text(INVITEE_NAME)
    # The link worked once: opening it again does not let anyone else in.
    await invitee.goto(link)
    await expect(invitee.get_by_role("main")).to_contain_text("already used")
    await expect(invitee.get_by_role("button", name="Join")).to_have_count(0)

    await admin.reload()
    members = admin.get_by_role("table", name="Members")
    await expect(row(members, INVITEE_NAME, INVITEE)).to_have_count(1)
    await expect(admin.get_by_role("listitem").filter(has_text=INVITEE)).to_contain_text("accepted")

    # -- the client's admin leases N seats from CallPro ----------------------------------------
    await admin.get_by_role("link", name="Seats", exact=True).click()
    leases = admin.get_by_test_id("leases")
    await expect(leases).to_contain_text("No leases yet")
    lease_form = admin.get_by_test_id("lease-form")
    await lease_form.get_by_label("Operator").select_option(label=OPERATOR)
    await lease_form.get_by_label("Seats", exact=True).fill(str(SEATS))
    await lease_form.get_by_label("From").fill(today)
    await lease_form.get_by_role("button", name="Lease seats").click()
    await expect(flash(admin)).to_have_text("Seats leased")
    await expect(row(leases, CLIENT, OPERATOR, f"0 / {SEATS}", today)).to_have_count(1)
    await expect(leases.get_by_role("row")).to_have_count(2)  # header + our lease: no one else's

    # -- CallPro's supervisor signs in and assigns three agents to the new client ---------------
    supervisor = await browsers.open()
    await sign_in(supervisor, SUPERVISOR)
    await expect(supervisor.get_by_test_id("acting-tenant")).to_have_text(OPERATOR)
    await supervisor.get_by_role("link", name="Seats", exact=True).click()
    await expect(row(supervisor.get_by_test_id("leases"), CLIENT, OPERATOR)).to_have_count(1)
    assign_form = supervisor.get_by_test_id("assign-form")
    assignments = supervisor.get_by_test_id("assignments")
    for name in AGENTS.values():
        await assign_form.get_by_label("Agent").select_option(label=name)
        await assign_form.get_by_label("Client").select_option(label=CLIENT)
        await assign_form.get_by_role("button", name="Assign").click()
        await expect(flash(supervisor)).to_have_text("Agent assigned")
        await expect(row(assignments, name, CLIENT)).to_have_count(1)

    # -- N agents take a seat each ----------------------------------------------------------------
    agents: dict[str, Page] = {}
    for email, name in AGENTS.items():
        agents[name] = await browsers.open()
        await sign_in(agents[name], email)
    first, second, third = AGENTS.values()
    for name in (first, second):
        await take_seat(agents[name], CLIENT)
        await expect(flash(agents[name])).to_have_text("You are on a seat")
        await expect(agents[name].get_by_test_id("current-seat")).to_have_text(
            f"You are on a seat for {CLIENT}."
        )
        await expect(agents[name].get_by_test_id("acting-tenant")).to_have_text(
            f"{CLIENT} · on a seat"
        )

    # -- agent N+1 is refused, told the limit and who holds the seats -----------------------------
    await take_seat(agents[third], CLIENT)
    refusal = error(agents[third])
    await expect(refusal).to_contain_text(f"All {SEATS} seats of Nordic Parcel are in use")
    await expect(refusal).to_contain_text(f"held by: {first}, {second}")
    await expect(agents[third].get_by_test_id("current-seat")).to_have_count(0)
    await expect(agents[third].get_by_test_id("acting-tenant")).to_have_text(OPERATOR)

    # Both sides see the lease full and who is on it.
    await supervisor.reload()
    open_seats = supervisor.get_by_test_id("open-seats")
    await expect(
        row(supervisor.get_by_test_id("leases"), CLIENT, f"{SEATS} / {SEATS}")
    ).to_have_count(1)
    await expect(row(open_seats, first, CLIENT)).to_have_count(1)
    await expect(row(open_seats, second, CLIENT)).to_have_count(1)
    await expect(row(open_seats, third)).to_have_count(0)
    await admin.reload()
    await expect(row(admin.get_by_test_id("leases"), CLIENT, f"{SEATS} / {SEATS}")).to_have_count(1)
    await expect(row(admin.get_by_test_id("open-seats"), first, CLIENT)).to_have_count(1)

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    target = SCREENSHOTS / "seats.png"
    await supervisor.screenshot(path=target, full_page=True)
    assert target.stat().st_size > 10_000  # a blank page compresses to far less

    # -- the supervisor frees the first agent's seat --------------------------------------------
    await row(open_seats, first, CLIENT).get_by_role("button", name="Free seat").click()
    await expect(flash(supervisor)).to_have_text("Seat freed")
    await expect(row(open_seats, first)).to_have_count(0)
    await expect(row(open_seats, second, CLIENT)).to_have_count(1)
    await expect(
        row(supervisor.get_by_test_id("leases"), CLIENT, f"{SEATS - 1} / {SEATS}")
    ).to_have_count(1)

    # The freed agent is back in their own tenant on their next page view.
    await agents[first].reload()
    await expect(agents[first].get_by_test_id("acting-tenant")).to_have_text(OPERATOR)
    await expect(agents[first].get_by_test_id("current-seat")).to_have_count(0)

    # -- now the refused agent gets the seat ----------------------------------------------------
    await take_seat(agents[third], CLIENT)
    await expect(flash(agents[third])).to_have_text("You are on a seat")
    await expect(error(agents[third])).to_have_count(0)
    await expect(agents[third].get_by_test_id("acting-tenant")).to_have_text(
        f"{CLIENT} · on a seat"
    )

    await supervisor.reload()
    await expect(row(open_seats, third, CLIENT)).to_have_count(1)
    await expect(
        row(supervisor.get_by_test_id("leases"), CLIENT, f"{SEATS} / {SEATS}")
    ).to_have_count(1)

    # ... and the freed agent, trying again, is the one refused now.
    await take_seat(agents[first], CLIENT)
    await expect(error(agents[first])).to_contain_text(f"held by: {second}, {third}")

    assert browsers.server_errors == []


async def test_two_agents_racing_for_the_last_seat_get_one_seat_between_them(
    browsers: Browsers, nordic_parcel: World, db: Database
) -> None:
    """Both press "Take a seat" at the same moment for a one-seat lease: exactly one is seated,
    the other is refused with the winner's name (the lease rows are locked for the count)."""
    world = nordic_parcel
    with tenant_scope(world.client_id):
        async with db.session() as session:
            TenantRepository(session).add(
                SeatLease(operator_id=world.operator_id, seats=1, starts_on=date.today())
            )
    racers = {"agent2@callpro.test": "Agent Wong Ka", "agent3@callpro.test": "Agent Sam Lee"}
    with tenant_scope(world.operator_id):
        async with db.session() as session:
            TenantRepository(session).add(
                *(SeatAssignment(client_id=world.client_id, user_id=world.users[e]) for e in racers)
            )
    pages: dict[str, Page] = {}
    for email, name in racers.items():
        pages[name] = await browsers.open()
        await sign_in(pages[name], email)
        await pages[name].goto("/seats/")
    buttons = [p.get_by_role("button", name=f"Take a seat for {CLIENT}") for p in pages.values()]
    await asyncio.gather(*(button.click() for button in buttons))

    seated = []
    for name, page in pages.items():
        await expect(page.locator("p.flash")).to_have_count(1)
        if await page.get_by_role("status").count():
            await expect(page.get_by_test_id("current-seat")).to_contain_text(CLIENT)
            seated.append(name)
    assert len(seated) == 1, f"seated: {seated}"
    (winner,) = seated
    (loser,) = set(pages) - {winner}
    refusal = error(pages[loser])
    await expect(refusal).to_contain_text(f"The only seat of {CLIENT} is in use")
    await expect(refusal).to_contain_text(f"held by: {winner}")
    await expect(pages[loser].get_by_test_id("current-seat")).to_have_count(0)

    admin = await browsers.open()
    await sign_in(admin, CLIENT_ADMIN, CLIENT_ADMIN_PASSWORD)
    await admin.goto("/admin/seats")
    await expect(row(admin.get_by_test_id("leases"), CLIENT, OPERATOR, "1 / 1")).to_have_count(1)
    open_seats = admin.get_by_test_id("open-seats")
    await expect(row(open_seats, winner, CLIENT)).to_have_count(1)
    await expect(open_seats.get_by_role("button", name="Free seat")).to_have_count(1)
    assert browsers.server_errors == []
