"""Real-time push: channels kept in Redis, read by browsers as Server-Sent Events.

A channel is a capped Redis Stream (`depotline:rt:<channel>`). Publishing appends an event and
returns its id. A reader (an agent's desktop, the supervisor console) asks for everything after
the last id it saw, so a browser that reconnects, to this replica or another, gets what it missed
in order. Redis is shared by every app and worker replica: an event published by the worker or
by replica 2 reaches a desktop whose stream is open on replica 1.

Channels:

- `agent_channel(user_id)`, "agent:<user id>": one agent's own events (offer, offer_withdrawn,
  call_state, status), whichever tenant they come from.
- `floor_channel(tenant_id)`, "floor:<tenant id>": a tenant's floor, for the supervisor console
  (agent state changes; calls queued, offered, answered, abandoned, ended).

Two ways to publish:

- `publish(redis, channel, event, data)`: now. Outbox handlers (ctx["redis"]) and request
  handlers after their commit.
- `after_commit(session, channel, event, data)`: once the session's transaction commits, and
  never if it rolls back. The process that committed sends it, through the Redis that
  `announce_commits` gave its `Database` (the app and the worker each do that at start-up);
  a Database nobody announced for (a script, a test) sends nothing.

`publish(..., once=key)` makes a push idempotent: a second publish with the same key (an outbox
handler run twice, or the after-commit push and the outbox handler both sending one offer)
returns the first event's id and appends nothing.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncGenerator, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import structlog
from litestar.response import ServerSentEvent, ServerSentEventMessage
from redis.asyncio import Redis
from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session
from sqlmodel.ext.asyncio.session import AsyncSession

from depotline.db import Database

log = structlog.get_logger(__name__)

KEY_PREFIX = "depotline:rt:"
ONCE_PREFIX = "depotline:rt-once:"
#: Events kept per channel: enough for a desktop that lost its connection for a while; one that
#: was away longer reloads its state from the server anyway.
MAXLEN = 500
ONCE_TTL_SECONDS = 24 * 3600
#: A comment line this often keeps proxies and load balancers from closing an idle stream.
KEEP_ALIVE_SECONDS = 15.0
#: Each blocking read is shorter than the app's Redis socket timeout (2 s).
READ_BLOCK_MS = 1000
#: How soon a browser reconnects after losing the stream (EventSource's `retry`).
RETRY_MS = 1000
STREAM_ID = re.compile(r"^\d{1,20}-\d{1,20}$")

# KEYS[1]: the channel's stream; KEYS[2]: the once-key. Appends only if the key is new.
_PUBLISH_ONCE = """
local sent = redis.call('GET', KEYS[2])
if sent then return sent end
local id = redis.call(
  'XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'event', ARGV[2], 'data', ARGV[3])
redis.call('SET', KEYS[2], id, 'EX', ARGV[4])
return id
"""


def agent_channel(user_id: UUID) -> str:
    return f"agent:{user_id}"


def floor_channel(tenant_id: UUID) -> str:
    return f"floor:{tenant_id}"


def _key(channel: str) -> str:
    return KEY_PREFIX + channel


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _json(data: Mapping[str, Any]) -> str:
    return json.dumps(dict(data), default=str, ensure_ascii=False, separators=(",", ":"))


async def publish(
    redis: Redis,
    channel: str,
    event: str,
    data: Mapping[str, Any],
    *,
    once: str | None = None,
) -> str:
    """Append an event to a channel; returns its id (the id of the first one, with `once`)."""
    if once is None:
        sent = await redis.xadd(
            _key(channel),
            {"event": event, "data": _json(data)},
            maxlen=MAXLEN,
            approximate=True,
        )
    else:
        script = redis.register_script(_PUBLISH_ONCE)
        sent = await script(
            keys=[_key(channel), ONCE_PREFIX + once],
            args=[MAXLEN, event, _json(data), ONCE_TTL_SECONDS],
        )
    return _text(sent)


@dataclass(frozen=True)
class Event:
    channel: str
    id: str
    event: str
    data: dict[str, Any]


async def latest_ids(redis: Redis, channels: Iterable[str]) -> dict[str, str]:
    """Each channel's newest event id ("0-0" for an empty channel): where "from now on" starts."""
    cursors: dict[str, str] = {}
    for channel in channels:
        newest = await redis.xrevrange(_key(channel), count=1)
        cursors[channel] = _text(newest[0][0]) if newest else "0-0"
    return cursors


async def read(
    redis: Redis, cursors: Mapping[str, str], *, block_ms: int | None = None, count: int = 100
) -> list[Event]:
    """Events after each channel's cursor, oldest first; waits up to `block_ms` for one."""
    channel_of = {_key(channel): channel for channel in cursors}
    answer = await redis.xread(
        {_key(channel): cursor for channel, cursor in cursors.items()},
        count=count,
        block=block_ms,
    )
    events: list[Event] = []
    for stream_key, entries in answer or []:
        channel = channel_of[_text(stream_key)]
        for entry_id, fields in entries:
            values = {_text(k): _text(v) for k, v in fields.items()}
            events.append(
                Event(channel, _text(entry_id), values["event"], json.loads(values["data"]))
            )
    # Stream ids start with the millisecond they were added: across channels, that is the order.
    events.sort(key=lambda e: tuple(int(part) for part in e.id.split("-")))
    return events


def format_event_id(cursors: Mapping[str, str]) -> str:
    """The SSE id of a multi-channel stream: every channel's position, e.g.
    "agent:<uuid>=1764080000000-0,floor:<uuid>=1764080000123-4"."""
    return ",".join(f"{channel}={cursor}" for channel, cursor in cursors.items())


def parse_event_id(value: str | None, channels: Iterable[str]) -> dict[str, str] | None:
    """The positions in a Last-Event-ID, for the channels asked for. None when there is none
    (or it is not ours): the stream then starts from now. A channel missing from it starts
    from now too; anything malformed is ignored, never an error."""
    if not value:
        return None
    given: dict[str, str] = {}
    for part in value.split(","):
        channel, _, cursor = part.strip().rpartition("=")
        if channel and STREAM_ID.match(cursor):
            given[channel] = cursor
    wanted = list(channels)
    if not any(channel in given for channel in wanted):
        return None
    return {channel: given.get(channel, "$") for channel in wanted}


async def stream(
    redis: Redis,
    channels: Iterable[str],
    last_event_id: str | None = None,
    *,
    keep_alive: float = KEEP_ALIVE_SECONDS,
    block_ms: int = READ_BLOCK_MS,
) -> AsyncGenerator[ServerSentEventMessage, None]:
    """Replay what was missed since `last_event_id`, then follow the channels until the client
    goes away. The first message, "ready", carries the position, so a stream that drops before
    any event still resumes from where it began."""
    wanted = list(dict.fromkeys(channels))
    resumed = parse_event_id(last_event_id, wanted)
    cursors = await latest_ids(redis, wanted)
    if resumed is not None:
        cursors.update({ch: cursor for ch, cursor in resumed.items() if cursor != "$"})
    yield ServerSentEventMessage(
        event="ready",
        id=format_event_id(cursors),
        data=_json({"resumed": resumed is not None}),
        retry=RETRY_MS,
    )
    quiet_since = time.monotonic()
    while True:
        events = await read(redis, cursors, block_ms=block_ms)
        for found in events:
            cursors[found.channel] = found.id
            yield ServerSentEventMessage(
                event=found.event,
                id=format_event_id(cursors),
                data=_json({"channel": found.channel, **found.data}),
            )
        now = time.monotonic()
        if events:
            quiet_since = now
        elif now - quiet_since >= keep_alive:
            quiet_since = now
            yield ServerSentEventMessage(comment="keep-alive", data=None)


def sse(redis: Redis, channels: Iterable[str], last_event_id: str | None = None) -> ServerSentEvent:
    """The streaming response for a route handler: `return realtime.sse(redis, [channel],
    realtime.last_event_id(request))`."""
    return ServerSentEvent(
        stream(redis, channels, last_event_id), headers={"Cache-Control": "no-store"}
    )


def last_event_id(request: Any) -> str | None:
    """The browser's Last-Event-ID header, or `?last_event_id=` (a page that had to make a new
    EventSource passes its last id that way: EventSource cannot set headers)."""
    header: str | None = request.headers.get("last-event-id")
    return header or request.query_params.get("last_event_id") or None


# -- after commit -------------------------------------------------------------------------------
_REDIS = "depotline.realtime.redis"
_PENDING = "depotline.realtime.pending"
_in_flight: set[asyncio.Task[None]] = set()


@dataclass(frozen=True)
class _Push:
    channel: str
    event: str
    data: dict[str, Any]
    once: str | None


def announce_commits(db: Database, redis: Redis) -> None:
    """Pushes queued with `after_commit` on this database's sessions go out through `redis`."""
    db.sessions.configure(info={_REDIS: redis})


def after_commit(
    session: AsyncSession | Session,
    channel: str,
    event: str,
    data: Mapping[str, Any],
    *,
    once: str | None = None,
) -> None:
    """Queue a push for when (and only if) the session's transaction commits."""
    session.info.setdefault(_PENDING, []).append(_Push(channel, event, dict(data), once))


@sa_event.listens_for(Session, "after_commit")
def _send_pending(session: Session) -> None:
    pending: list[_Push] | None = session.info.pop(_PENDING, None)
    redis: Redis | None = session.info.get(_REDIS)
    if not pending or redis is None:
        return
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return  # a synchronous session: nothing here can send
    # Not awaited by the committer: the request (or job) goes on while the events go out, in
    # the order they were queued.
    task = loop.create_task(_send(redis, pending))
    _in_flight.add(task)
    task.add_done_callback(_in_flight.discard)


@sa_event.listens_for(Session, "after_rollback")
def _drop_pending(session: Session) -> None:
    session.info.pop(_PENDING, None)


async def _send(redis: Redis, pending: list[_Push]) -> None:
    for push in pending:
        try:
            await publish(redis, push.channel, push.event, push.data, once=push.once)
        except Exception:  # a lost push is healed by the next state fetch, never worth a crash
            log.exception("realtime push failed", channel=push.channel, event_name=push.event)


async def flush_pending() -> None:
    """Wait for after-commit pushes still on their way (tests, and a clean shutdown)."""
    loop = asyncio.get_running_loop()
    while mine := [task for task in list(_in_flight) if task.get_loop() is loop]:
        await asyncio.gather(*mine, return_exceptions=True)
