"""Every query of the contact center."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import ColumnElement, exists, func, or_, text
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from contact_center.models import (
    AgentSkill,
    AgentState,
    AgentStatus,
    BlocklistEntry,
    Call,
    CallOffer,
    CallStatus,
    ContactCenterSettings,
    Queue,
    Strategy,
)


class ContactCenterRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, *rows: object) -> None:
        self.session.add_all(rows)

    async def flush(self) -> None:
        await self.session.flush()

    async def lock_routing(self, tenant_id: UUID) -> None:
        """Routing for one tenant runs one decision at a time, whichever process makes it: held
        to the end of the transaction, so two replicas never hand one agent two calls and never
        both pass over the same free agent."""
        await self.session.execute(
            text("select pg_advisory_xact_lock(hashtextextended(:t, 0))"), {"t": str(tenant_id)}
        )

    # -- queues and skills -------------------------------------------------------------------
    async def queues(self) -> Sequence[Queue]:
        return (await self.session.exec(select(Queue).order_by(col(Queue.name)))).all()

    async def get_queue(self, queue_id: UUID) -> Queue | None:
        return (await self.session.exec(select(Queue).where(Queue.id == queue_id))).first()

    async def queue_by_name(self, name: str) -> Queue | None:
        return (await self.session.exec(select(Queue).where(Queue.name == name))).first()

    async def skill(self, user_id: UUID, queue_id: UUID) -> AgentSkill | None:
        query = select(AgentSkill).where(
            AgentSkill.user_id == user_id, AgentSkill.queue_id == queue_id
        )
        return (await self.session.exec(query)).first()

    # -- agents ------------------------------------------------------------------------------
    async def agent(self, user_id: UUID, *, lock: bool = False) -> AgentState | None:
        query = select(AgentState).where(AgentState.user_id == user_id)
        if lock:
            query = query.with_for_update()
        return (await self.session.exec(query)).first()

    async def agents(self) -> Sequence[AgentState]:
        return (await self.session.exec(select(AgentState).order_by(col(AgentState.since)))).all()

    async def best_free_agent(self, call: Call, queue: Queue) -> AgentState | None:
        """The ready agent the queue's strategy picks for this call, locked."""

        def has_skill(queue_id: UUID) -> ColumnElement[bool]:
            return exists().where(
                col(AgentSkill.tenant_id) == col(AgentState.tenant_id),
                col(AgentSkill.user_id) == col(AgentState.user_id),
                col(AgentSkill.queue_id) == queue_id,
            )

        eligible: list[ColumnElement[bool]] = [has_skill(queue.id)]
        if call.overflowed_at is not None:
            if queue.overflow_queue_id is not None:
                eligible.append(has_skill(queue.overflow_queue_id))
            if queue.overflow_operator_id is not None:
                eligible.append(col(AgentState.home_tenant_id) == queue.overflow_operator_id)
        level = (
            select(func.coalesce(func.max(AgentSkill.level), 0))
            .where(
                col(AgentSkill.user_id) == col(AgentState.user_id),
                col(AgentSkill.queue_id) == queue.id,
            )
            .scalar_subquery()
        )
        orders: dict[Strategy, list[Any]] = {
            Strategy.LONGEST_IDLE: [col(AgentState.since)],
            Strategy.ROUND_ROBIN: [
                col(AgentState.last_offered_at).asc().nulls_first(),
                col(AgentState.since),
            ],
            Strategy.LEAST_TALK: [col(AgentState.talk_seconds_today), col(AgentState.since)],
            Strategy.SKILL_FIRST: [level.desc(), col(AgentState.since)],
        }
        order = orders[Strategy(queue.strategy)]
        query = (
            select(AgentState)
            .where(AgentState.status == AgentStatus.READY, or_(*eligible))
            .order_by(*order)
            .limit(1)
            .with_for_update(of=AgentState)
        )
        return (await self.session.exec(query)).first()

    # -- calls -------------------------------------------------------------------------------
    async def get_call(self, call_id: UUID, *, lock: bool = False) -> Call | None:
        query = select(Call).where(Call.id == call_id)
        if lock:
            query = query.with_for_update()
        return (await self.session.exec(query)).first()

    async def call_by_provider_id(self, provider: str, provider_call_id: str) -> Call | None:
        query = select(Call).where(
            Call.provider == provider, Call.provider_call_id == provider_call_id
        )
        return (await self.session.exec(query.with_for_update())).first()

    async def waiting_calls(self) -> Sequence[Call]:
        """Waiting calls, VIPs first, then in the order they joined the queue."""
        query = (
            select(Call)
            .where(Call.status == CallStatus.QUEUED)
            .order_by(col(Call.priority).desc(), col(Call.queued_at))
        )
        return (await self.session.exec(query)).all()

    async def count_waiting(self, queue_id: UUID) -> int:
        query = (
            select(func.count())
            .select_from(Call)
            .where(Call.status == CallStatus.QUEUED, Call.queue_id == queue_id)
        )
        return int((await self.session.exec(query)).one())

    async def open_offer(self, call_id: UUID, agent_id: UUID) -> CallOffer | None:
        query = select(CallOffer).where(
            CallOffer.call_id == call_id,
            CallOffer.agent_id == agent_id,
            col(CallOffer.outcome).is_(None),
        )
        return (await self.session.exec(query)).first()

    async def offers(self) -> Sequence[CallOffer]:
        return (
            await self.session.exec(select(CallOffer).order_by(col(CallOffer.offered_at)))
        ).all()

    async def calls(self) -> Sequence[Call]:
        return (await self.session.exec(select(Call).order_by(col(Call.arrived_at)))).all()

    # -- blocklist and settings ----------------------------------------------------------------
    async def active_block(self, phone: str, now: datetime) -> BlocklistEntry | None:
        query = select(BlocklistEntry).where(
            BlocklistEntry.phone == phone,
            col(BlocklistEntry.removed_at).is_(None),
            or_(col(BlocklistEntry.expires_at).is_(None), col(BlocklistEntry.expires_at) > now),
        )
        return (await self.session.exec(query)).first()

    async def blocklist(self) -> Sequence[BlocklistEntry]:
        query = select(BlocklistEntry).where(col(BlocklistEntry.removed_at).is_(None))
        return (
            await self.session.exec(query.order_by(col(BlocklistEntry.created_at).desc()))
        ).all()

    async def get_block(self, entry_id: UUID) -> BlocklistEntry | None:
        query = select(BlocklistEntry).where(BlocklistEntry.id == entry_id).with_for_update()
        return (await self.session.exec(query)).first()

    async def settings(self) -> ContactCenterSettings | None:
        return (await self.session.exec(select(ContactCenterSettings))).first()
