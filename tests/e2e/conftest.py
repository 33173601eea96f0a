"""Browser tests: the real app under uvicorn on loopback, driven by Debian's headless Chromium.

The server runs in a thread with its own event loop, so the app's database and Redis pools live
on that loop and never on the test session's loop, where async Playwright runs. Playwright never
downloads a browser here: it launches /usr/bin/chromium (`apt-get install chromium`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.async_api import Browser, Page, Request, Route, ViewportSize, async_playwright

from depotline.config import Settings
from tests.live import serve

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",  # tests run as root, where Chromium's sandbox refuses to start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # No calls home: the only traffic a test makes is to the live server.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT: ViewportSize = {"width": 1366, "height": 768}  # a common laptop screen
STARTUP_TIMEOUT = 20.0


def is_local(url: str) -> bool:
    """Whether a URL stays on this machine: a loopback host, or no network at all (data:)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https", "ws", "wss"):
        return parts.scheme in ("data", "blob", "about")
    host = parts.hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # any other name could resolve anywhere
        return False


class RequestLog:
    """Every URL the page asked for, so a test can prove nothing went past loopback."""

    def __init__(self, page: Page) -> None:
        self.urls: list[str] = []
        page.on("request", self._record)

    def _record(self, request: Request) -> None:
        self.urls.append(request.url)

    def foreign(self) -> list[str]:
        return [url for url in self.urls if not is_local(url)]


@pytest.fixture
def live_server(settings: Settings, clean_db: None, clean_redis: None) -> Iterator[str]:
    """The app on a free loopback port; yields its base URL."""
    with serve(settings) as (url, _):
        yield url


@pytest.fixture(scope="session")
def chromium_executable() -> Path:
    # Fail, never skip: a missing browser must not turn the browser tests silently green.
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's Chromium (apt-get install chromium)")
    return CHROMIUM


@pytest.fixture(scope="session")
async def browser(chromium_executable: Path) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=chromium_executable, headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        await chromium.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    """A fresh page (own cookies) whose requests to anywhere but loopback are refused."""
    context = await browser.new_context(viewport=VIEWPORT)

    async def keep_local(route: Route) -> None:
        # A guard, not the check: the request is still logged, so the test still fails on it.
        if is_local(route.request.url):
            await route.continue_()
        else:
            await route.abort("blockedbyclient")

    await context.route("**/*", keep_local)
    new_page = await context.new_page()
    yield new_page
    await context.close()


@pytest.fixture
def request_log(page: Page) -> RequestLog:
    return RequestLog(page)
