"""The transactional outbox: side effects leave Depotline only through here.

A domain calls `publish()` inside the transaction that makes the business change, so the event
exists exactly when the change does. A running worker's `Consumer` hears each commit that
published events (a trigger NOTIFYs `outbox_events`, migration 0010), claims them and runs the
subscribed handlers in the worker's own process: no queue hop, so a chain of events (booking ->
dispatch -> depot SMS) takes milliseconds, not a relay tick per link. `relay()` is the other way
out, kept for burst workers (tests, one-off runs): it hands pending events to arq jobs.
`handle_event` runs the subscribed handlers and marks the event processed in one transaction,
under the event's tenant scope. Delivery is at least once: an event may be handed over twice (a
crash between claim and commit, a lost worker: claimed events come back after REDELIVER_AFTER),
and the row lock plus the `processed_at` mark make the second delivery a no-op.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import suppress
from datetime import datetime, timedelta
from typing import Any, NamedTuple, Protocol
from uuid import UUID, uuid4

import structlog
from sqlalchemy import Column, DateTime, or_, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from depotline.db import Database, current_tenant, tenant_scope, utcnow

log = structlog.get_logger(__name__)

MAX_ATTEMPTS = 10
REDELIVER_AFTER = timedelta(seconds=60)
#: The channel migration 0010's trigger notifies on every commit that inserted events.
CHANNEL = "outbox_events"
#: Claim order in a backlog. URGENT: someone waits on the effect (a caller on the line, a
#: booking's dispatch and the depot's SMS, a depot's reply). SOON: messages leaving through a
#: carrier, already queued in the gateway (their carrier paces them anyway). NORMAL: bookkeeping
#: (timelines, delivery reports, contact history).
URGENT, SOON, NORMAL = 0, 1, 2
#: URGENT events taken this recently make the consumer hold back on the rest (`_Line`).
URGENT_RECENT_SECONDS = 1.0


class OutboxEvent(SQLModel, table=True):
    __tablename__ = "outbox_events"

    id: UUID = Field(default_factory=uuid4, primary_key=True)
    tenant_id: UUID | None = None
    topic: str
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))
    #: Not handed over before this moment: how a retry with backoff waits.
    available_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))
    attempts: int = 0
    #: URGENT, SOON or NORMAL: the most urgent are claimed first when a burst leaves a backlog.
    priority: int = NORMAL
    enqueued_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    processed_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    last_error: str | None = None


#: A handler gets the transaction (under the event's tenant scope), the event and the worker's
#: context (redis, settings, carrier providers ...).
Handler = Callable[[AsyncSession, OutboxEvent, Mapping[str, Any]], Awaitable[None]]


class Claimed(NamedTuple):
    """A claimed event, as the consumer's line orders it: most urgent, then oldest."""

    priority: int
    created_at: datetime
    id: UUID
    tenant_id: UUID | None


class Enqueue(Protocol):
    async def __call__(self, function: str, *args: Any, _job_id: str) -> Any: ...


class OutboxRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def _pending(self, now: datetime) -> SelectOfScalar[OutboxEvent]:
        """Pending events not handed over recently, most urgent and oldest first."""
        return (
            select(OutboxEvent)
            .where(
                col(OutboxEvent.processed_at).is_(None),
                OutboxEvent.attempts < MAX_ATTEMPTS,
                col(OutboxEvent.available_at) <= now,
                or_(
                    col(OutboxEvent.enqueued_at).is_(None),
                    col(OutboxEvent.enqueued_at) < now - REDELIVER_AFTER,
                ),
            )
            .order_by(col(OutboxEvent.priority), col(OutboxEvent.created_at))
        )

    async def claim_pending(self, limit: int, now: datetime) -> Sequence[OutboxEvent]:
        """Pending events, locked so two relays never both take one."""
        query = self._pending(now).limit(limit).with_for_update(skip_locked=True)
        return (await self.session.exec(query)).all()

    async def claim(self, limit: int, now: datetime, *, urgent_only: bool = False) -> list[Claimed]:
        """Mark up to `limit` pending events handed over, in one statement, most urgent and
        oldest first; `urgent_only`: URGENT ones alone."""
        pending = self._pending(now)
        if urgent_only:
            pending = pending.where(col(OutboxEvent.priority) <= URGENT)
        chosen = (
            pending.with_only_columns(col(OutboxEvent.id))
            .limit(limit)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        claimed = (
            update(OutboxEvent)
            .where(col(OutboxEvent.id).in_(chosen))
            .values(attempts=col(OutboxEvent.attempts) + 1, enqueued_at=now)
            .returning(
                col(OutboxEvent.priority),
                col(OutboxEvent.created_at),
                col(OutboxEvent.id),
                col(OutboxEvent.tenant_id),
            )
        )
        rows = (await self.session.execute(claimed)).all()
        return sorted(Claimed(*row) for row in rows)

    async def get(self, event_id: UUID, *, lock: bool = False) -> OutboxEvent | None:
        query = select(OutboxEvent).where(OutboxEvent.id == event_id)
        if lock:
            query = query.with_for_update()
        return (await self.session.exec(query)).first()

    async def mark_processed(self, event_id: UUID, now: datetime) -> OutboxEvent | None:
        """Lock the event and mark it processed, in one statement; None if it already was (a
        duplicate delivery). The caller's handlers run in the same transaction: if they fail,
        the mark rolls back with them."""
        marked = (
            update(OutboxEvent)
            .where(col(OutboxEvent.id) == event_id, col(OutboxEvent.processed_at).is_(None))
            .values(processed_at=now, last_error=None)
            .returning(OutboxEvent)
        )
        return (await self.session.execute(marked)).scalars().first()


def publish(
    session: AsyncSession,
    topic: str,
    payload: Mapping[str, Any],
    *,
    tenant_id: UUID | None = None,
    delay: timedelta | None = None,
    priority: int = NORMAL,
) -> OutboxEvent:
    """Record an event in the caller's transaction; it is relayed only if that commits.
    `priority`: URGENT, SOON or NORMAL (see there)."""
    event = OutboxEvent(
        topic=topic,
        priority=priority,
        payload=dict(payload),
        tenant_id=tenant_id or current_tenant.get(),
        available_at=utcnow() + (delay or timedelta()),
    )
    session.add(event)
    return event


def job_id(event: OutboxEvent) -> str:
    # The attempt number is part of the id: arq refuses a job id it still holds a result for,
    # and a redelivery after a failure must get through.
    return f"outbox:{event.id}:{event.attempts}"


async def claim(db: Database, limit: int, *, urgent_only: bool = False) -> list[Claimed]:
    """Take up to `limit` pending events for this process. Committed at once, so other
    consumers skip them; not handled by REDELIVER_AFTER, they come back."""
    async with db.session() as session:
        return await OutboxRepository(session).claim(limit, utcnow(), urgent_only=urgent_only)


async def relay(db: Database, enqueue: Enqueue, *, limit: int = 200) -> int:
    """Hand pending events to arq. Returns how many were handed over."""
    async with db.session() as session:
        events = await OutboxRepository(session).claim_pending(limit, utcnow())
        for event in events:
            event.attempts += 1
            await enqueue("handle_outbox_event", str(event.id), _job_id=job_id(event))
            event.enqueued_at = utcnow()
    return len(events)


async def handle_event(
    db: Database,
    handlers: Mapping[str, Sequence[Handler]],
    event_id: UUID,
    context: Mapping[str, Any] | None = None,
) -> bool:
    """Run the handlers subscribed to the event's topic, once. Returns False if already done."""
    async with db.session() as session:
        event = await OutboxRepository(session).get(event_id)
        if event is None or event.processed_at is not None:
            return False
        tenant_id = event.tenant_id
    return await handle_claimed(db, handlers, event_id, tenant_id, context or {})


async def handle_claimed(
    db: Database,
    handlers: Mapping[str, Sequence[Handler]],
    event_id: UUID,
    tenant_id: UUID | None,
    context: Mapping[str, Any],
) -> bool:
    """`handle_event` for an event whose tenant is known (a claim read it): one transaction."""
    try:
        if tenant_id is None:
            return await _process(db, handlers, event_id, context)
        with tenant_scope(tenant_id):
            return await _process(db, handlers, event_id, context)
    except Exception as exc:
        async with db.session() as session:
            failed = await OutboxRepository(session).get(event_id, lock=True)
            if failed is not None:
                failed.last_error = f"{type(exc).__name__}: {exc}"[:2000]
        log.exception("outbox handler failed", event_id=str(event_id))
        raise


async def _process(
    db: Database,
    handlers: Mapping[str, Sequence[Handler]],
    event_id: UUID,
    context: Mapping[str, Any],
) -> bool:
    async with db.session() as session:
        # The row lock taken by the mark serialises concurrent deliveries of the same event.
        event = await OutboxRepository(session).mark_processed(event_id, utcnow())
        if event is None:
            return False
        for handler in handlers.get(event.topic, ()):
            await handler(session, event, context)
    return True


class Consumer:
    """Handles events in this process as soon as their transaction commits.

    One task claims events (woken by the NOTIFY of each commit that published some, by a handler
    finishing, or once a second for events whose `available_at` has come) into a local line,
    most urgent first; `concurrency` tasks handle them, each event in its own transaction; a
    quarter of those take URGENT events only (a caller's event never waits behind SMS that
    their carrier paces), and while URGENT events flow at most a quarter work on the rest. A
    commit that published an URGENT event (the NOTIFY says so) has it claimed at once, even
    while the line is long. Several workers may each run one: claims skip locked rows, so no
    event is handled twice. A failed event keeps its error and is claimed again after
    REDELIVER_AFTER, up to MAX_ATTEMPTS, as with the relay.
    """

    def __init__(
        self,
        db: Database,
        handlers: Mapping[str, Sequence[Handler]],
        context: Mapping[str, Any],
        *,
        concurrency: int = 8,
        poll_seconds: float = 1.0,
    ) -> None:
        self.db = db
        self.handlers = handlers
        self.context = context
        self.concurrency = concurrency
        self.poll_seconds = poll_seconds
        self.handled = 0
        self._low_water = concurrency // 2
        self._line = _Line(bulk_share=concurrency // 4)
        self._wake = asyncio.Event()
        self._urgent_published = False
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        reserved = self.concurrency // 4
        self._tasks = [asyncio.create_task(self._claim_loop(), name="outbox-claims")]
        self._tasks += [
            asyncio.create_task(self._handle_loop(urgent_only=n < reserved), name=f"outbox-{n}")
            for n in range(self.concurrency)
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    def _notified(self, _connection: object, _pid: int, _channel: str, payload: str) -> None:
        # The payload is the most urgent priority the commit published (migration 0013).
        if payload == str(URGENT):
            self._urgent_published = True
        self._wake.set()

    async def _claim_loop(self) -> None:
        listening: _Listening | None = None
        loop = asyncio.get_running_loop()
        next_look = loop.time()  # for URGENT events come due while the line is long
        try:
            while True:
                if listening is None or listening.is_closed():
                    listening = await self._listen()
                self._wake.clear()
                # Claim only what idle handlers will take soon (the rest stays claimable by
                # other workers, and nothing claimed waits long enough to be redelivered), and
                # only once the line runs short: a claim is a transaction, worth several events.
                # URGENT events jump the line: those just published, and once a poll interval
                # those come due (a delayed one was announced before it could be claimed).
                limit, urgent_only = 0, False
                if len(self._line) <= self._low_water:
                    limit = 2 * self.concurrency - len(self._line)
                elif self._urgent_published or loop.time() >= next_look:
                    limit, urgent_only = self.concurrency, True
                self._urgent_published = False
                if limit:
                    # Any claim takes the most urgent first: it is also the look for due ones.
                    next_look = loop.time() + self.poll_seconds
                    try:
                        await self._line.add(await claim(self.db, limit, urgent_only=urgent_only))
                    except Exception:
                        log.exception("outbox claim failed")
                with suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
        finally:
            if listening is not None:
                await listening.close()

    async def _listen(self) -> _Listening | None:
        """A pooled connection set aside to LISTEN; on failure, polling still works."""
        try:
            connection = await self.db.engine.raw_connection()
        except Exception:
            log.exception("outbox listen failed; polling every second")
            return None
        listening = _Listening(connection, self._notified)
        try:
            await listening.driver.add_listener(CHANNEL, self._notified)
        except Exception:
            log.exception("outbox listen failed; polling every second")
            await listening.close()
            return None
        return listening

    async def _handle_loop(self, *, urgent_only: bool) -> None:
        while True:
            event = await self._line.take(urgent_only=urgent_only)
            # A failure is logged and kept on the event by handle_claimed; claimed again later.
            try:
                with suppress(Exception):
                    await handle_claimed(
                        self.db, self.handlers, event.id, event.tenant_id, self.context
                    )
                    self.handled += 1
            finally:
                await self._line.done(event)
            if len(self._line) <= self._low_water:
                self._wake.set()


class _Line:
    """Claimed events waiting for a handler, most urgent then oldest first. While URGENT events
    flow (one taken within URGENT_RECENT_SECONDS), at most `bulk_share` handlers work on other
    events at a time: they share one event loop, and a handler busy with bookkeeping slows the
    urgent ones beside it. Otherwise every handler may take any event."""

    def __init__(self, bulk_share: int) -> None:
        self._waiting: list[Claimed] = []
        self._changed = asyncio.Condition()
        self._bulk_share = max(1, bulk_share)
        self._bulk_running = 0
        self._urgent_taken_at = -URGENT_RECENT_SECONDS

    def __len__(self) -> int:
        return len(self._waiting)

    async def add(self, events: Sequence[Claimed]) -> None:
        async with self._changed:
            for event in events:
                heapq.heappush(self._waiting, event)
            self._changed.notify_all()

    async def take(self, *, urgent_only: bool) -> Claimed:
        loop = asyncio.get_running_loop()

        def ready() -> bool:
            if not self._waiting:
                return False
            if self._waiting[0].priority <= URGENT:
                return True
            urgent_flowing = loop.time() - self._urgent_taken_at < URGENT_RECENT_SECONDS
            return not urgent_only and (not urgent_flowing or self._bulk_running < self._bulk_share)

        async with self._changed:
            await self._changed.wait_for(ready)
            event = heapq.heappop(self._waiting)
            if event.priority <= URGENT:
                self._urgent_taken_at = loop.time()
            else:
                self._bulk_running += 1
            return event

    async def done(self, event: Claimed) -> None:
        if event.priority > URGENT:
            async with self._changed:
                self._bulk_running -= 1
                self._changed.notify_all()


class _Listening:
    """The listening connection: discarded, not returned to the pool, when done (it would keep
    hearing notifications as someone else's connection)."""

    def __init__(self, connection: Any, callback: Callable[..., None]) -> None:
        self.connection = connection
        self.driver = connection.driver_connection
        self.callback = callback

    def is_closed(self) -> bool:
        return bool(self.driver.is_closed())

    async def close(self) -> None:
        with suppress(Exception):
            await self.driver.remove_listener(CHANNEL, self.callback)
        self.connection.invalidate()
