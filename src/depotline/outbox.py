"""The transactional outbox: side effects leave Depotline only through here.

A domain calls `publish()` inside the transaction that makes the business change, so the event
exists exactly when the change does. The relay (a worker cron, every second) hands pending events
to arq; `handle_event` runs the subscribed handlers and marks the event processed in one
transaction, under the event's tenant scope. Delivery is at least once: the relay may hand an
event over twice (a crash between enqueue and commit, a lost worker), and the row lock plus the
`processed_at` mark make the second delivery a no-op.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol
from uuid import UUID, uuid4

import structlog
from sqlalchemy import Column, DateTime, or_
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from depotline.db import Database, current_tenant, tenant_scope, utcnow

log = structlog.get_logger(__name__)

MAX_ATTEMPTS = 10
REDELIVER_AFTER = timedelta(seconds=60)


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
    enqueued_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    processed_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    last_error: str | None = None


#: A handler gets the transaction (under the event's tenant scope), the event and the worker's
#: context (redis, settings, carrier providers ...).
Handler = Callable[[AsyncSession, OutboxEvent, Mapping[str, Any]], Awaitable[None]]


class Enqueue(Protocol):
    async def __call__(self, function: str, *args: Any, _job_id: str) -> Any: ...


class OutboxRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def claim_pending(self, limit: int, now: datetime) -> Sequence[OutboxEvent]:
        """Pending events not handed over recently, locked so two relays never both take one."""
        query = (
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
            .order_by(col(OutboxEvent.created_at))
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return (await self.session.exec(query)).all()

    async def get(self, event_id: UUID, *, lock: bool = False) -> OutboxEvent | None:
        query = select(OutboxEvent).where(OutboxEvent.id == event_id)
        if lock:
            query = query.with_for_update()
        return (await self.session.exec(query)).first()


def publish(
    session: AsyncSession,
    topic: str,
    payload: Mapping[str, Any],
    *,
    tenant_id: UUID | None = None,
    delay: timedelta | None = None,
) -> OutboxEvent:
    """Record an event in the caller's transaction; it is relayed only if that commits."""
    event = OutboxEvent(
        topic=topic,
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
    try:
        if tenant_id is None:
            return await _process(db, handlers, event_id, context or {})
        with tenant_scope(tenant_id):
            return await _process(db, handlers, event_id, context or {})
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
        # The row lock serialises concurrent deliveries of the same event.
        event = await OutboxRepository(session).get(event_id, lock=True)
        if event is None or event.processed_at is not None:
            return False
        for handler in handlers.get(event.topic, ()):
            await handler(session, event, context)
        event.processed_at = utcnow()
        event.last_error = None
    return True
