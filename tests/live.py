"""The real app under uvicorn on a free loopback port, for browsers and carriers to call."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
import uvicorn

from depotline.app import create_app
from depotline.config import Settings

STARTUP_TIMEOUT = 20.0


@contextmanager
def serve(settings: Settings, *, own_public_url: bool = False) -> Iterator[tuple[str, Settings]]:
    """Yield (base URL, the settings it runs with). With `own_public_url`, the app is told that
    its base URL is where carriers reach it (their callbacks then come back to it)."""
    # Bind first and hand uvicorn the socket, so no other process can take the port in between.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    if own_public_url:
        settings = settings.model_copy(update={"public_url": url})
    config = uvicorn.Config(
        create_app(settings),
        host="127.0.0.1",
        log_config=None,
        timeout_graceful_shutdown=5,  # a browser's idle keep-alive must not stall teardown
    )
    server = uvicorn.Server(config)
    # Server.run calls asyncio.run: a fresh loop in this thread (the app's pools live on it);
    # uvicorn skips signal handlers off the main thread.
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        _wait_until_healthy(url, thread)
        yield url, settings
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()
    assert not thread.is_alive(), "the live server did not stop"


def _wait_until_healthy(base_url: str, thread: threading.Thread) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    with httpx.Client(base_url=base_url, timeout=1.0) as client:
        while time.monotonic() < deadline:
            if not thread.is_alive():
                pytest.fail("the live server stopped during start-up (see the captured log)")
            try:
                if client.get("/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                pass  # not listening yet
            time.sleep(0.05)
    pytest.fail(f"the live server did not answer /healthz within {STARTUP_TIMEOUT:.0f}s")
