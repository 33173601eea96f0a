"""arq on Redis: worker settings, JSON job serialisation (never pickle) and the outbox jobs.

Which jobs and outbox handlers exist is decided in `depotline.app`, the one place that wires
the domains together.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any
from uuid import UUID

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
        if not burst:
            # Handlers share the pool with arq's jobs: leave them a few connections.
            consumer = outbox.Consumer(
                ctx["db"], ctx["handlers"], ctx, concurrency=max(1, settings.db_pool_size - 2)
            )
            consumer.start()
            ctx["outbox_consumer"] = consumer

    async def shutdown(ctx: dict[str, Any]) -> None:
        if "outbox_consumer" in ctx:
            await ctx["outbox_consumer"].stop()
        await ctx["db"].dispose()

    return Worker(
        functions=[handle_outbox_event, *functions],
        # Outbox events reach a running worker through its consumer (started above); a burst
        # worker runs only the arq jobs already queued (`outbox.relay` queues events as jobs).
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
