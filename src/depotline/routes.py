"""Kernel routes: liveness, readiness and the landing page."""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import Controller, Request, Response, get
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE
from redis.asyncio import Redis

from depotline import __version__
from depotline.db import Database
from depotline.i18n import LANG_COOKIE, normalise

CHECK_TIMEOUT = 2.0


async def _check(name: str, probe: Any) -> tuple[str, str]:
    try:
        await asyncio.wait_for(probe, CHECK_TIMEOUT)
    except Exception as exc:  # any failure means "down"; the reason is reported, not raised
        return name, f"down: {type(exc).__name__}"
    return name, "ok"


class HealthController(Controller):
    tags = ["health"]

    @get("/healthz", summary="The process is alive", cache=False)
    async def healthz(self) -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    @get("/readyz", summary="PostgreSQL and Redis answer", cache=False)
    async def readyz(
        self, db: NamedDependency[Database], redis: NamedDependency[Redis]
    ) -> Response[dict[str, Any]]:
        checks = dict(
            await asyncio.gather(_check("postgres", db.ping()), _check("redis", redis.ping()))
        )
        down = sorted(name for name, state in checks.items() if state != "ok")
        ready = not down
        body: dict[str, Any] = {"status": "ready" if ready else "unavailable", "checks": checks}
        if down:
            body["detail"] = "not ready: " + ", ".join(down) + " down"
        return Response(
            content=body, status_code=HTTP_200_OK if ready else HTTP_503_SERVICE_UNAVAILABLE
        )


class HomeController(Controller):
    include_in_schema = False

    @get("/")
    async def home(self) -> Template:
        return Template(template_name="home.html", context={"version": __version__})

    @get("/lang/{locale:str}")
    async def switch_language(
        self, request: Request[Any, Any, Any], locale: FromPath[str]
    ) -> Redirect:
        """Remember the chosen language in a cookie and go back where the user was."""
        chosen = normalise(locale) or "en"
        back = request.query_params.get("next", "/")
        if not back.startswith("/") or back.startswith("//"):
            back = "/"  # never an open redirect
        response = Redirect(path=back)
        response.set_cookie(LANG_COOKIE, chosen, max_age=365 * 24 * 3600, samesite="lax")
        return response
