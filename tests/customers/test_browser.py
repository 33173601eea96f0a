"""Customers in a browser (Debian's Chromium), by keyboard: find a caller by part of the number,
open the profile, import a file and watch the progress bar turn into the rejected-rows report."""

from __future__ import annotations

import re

from playwright.async_api import Page, expect

from customers import demo
from depotline.db import Database
from tests.e2e.conftest import browser as browser
from tests.e2e.conftest import chromium_executable as chromium_executable
from tests.e2e.conftest import live_server as live_server
from tests.e2e.conftest import page as page
from tests.telephony_gateway.conftest import Drain
from tests.tenant.conftest import PASSWORD, Demo

IMPORT = b"name,phone,tier\nSun Li,13833334444,vip\nNo Number,,\nWrong Tier,13833335555,gold\n"


async def sign_in(page: Page, base: str, email: str) -> None:
    await page.goto(f"{base}/auth/sign-in")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_label("Password").press("Enter")
    await expect(page.get_by_role("button", name="Sign out")).to_be_visible()


async def test_find_a_caller_and_import_a_file_by_keyboard(
    live_server: str, page: Page, db: Database, world: Demo, drain: Drain
) -> None:
    await demo.seed(db)
    await sign_in(page, live_server, "admin@swiftfreight.test")

    await page.get_by_role("link", name="Customers", exact=True).click()
    search = page.get_by_label("Name, number or address")
    await search.fill("0013 8000")
    await search.press("Enter")
    results = page.get_by_test_id("customers")
    await expect(results.get_by_role("row")).to_have_count(2)  # the header and 王芳
    await results.get_by_role("link", name="王芳").focus()
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", level=1)).to_contain_text("王芳")
    await expect(page.get_by_test_id("timeline").get_by_role("row")).to_have_count(5)

    await page.goto(f"{live_server}/customers/import")
    await page.get_by_label("CSV or Excel (XLSX) file, at most 20 MB").set_input_files(
        {"name": "customers.csv", "mimeType": "text/csv", "buffer": IMPORT}
    )
    await page.get_by_role("button", name="Upload and import").press("Enter")
    await expect(page).to_have_url(re.compile(r"/customers/imports/[0-9a-f-]{36}$"))
    progress = page.get_by_label("Progress")
    await expect(progress).to_have_attribute("max", "3")
    await expect(page.get_by_test_id("import-status")).to_contain_text("Queued")

    await drain()  # the worker imports; the page's poll notices and shows the outcome
    await expect(page.get_by_role("heading", name="Rejected rows")).to_be_visible(timeout=10_000)
    await expect(progress).to_have_attribute("value", "3")
    rejected = page.get_by_test_id("rejected-rows")
    await expect(rejected).to_contain_text("A phone number is required")
    await expect(rejected).to_contain_text("Unknown tier: use standard or vip")
    await expect(page.get_by_role("link", name="Download the rejected rows (CSV)")).to_be_visible()
