"""Real-time channels on the real Redis: publish and replay, once-only pushes, pushes that wait
for the commit, and the SSE stream a browser reads (replay after Last-Event-ID, keep-alive)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from litestar.response import ServerSentEventMessage
from redis.asyncio import Redis
from sqlalchemy import text

from depotline import realtime
from depotline.config import Settings
from depotline.db import Database


@pytest.fixture
async def redis(redis_url: str, clean_redis: None) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


def decoded(message: ServerSentEventMessage) -> str:
    return message.encode().decode()


async def test_a_reader_gets_what_was_published_after_its_cursor_in_order(redis: Redis) -> None:
    first = await realtime.publish(redis, "agent:a", "status", {"status": "ready"})
    start = await realtime.latest_ids(redis, ["agent:a", "floor:t"])
    assert start == {"agent:a": first, "floor:t": "0-0"}
    await realtime.publish(redis, "floor:t", "agent", {"status": "ready", "n": 1})
    await realtime.publish(redis, "agent:a", "offer", {"call_id": "c1"})

    events = await realtime.read(redis, start)
    # Across channels, events come in the millisecond they were added (within one, either way).
    assert sorted((e.channel, e.event, json.dumps(e.data)) for e in events) == [
        ("agent:a", "offer", json.dumps({"call_id": "c1"})),
        ("floor:t", "agent", json.dumps({"status": "ready", "n": 1})),
    ]
    # Nothing new after the last one: a non-blocking read is empty.
    assert await realtime.read(redis, {e.channel: e.id for e in events}) == []


async def test_a_once_key_publishes_one_event_however_often_it_is_sent(redis: Redis) -> None:
    ids = [
        await realtime.publish(redis, "agent:a", "offer", {"call_id": "c1"}, once="offer:1")
        for _ in range(3)
    ]
    assert len(set(ids)) == 1
    assert len(await realtime.read(redis, {"agent:a": "0-0"})) == 1


async def test_channels_are_capped(redis: Redis) -> None:
    for n in range(realtime.MAXLEN * 3):
        await realtime.publish(redis, "floor:busy", "call", {"n": n})
    kept = await redis.xlen(realtime.KEY_PREFIX + "floor:busy")
    assert realtime.MAXLEN <= kept < realtime.MAXLEN * 2


def test_last_event_id_is_read_leniently() -> None:
    channels = ["agent:a", "floor:t"]
    assert realtime.parse_event_id(None, channels) is None
    assert realtime.parse_event_id("garbage", channels) is None
    assert realtime.parse_event_id("other:x=1-0", channels) is None
    assert realtime.parse_event_id("agent:a=5-1,floor:t=not-an-id", channels) == {
        "agent:a": "5-1",
        "floor:t": "$",
    }
    cursors = {"agent:a": "5-1", "floor:t": "7-0"}
    assert realtime.parse_event_id(realtime.format_event_id(cursors), channels) == cursors


async def test_the_stream_replays_what_a_reconnecting_browser_missed(redis: Redis) -> None:
    channel = "agent:reconnect"
    stream = realtime.stream(redis, [channel], block_ms=100)
    ready = await anext(stream)
    assert ready.event == "ready" and json.loads(str(ready.data)) == {"resumed": False}
    await realtime.publish(redis, channel, "status", {"status": "ready"})
    seen = await anext(stream)
    assert seen.event == "status" and json.loads(str(seen.data))["status"] == "ready"
    await stream.aclose()  # the browser goes away ...

    await realtime.publish(redis, channel, "offer", {"call_id": "c9"})  # ... and misses this
    again = realtime.stream(redis, [channel], str(seen.id), block_ms=100)
    resumed = await anext(again)
    assert json.loads(str(resumed.data)) == {"resumed": True}
    replayed = await anext(again)
    assert replayed.event == "offer" and json.loads(str(replayed.data))["call_id"] == "c9"
    assert "id: " in decoded(replayed) and "event: offer" in decoded(replayed)
    await again.aclose()


async def test_an_idle_stream_sends_keep_alive_comments(redis: Redis) -> None:
    stream = realtime.stream(redis, ["agent:idle"], keep_alive=0.2, block_ms=100)
    await anext(stream)
    comment = await asyncio.wait_for(anext(stream), timeout=3)
    assert decoded(comment).startswith(": keep-alive")
    await stream.aclose()


async def test_pushes_queued_in_a_transaction_go_out_only_if_it_commits(
    settings: Settings, redis: Redis
) -> None:
    db = Database(settings.app_url, pool_size=1)
    realtime.announce_commits(db, redis)
    try:
        async with db.session() as session:
            realtime.after_commit(session, "agent:tx", "status", {"status": "ready"})
            await session.execute(text("select 1"))
        with pytest.raises(RuntimeError):
            async with db.session() as session:
                realtime.after_commit(session, "agent:tx", "status", {"status": "lost"})
                await session.execute(text("select 1"))
                raise RuntimeError("rolled back")
        await realtime.flush_pending()
    finally:
        await db.dispose()
    events = await realtime.read(redis, {"agent:tx": "0-0"})
    assert [e.data["status"] for e in events] == ["ready"]
