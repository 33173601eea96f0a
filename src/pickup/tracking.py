"""The public tracking page, /track/<token>: no sign-in; the link in every customer SMS.

It shows one order: its number, status and timeline (times in the order's time zone), window,
depot and driver, in the customer's language (`?lang=`, else the order's). Nobody's phone
number or address, no free text staff typed. The token (secrets.token_urlsafe, unique across
tenants) is the only key: the lookup sees the one link with that token, then reads the order
under its own tenant's row-level security. Unknown tokens are 404; a client that keeps missing
is slowed down (429) before guessing could get anywhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import structlog
from litestar import Controller, Request, get
from litestar.di import NamedDependency
from litestar.params import FromQuery
from litestar.response import Template
from redis.asyncio import Redis
from redis.exceptions import RedisError

from depotline import i18n
from depotline.db import Database, tenant_scope
from pickup import service
from pickup.models import Order, OrderEvent, OrderStatus
from pickup.notification_repository import NotificationRepository
from pickup.notifications import STATUS_WORDS, language_of, window_text
from pickup.repository import PickupRepository
from tenant.repository import TenantRepository

log = structlog.get_logger(__name__)

TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{16,64}")
#: Unknown tokens a client may try in `MISS_WINDOW_SECONDS` before it is turned away.
MISSES_ALLOWED = 20
MISS_WINDOW_SECONDS = 600
#: The token is in the URL: never pass it on to another site, never keep it in a cache.
PRIVATE_HEADERS = {
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Robots-Tag": "noindex, nofollow",
}


@dataclass(frozen=True)
class Step:
    at: str  # local time of the order's time zone
    words: str
    current: bool = False


@dataclass(frozen=True)
class Tracking:
    company: str
    number: str
    status: str
    status_words: str
    window: str
    timezone: str
    depot: str | None
    driver: str | None
    steps: list[Step]
    language: str


def _steps(order: Order, events: list[OrderEvent], language: str) -> list[Step]:
    """Status changes and the depot's yes, as a customer would tell them: a second 'booked'
    (after a depot gave the order back) and repeats are left out."""
    words, tz = STATUS_WORDS[language], ZoneInfo(order.timezone)
    steps: list[Step] = []
    for event in events:
        if event.action == "accepted":
            said = words["accepted"]
        elif event.action == "status" and event.to_status in words:
            if event.to_status == OrderStatus.BOOKED and steps:
                continue
            said = words[event.to_status]
        else:
            continue
        if steps and steps[-1].words == said:
            continue
        steps.append(Step(f"{event.at.astimezone(tz):%Y-%m-%d %H:%M}", said))
    if steps:
        steps[-1] = Step(steps[-1].at, steps[-1].words, current=True)
    return steps


async def find(db: Database, token: str) -> tuple[UUID, UUID] | None:
    """(tenant, order) of a tracking token, or None."""
    if not TOKEN_SHAPE.fullmatch(token):
        return None
    async with db.session() as session:
        link = await NotificationRepository(session).tracking_link(token)
    return (link.tenant_id, link.order_id) if link is not None else None


async def tracking(db: Database, token: str, language: str | None = None) -> Tracking | None:
    """What the page shows for a token, in `language` or the order's; None for no order."""
    found = await find(db, token)
    if found is None:
        return None
    tenant_id, order_id = found
    with tenant_scope(tenant_id):
        async with db.session() as session:
            order = await service.get_order(session, order_id)
            events = list(await service.timeline(session, order_id))
            pickup = PickupRepository(session)
            depot = await pickup.get_depot(order.depot_id) if order.depot_id else None
            tenant = await TenantRepository(session).get_tenant(tenant_id)
    lang = language_of(language or order.language)
    return Tracking(
        company=tenant.name if tenant else "",
        number=order.number,
        status=str(order.status),
        status_words=STATUS_WORDS[lang].get(order.status, str(order.status)),
        window=window_text(order, lang),
        timezone=order.timezone,
        depot=depot.name if depot else None,
        driver=order.driver_name,
        steps=_steps(order, events, lang),
        language=lang,
    )


def _client(request: Request[Any, Any, Any]) -> str:
    return request.client.host if request.client else "unknown"


async def _turned_away(redis: Redis, client: str) -> bool:
    try:
        misses = await redis.get(f"depotline:track-misses:{client}")
    except RedisError:
        return False  # the page works without Redis; only the brake is off
    return int(misses or 0) >= MISSES_ALLOWED


async def _missed(redis: Redis, client: str) -> None:
    key = f"depotline:track-misses:{client}"
    try:
        if await redis.incr(key) == 1:  # the window starts with the first miss
            await redis.expire(key, MISS_WINDOW_SECONDS)
    except RedisError:
        log.warning("tracking page: misses not counted, Redis is down")


class TrackingPages(Controller):
    path = "/track"
    include_in_schema = False

    @get("/{token:str}")
    async def track(
        self,
        request: Request[Any, Any, Any],
        db: NamedDependency[Database],
        redis: NamedDependency[Redis],
        token: str,
        lang: FromQuery[str | None] = None,
    ) -> Template:
        chosen = i18n.normalise(lang)
        client = _client(request)
        if await _turned_away(redis, client):
            return _missing(429, chosen, {"Retry-After": str(MISS_WINDOW_SECONDS)})
        found = await tracking(db, token, chosen)
        if found is None:
            await _missed(redis, client)
            return _missing(404, chosen)
        # The page speaks the order's language unless the reader chose another.
        i18n.current_locale.set(found.language)
        return Template(
            template_name="pickup/track.html",
            context={"track": found, "token": token},
            headers=PRIVATE_HEADERS,
        )


def _missing(status: int, language: str | None, headers: dict[str, str] | None = None) -> Template:
    if language:
        i18n.current_locale.set(language)
    return Template(
        template_name="pickup/track_missing.html",
        context={"status": status},
        status_code=status,
        headers={**PRIVATE_HEADERS, **(headers or {})},
    )
