"""The transactional outbox delivers each committed event to its handlers exactly once, through
relay retries, a crash between enqueue and mark, and a handler failure; uncommitted events never
leave."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from datetime import timedelta
from typing import Any

import pytest
from arq.connections import ArqRedis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession

from depotline import outbox
from depotline.config import APP_ROLE, Settings
from depotline.db import Database, utcnow
from depotline.jobs import build_worker, create_job_pool

TOPIC = "probe.happened"
failures_left = 0


async def record_effect(
    session: AsyncSession, event: outbox.OutboxEvent, context: Mapping[str, Any]
) -> None:
    global failures_left
    if failures_left > 0:
        failures_left -= 1
        raise RuntimeError("carrier unreachable")
    await session.execute(
        text("insert into outbox_probe (event_id, body) values (:e, :b)"),
        {"e": event.id, "b": event.payload["body"]},
    )


@pytest.fixture
async def probe(owner_engine: AsyncEngine, db: Database) -> AsyncIterator[None]:
    async with owner_engine.begin() as conn:
        await conn.execute(text("create table outbox_probe (event_id uuid, body text)"))
        await conn.execute(text(f"grant select, insert on outbox_probe to {APP_ROLE}"))
    yield
    async with owner_engine.begin() as conn:
        await conn.execute(text("drop table outbox_probe"))


@pytest.fixture
async def jobs(settings: Settings, clean_redis: None) -> AsyncIterator[ArqRedis]:
    pool = await create_job_pool(settings.required_redis_url)
    yield pool
    await pool.aclose()


async def run_worker(settings: Settings) -> None:
    worker = build_worker(settings, handlers={TOPIC: [record_effect]}, burst=True)
    try:
        await worker.main()
    finally:
        await worker.close()


async def effects(db: Database) -> list[str]:
    async with db.session() as session:
        return list((await session.execute(text("select body from outbox_probe"))).scalars())


async def publish(db: Database, body: str) -> outbox.OutboxEvent:
    async with db.session() as session:
        return outbox.publish(session, TOPIC, {"body": body})


async def test_committed_event_is_handled_once_even_if_relayed_twice(
    probe: None, db: Database, jobs: ArqRedis, settings: Settings
) -> None:
    await publish(db, "hello")
    assert await outbox.relay(db, jobs.enqueue_job) == 1
    assert await outbox.relay(db, jobs.enqueue_job) == 0  # already handed over
    await run_worker(settings)
    await run_worker(settings)
    assert await effects(db) == ["hello"]


async def test_rolled_back_event_never_leaves(
    probe: None, db: Database, jobs: ArqRedis, settings: Settings
) -> None:
    with pytest.raises(RuntimeError):
        async with db.session() as session:
            outbox.publish(session, TOPIC, {"body": "ghost"})
            raise RuntimeError("business rule failed after publishing")
    assert await outbox.relay(db, jobs.enqueue_job) == 0
    await run_worker(settings)
    assert await effects(db) == []


async def test_crash_between_enqueue_and_mark_still_delivers_once(
    probe: None, db: Database, jobs: ArqRedis, settings: Settings
) -> None:
    await publish(db, "once")

    async def enqueue_then_crash(function: str, *args: Any, _job_id: str) -> Any:
        await jobs.enqueue_job(function, *args, _job_id=_job_id)
        raise ConnectionError("relay died before marking the event")

    with pytest.raises(ConnectionError):
        await outbox.relay(db, enqueue_then_crash)
    # The mark was rolled back, so the next relay hands the event over again.
    assert await outbox.relay(db, jobs.enqueue_job) == 1
    await run_worker(settings)
    assert await effects(db) == ["once"]

    # A late duplicate delivery (say, after arq forgot the job) finds the event done.
    event_ids = await _event_ids(db)
    assert await outbox.handle_event(db, {TOPIC: [record_effect]}, event_ids[0]) is False
    assert await effects(db) == ["once"]


async def test_failed_handler_is_retried_and_then_succeeds_once(
    probe: None, db: Database, jobs: ArqRedis, settings: Settings
) -> None:
    global failures_left
    failures_left = 1
    await publish(db, "eventually")
    await outbox.relay(db, jobs.enqueue_job)
    await run_worker(settings)
    async with db.session() as session:
        row = (
            await session.execute(
                text("select processed_at, last_error, attempts from outbox_events")
            )
        ).one()
    assert row.processed_at is None
    assert "carrier unreachable" in row.last_error
    assert await effects(db) == []

    # Past the redelivery delay the relay hands it over again, under a fresh job id.
    async with db.session() as session:
        await session.execute(
            text("update outbox_events set enqueued_at = :t"),
            {"t": utcnow() - outbox.REDELIVER_AFTER - timedelta(seconds=1)},
        )
    assert await outbox.relay(db, jobs.enqueue_job) == 1
    await run_worker(settings)
    assert await effects(db) == ["eventually"]
    async with db.session() as session:
        done = (
            await session.execute(text("select processed_at, attempts from outbox_events"))
        ).one()
    assert done.processed_at is not None and done.attempts == 2


async def _event_ids(db: Database) -> list[Any]:
    async with db.session() as session:
        return list((await session.execute(text("select id from outbox_events"))).scalars())


# -- the running worker's consumer ----------------------------------------------------------------
async def until(check: Any, seconds: float) -> bool:
    """Poll `check()` (async) until it is true or `seconds` pass."""
    deadline = asyncio.get_running_loop().time() + seconds
    while asyncio.get_running_loop().time() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.02)
    return bool(await check())


async def test_consumer_handles_a_committed_event_on_its_notification(
    probe: None, db: Database
) -> None:
    # Polling once a minute: only the commit's NOTIFY can wake it in time.
    consumer = outbox.Consumer(db, {TOPIC: [record_effect]}, {}, poll_seconds=60)
    consumer.start()
    try:
        await asyncio.sleep(0.3)  # listening
        began = time.perf_counter()
        await publish(db, "at once")

        async def handled() -> bool:
            return await effects(db) == ["at once"]

        assert await until(handled, 5)
        assert time.perf_counter() - began < 5
        with pytest.raises(RuntimeError):
            async with db.session() as session:
                outbox.publish(session, TOPIC, {"body": "ghost"})
                raise RuntimeError("rolled back")
        await asyncio.sleep(0.5)
        assert await effects(db) == ["at once"]
    finally:
        await consumer.stop()


async def test_two_consumers_handle_each_event_exactly_once(probe: None, db: Database) -> None:
    consumers = [
        outbox.Consumer(db, {TOPIC: [record_effect]}, {}, concurrency=4, poll_seconds=0.2)
        for _ in range(2)
    ]
    for consumer in consumers:
        consumer.start()
    try:
        for n in range(40):
            await publish(db, f"event {n}")

        async def all_handled() -> bool:
            return len(await effects(db)) >= 40

        assert await until(all_handled, 20)
        await asyncio.sleep(0.5)  # a double delivery would land by now
        assert sorted(await effects(db)) == sorted(f"event {n}" for n in range(40))
        assert sum(c.handled for c in consumers) == 40
    finally:
        for consumer in consumers:
            await consumer.stop()


async def test_consumer_retries_a_failed_event_and_waits_for_a_delayed_one(
    probe: None, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    global failures_left
    failures_left = 1
    monkeypatch.setattr(outbox, "REDELIVER_AFTER", timedelta(milliseconds=200))
    consumer = outbox.Consumer(db, {TOPIC: [record_effect]}, {}, poll_seconds=0.1)
    consumer.start()
    try:
        await publish(db, "eventually")
        async with db.session() as session:
            outbox.publish(session, TOPIC, {"body": "later"}, delay=timedelta(seconds=1.5))

        async def retried() -> bool:
            return await effects(db) == ["eventually"]

        assert await until(retried, 10)
        async with db.session() as session:
            row = (
                await session.execute(
                    text(
                        "select attempts, last_error from outbox_events "
                        "where payload->>'body' = 'eventually'"
                    )
                )
            ).one()
        assert row.attempts == 2 and row.last_error is None
        assert await effects(db) == ["eventually"]  # the delayed one is not due yet

        async def delayed() -> bool:
            return await effects(db) == ["eventually", "later"]

        assert await until(delayed, 10)
    finally:
        await consumer.stop()


async def test_a_backlog_is_claimed_most_urgent_first_then_oldest(db: Database) -> None:
    """After a burst, a booking's dispatch goes before the SMS it queued, and both before
    bookkeeping, whatever order they were published in."""
    published: dict[str, outbox.OutboxEvent] = {}
    for body, priority in (
        ("timeline 1", outbox.NORMAL),
        ("sms 1", outbox.SOON),
        ("dispatch 1", outbox.URGENT),
        ("timeline 2", outbox.NORMAL),
        ("sms 2", outbox.SOON),
        ("dispatch 2", outbox.URGENT),
    ):
        async with db.session() as session:
            published[body] = outbox.publish(session, TOPIC, {"body": body}, priority=priority)
    by_id = {event.id: body for body, event in published.items()}

    first = [by_id[event.id] for event in await outbox.claim(db, 4)]
    assert first == ["dispatch 1", "dispatch 2", "sms 1", "sms 2"]
    rest = [by_id[event.id] for event in await outbox.claim(db, 4)]
    assert rest == ["timeline 1", "timeline 2"]  # claimed ones are not handed out again


async def test_an_urgent_event_is_handled_while_every_other_handler_waits(
    probe: None, db: Database
) -> None:
    """SMS paced by a slow carrier hold three of the four handlers and fill the line; a
    caller's event published after them, and one delayed until later, are handled as soon as
    they are due, by the handler kept for urgent events, without waiting for any of them."""
    carrier = asyncio.Event()

    async def slow_send(
        session: AsyncSession, event: outbox.OutboxEvent, context: Mapping[str, Any]
    ) -> None:
        await carrier.wait()
        await record_effect(session, event, context)

    handlers = {"probe.sms": [slow_send], TOPIC: [record_effect]}
    # Polling twice a second: only for the timeout below, which no commit announces when due.
    consumer = outbox.Consumer(db, handlers, {}, concurrency=4, poll_seconds=0.5)
    consumer.start()
    try:
        await asyncio.sleep(0.3)  # listening
        for n in range(12):
            async with db.session() as session:
                outbox.publish(session, "probe.sms", {"body": f"sms {n}"}, priority=outbox.SOON)
        await asyncio.sleep(0.5)  # three handlers wait on the carrier, the rest in line
        async with db.session() as session:
            outbox.publish(session, TOPIC, {"body": "caller"}, priority=outbox.URGENT)

        async def caller_handled() -> bool:
            return await effects(db) == ["caller"]

        assert await until(caller_handled, 3)
        # An urgent event that comes due later (an offer's timeout) jumps the line too.
        async with db.session() as session:
            outbox.publish(
                session,
                TOPIC,
                {"body": "timeout"},
                priority=outbox.URGENT,
                delay=timedelta(seconds=1),
            )

        async def timeout_handled() -> bool:
            return await effects(db) == ["caller", "timeout"]

        assert await until(timeout_handled, 4)
        carrier.set()

        async def all_handled() -> bool:
            return len(await effects(db)) == 14

        assert await until(all_handled, 10)
    finally:
        carrier.set()
        await consumer.stop()


async def test_while_urgent_events_flow_bulk_work_keeps_to_a_quarter_of_the_handlers(
    probe: None, db: Database
) -> None:
    """Handlers share one event loop: during a burst of callers' events, bookkeeping runs two at
    a time beside them; once no urgent event has come for a while, it takes every handler
    but the two kept for urgent events."""
    running, most = 0, 0
    gate = asyncio.Event()

    async def bulk(
        session: AsyncSession, event: outbox.OutboxEvent, context: Mapping[str, Any]
    ) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        try:
            await gate.wait()
        finally:
            running -= 1

    async def burst_of_bulk_work(*, with_a_caller: bool) -> None:
        async with db.session() as session:  # one commit: claimed together, the caller first
            if with_a_caller:
                outbox.publish(session, TOPIC, {"body": "caller"}, priority=outbox.URGENT)
            for n in range(8):
                outbox.publish(session, "probe.sms", {"body": f"sms {n}"}, priority=outbox.SOON)
        await asyncio.sleep(0.5)

    handlers = {"probe.sms": [bulk], TOPIC: [record_effect]}
    consumer = outbox.Consumer(db, handlers, {}, concurrency=8, poll_seconds=0.2)
    consumer.start()
    try:
        await asyncio.sleep(0.3)  # listening
        await burst_of_bulk_work(with_a_caller=True)
        assert await effects(db) == ["caller"]
        assert most == 2
        gate.set()
        await asyncio.sleep(0.5)
        assert running == 0

        gate.clear()
        most = 0
        await asyncio.sleep(outbox.URGENT_RECENT_SECONDS)  # no urgent event since
        await burst_of_bulk_work(with_a_caller=False)
        assert most == 6
    finally:
        gate.set()
        await consumer.stop()
