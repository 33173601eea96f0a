"""What a person sees and does in a browser: the landing page, languages, keyboard, API docs."""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import Page, expect

from depotline import __version__
from tests.e2e.conftest import RequestLog

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


async def test_landing_page_shows_version_and_api_docs_link_from_this_server_only(
    live_server: str, page: Page, request_log: RequestLog
) -> None:
    await page.goto(live_server + "/", wait_until="networkidle")

    await expect(page.get_by_test_id("version")).to_have_text(__version__)
    docs = page.get_by_role("link", name="Interactive API documentation")
    await expect(docs).to_be_visible()
    await expect(docs).to_have_attribute("href", "/schema")
    # The stylesheet really loaded (a page with no CSS would still pass the text checks).
    assert any(url.endswith("/static/css/depotline.css") for url in request_log.urls)
    assert request_log.foreign() == []


async def test_language_switch_to_traditional_chinese_sticks_across_reload(
    live_server: str, page: Page
) -> None:
    await page.goto(live_server + "/")
    await expect(page.locator("html")).to_have_attribute("lang", "en")

    await page.get_by_role("link", name="繁體中文").click()
    await page.wait_for_url(live_server + "/")
    await expect(page.locator("html")).to_have_attribute("lang", "zh-Hant")
    await expect(page.get_by_role("link", name="首頁", exact=True)).to_be_visible()

    # The choice lives in a cookie, so a plain reload keeps it.
    await page.reload()
    await expect(page.locator("html")).to_have_attribute("lang", "zh-Hant")
    await expect(page.get_by_role("link", name="首頁", exact=True)).to_be_visible()
    cookies = {c["name"]: c["value"] for c in await page.context.cookies()}
    assert cookies.get("lang") == "zh_Hant"


async def test_first_tab_reaches_skip_link_which_moves_focus_to_main(
    live_server: str, page: Page
) -> None:
    await page.goto(live_server + "/")

    await page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    await expect(skip).to_be_focused()
    await expect(skip).to_be_visible()  # hidden until focused, then shown to sighted users

    await page.keyboard.press("Enter")
    await expect(page.locator("main#main")).to_be_focused()


# strict: once the app serves a Swagger UI 5.x this passes, fails the run, and the mark must go.
async def test_api_docs_render_swagger_ui_from_local_assets(
    live_server: str, page: Page, request_log: RequestLog
) -> None:
    await page.goto(live_server + "/schema")

    await expect(page.locator(".swagger-ui .info .title")).to_contain_text("Depotline")
    await expect(page.get_by_text("/healthz").first).to_be_visible()
    await page.wait_for_load_state("networkidle")
    assert any("/vendor/swagger-ui/" in url for url in request_log.urls)
    assert request_log.foreign() == []


async def test_landing_page_screenshot(live_server: str, page: Page) -> None:
    """Kept in docs/ for people to look at; rewritten on every run."""
    await page.goto(live_server + "/", wait_until="networkidle")
    await expect(page.get_by_test_id("version")).to_have_text(__version__)

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    target = SCREENSHOTS / "landing.png"
    await page.screenshot(path=target, full_page=True)
    assert target.stat().st_size > 10_000  # a blank page compresses to far less
