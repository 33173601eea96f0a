"""arq on Redis: worker settings, JSON job serialisation (never pickle) and the outbox jobs.

Which jobs and outbox handlers exist is decided in `depotline.app`, the one place that wires
the domains together.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any
from uuid import UUID

from arq import cron
from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.worker import Worker

from depotline import outbox
from depotline.config import Settings
from depotline.db import Database

QUEUE = "depotline:jobs"


def serialize(value: dict[str, Any]) -> bytes:
    return json.dumps(value, default=str, separators=(",", ":")).encode()


def deserialize(data: bytes) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(data)
    return loaded


def redis_settings(url: str) -> RedisSettings:
    return RedisSettings.from_dsn(url)


async def create_job_pool(url: str) -> ArqRedis:
    """The connection the app (and tests) enqueue jobs with."""
    return await create_pool(
        redis_settings(url),
        job_serializer=serialize,
        job_deserializer=deserialize,
        default_queue_name=QUEUE,
    )


#: Events handed over per batch, and batches per relay run: a busy second (a burst of bookings
#: brings four or five events each) is drained in one run instead of 200 a second.
RELAY_BATCH = 200
RELAY_BATCHES = 10


async def relay_outbox(ctx: dict[str, Any]) -> int:
    redis: ArqRedis = ctx["redis"]
    handed = 0
    for _ in range(RELAY_BATCHES):
        batch = await outbox.relay(ctx["db"], redis.enqueue_job, limit=RELAY_BATCH)
        handed += batch
        if batch < RELAY_BATCH:
            break
    return handed


async def handle_outbox_event(ctx: dict[str, Any], event_id: str) -> bool:
    return await outbox.handle_event(ctx["db"], ctx["handlers"], UUID(event_id), ctx)


def build_worker(
    settings: Settings,
    *,
    functions: Sequence[Callable[..., Any]] = (),
    handlers: Mapping[str, Sequence[outbox.Handler]] | None = None,
    burst: bool = False,
    on_startup: Callable[[dict[str, Any]], Awaitable[None]] | None = None,
) -> Worker:
    async def startup(ctx: dict[str, Any]) -> None:
        ctx["db"] = Database(settings.app_url, pool_size=settings.db_pool_size)
        ctx["handlers"] = handlers or {}
        ctx["settings"] = settings
        if on_startup is not None:
            await on_startup(ctx)  # the domains' own context (e.g. carrier providers)

    async def shutdown(ctx: dict[str, Any]) -> None:
        await ctx["db"].dispose()

    return Worker(
        functions=[handle_outbox_event, *functions],
        # arq schedules cron runs as future jobs, so a burst worker (which stops when the queue is
        # empty) would never stop: burst runs only what is queued.
        cron_jobs=[] if burst else [cron(relay_outbox, second=set(range(60)), run_at_startup=True)],
        queue_name=QUEUE,
        redis_settings=redis_settings(settings.required_redis_url),
        on_startup=startup,
        on_shutdown=shutdown,
        burst=burst,
        job_serializer=serialize,
        job_deserializer=deserialize,
        handle_signals=not burst,
        poll_delay=0.2,
        max_tries=5,
    )
