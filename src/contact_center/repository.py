"""Every query of the contact center."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any
from uuid import UUID

from sqlalchemy import (
    Boolean,
    ColumnClause,
    DateTime,
    Integer,
    Select,
    Uuid,
    and_,
    bindparam,
    column,
    exists,
    func,
    literal,
    or_,
    text,
)
from sqlalchemy import select as sa_select
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from contact_center.models import (
    AgentEngagement,
    AgentSkill,
    AgentState,
    AgentStatus,
    BlocklistEntry,
    Call,
    CallOffer,
    CallStatus,
    ContactCenterSettings,
    DeskCode,
    DeskCodeKind,
    FlowStatus,
    IvrFlowVersion,
    Queue,
    Strategy,
)
from depotline.db import require_tenant


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

    async def engaged_anywhere(self, user_id: UUID) -> bool:
        """Whether the agent is busy with a call on some floor (see AgentEngagement)."""
        query = select(AgentEngagement.user_id).where(AgentEngagement.user_id == user_id)
        return (await self.session.exec(query)).first() is not None

    async def reserve_next(
        self, tenant_id: UUID, now: datetime, offer_id: UUID, joining: Joining | None = None
    ) -> Reservation | None:
        """The routing decision, in one statement: the first waiting call (highest priority,
        then longest waiting) that has a free agent, and the agent its queue's strategy picks,
        reserved for it, the call offered and the offer recorded; `joining` joins the line in
        the same statement. None: no pair. The caller holds the routing lock."""
        params = {**_STATES, **_joining(joining), "tenant": tenant_id, "now": now}
        params["offer"] = offer_id
        while True:
            rows = (await self.session.execute(_reserve_next(), params)).all()
            for row in rows:
                if row.AgentState is not None and row.Call is not None:
                    return Reservation(row.AgentState, row.Call, row.reservation_seconds, row.more)
            if not rows[0].picked:
                return None
            # The agent changed after this statement's snapshot was taken (a change outside
            # routing, e.g. signing in again): nothing was written for the pair (the joining
            # call is in line now). Pick again.
            params.update(_joining(None))

    async def reserve(
        self, tenant_id: UUID, call_id: UUID, agent_id: UUID, now: datetime, offer_id: UUID
    ) -> tuple[AgentState, Call] | None:
        """`reserve_next` for a chosen call and agent (a transfer to a named agent). None: the
        agent is not ready."""
        params = {
            **_STATES,
            **_joining(None),
            "tenant": tenant_id,
            "now": now,
            "offer": offer_id,
            "call": call_id,
            "agent": agent_id,
        }
        row = (await self.session.execute(_reserve(), params)).first()
        if row is None or row.AgentState is None or row.Call is None:
            return None
        return row.AgentState, row.Call

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

    # -- IVR flow versions (always the scoped tenant's own: an HQ's scope shows its branches') --
    async def lock_flows(self, tenant_id: UUID) -> None:
        """One flow change at a time per tenant (version numbers, the one published version)."""
        await self.session.execute(
            text("select pg_advisory_xact_lock(hashtextextended(:t, 1))"), {"t": str(tenant_id)}
        )

    async def flow_versions(self) -> Sequence[IvrFlowVersion]:
        query = select(IvrFlowVersion).where(IvrFlowVersion.tenant_id == require_tenant())
        return (await self.session.exec(query.order_by(col(IvrFlowVersion.number).desc()))).all()

    async def flow_version(self, version_id: UUID, *, lock: bool = False) -> IvrFlowVersion | None:
        query = select(IvrFlowVersion).where(
            IvrFlowVersion.tenant_id == require_tenant(), IvrFlowVersion.id == version_id
        )
        if lock:
            query = query.with_for_update()
        return (await self.session.exec(query)).first()

    async def flow_version_by_number(self, number: int) -> IvrFlowVersion | None:
        query = select(IvrFlowVersion).where(
            IvrFlowVersion.tenant_id == require_tenant(), IvrFlowVersion.number == number
        )
        return (await self.session.exec(query)).first()

    async def published_flow(self, *, lock: bool = False) -> IvrFlowVersion | None:
        query = select(IvrFlowVersion).where(
            IvrFlowVersion.tenant_id == require_tenant(),
            IvrFlowVersion.status == FlowStatus.PUBLISHED,
        )
        if lock:
            query = query.with_for_update()
        return (await self.session.exec(query)).first()

    async def next_flow_number(self) -> int:
        query = select(func.coalesce(func.max(IvrFlowVersion.number), 0) + 1).where(
            IvrFlowVersion.tenant_id == require_tenant()
        )
        return int((await self.session.exec(query)).one())

    async def call_start_facts(
        self, phone: str | None, now: datetime
    ) -> tuple[bool, ContactCenterSettings | None, UUID | None]:
        """What a new call needs before its first IVR step, in one round trip: whether the
        caller (E.164; None: unreadable, never blocked) is blocked, the tenant's settings, and
        the id of its published flow version."""
        params = {"tenant": require_tenant(), "phone": phone or "", "now": now}
        row = (await self.session.execute(_call_start_facts(), params)).one()
        return bool(row[0]) and phone is not None, row[2], row[1]

    # -- what callers hear while they wait -----------------------------------------------------
    async def try_lock_routing(self, tenant_id: UUID) -> bool:
        """The routing lock if it is free now: for a change to a waiting call whose row this
        transaction already holds (waiting for the lock then could deadlock with routing)."""
        query = text("select pg_try_advisory_xact_lock(hashtextextended(:t, 0))")
        return bool((await self.session.execute(query, {"t": str(tenant_id)})).scalar())

    async def wait_facts(self, call: Call, since: datetime) -> tuple[int, int, float | None]:
        """For a waiting call: callers ahead of it in its queue (routing order), agents serving
        the queue (skilled, signed in, not on a break), and the mean talk time of the queue's
        calls that ended since `since` (None when none did). One round trip."""
        same_queue = (col(Call.tenant_id) == call.tenant_id, col(Call.queue_id) == call.queue_id)
        ahead = (
            select(func.count())
            .select_from(Call)
            .where(
                *same_queue,
                col(Call.status) == CallStatus.QUEUED,
                or_(
                    col(Call.priority) > call.priority,
                    and_(
                        col(Call.priority) == call.priority,
                        col(Call.queued_at) < call.queued_at,
                    ),
                ),
            )
            .scalar_subquery()
        )
        working = (
            AgentStatus.READY,
            AgentStatus.RESERVED,
            AgentStatus.ON_CALL,
            AgentStatus.WRAP_UP,
        )
        serving = (
            select(func.count())
            .select_from(AgentState)
            .where(
                col(AgentState.tenant_id) == call.tenant_id,
                col(AgentState.status).in_(working),
                exists().where(
                    col(AgentSkill.tenant_id) == col(AgentState.tenant_id),
                    col(AgentSkill.user_id) == col(AgentState.user_id),
                    col(AgentSkill.queue_id) == call.queue_id,
                ),
            )
            .scalar_subquery()
        )
        talk = (
            select(func.avg(Call.talk_seconds))
            .where(*same_queue, col(Call.ended_at) >= since, col(Call.talk_seconds).is_not(None))
            .scalar_subquery()
        )
        row = (await self.session.execute(sa_select(ahead, serving, talk))).one()
        return int(row[0]), int(row[1]), float(row[2]) if row[2] is not None else None

    async def lock_agent_numbers(self, tenant_id: UUID) -> None:
        await self.session.execute(
            text("select pg_advisory_xact_lock(hashtextextended(:t, 2))"), {"t": str(tenant_id)}
        )

    async def next_agent_number(self) -> str:
        """The tenant's next agent number (工号): 1001, 1002 ..."""
        numbered = col(AgentState.agent_number).regexp_match("^[0-9]{1,9}$")
        query = select(
            func.coalesce(func.max(func.cast(col(AgentState.agent_number), Integer)), 1000) + 1
        ).where(col(AgentState.tenant_id) == require_tenant(), numbered)
        return str((await self.session.exec(query)).one())

    async def settings_of(self, tenant_id: UUID) -> ContactCenterSettings | None:
        """One tenant's settings: an HQ's scope also shows its branches' rows."""
        query = select(ContactCenterSettings).where(ContactCenterSettings.tenant_id == tenant_id)
        return (await self.session.exec(query)).first()

    # -- the supervisor console ----------------------------------------------------------------
    async def queue_figures(self, since: datetime, now: datetime) -> Sequence[Any]:
        """Per visible queue: calls waiting and ringing now, when the oldest waiting call
        joined, and counts and sums over the calls that entered the queue in [since, now].
        `contact_center.wallboard` turns these into the figures."""
        entered = and_(col(Call.queued_at) >= since, col(Call.queued_at) <= now)
        answered = and_(entered, col(Call.answered_at).is_not(None))
        talked = and_(answered, col(Call.ended_at).is_not(None))
        waiting = col(Call.status) == CallStatus.QUEUED
        wait = func.extract("epoch", col(Call.answered_at) - col(Call.queued_at))
        talk = func.extract("epoch", col(Call.ended_at) - col(Call.answered_at))
        calls = func.count(col(Call.id))
        figures: list[Any] = [
            col(Queue.id).label("queue_id"),
            col(Queue.tenant_id).label("tenant_id"),
            col(Queue.name).label("name"),
            col(Queue.service_level_seconds).label("threshold_seconds"),
            calls.filter(waiting).label("waiting"),
            calls.filter(col(Call.status) == CallStatus.OFFERED).label("ringing"),
            func.min(col(Call.queued_at)).filter(waiting).label("oldest_waiting_since"),
            calls.filter(entered).label("offered"),
            calls.filter(answered).label("answered"),
            calls.filter(entered, col(Call.status) == CallStatus.ABANDONED).label("abandoned"),
            calls.filter(answered, wait <= col(Queue.service_level_seconds)).label(
                "answered_in_time"
            ),
            func.coalesce(func.sum(wait).filter(answered), 0).label("total_wait_seconds"),
            calls.filter(talked).label("talked"),
            func.coalesce(func.sum(talk).filter(talked), 0).label("total_talk_seconds"),
        ]
        query = (
            sa_select(*figures)
            .select_from(Queue)
            .outerjoin(
                Call,
                and_(
                    col(Call.tenant_id) == col(Queue.tenant_id),
                    col(Call.queue_id) == col(Queue.id),
                    or_(
                        entered,
                        col(Call.status).in_([CallStatus.QUEUED, CallStatus.OFFERED]),
                    ),
                ),
            )
            .group_by(col(Queue.tenant_id), col(Queue.id))
            .order_by(col(Queue.name), col(Queue.tenant_id))
        )
        return (await self.session.execute(query)).all()

    async def floor_agents(self) -> list[tuple[AgentState, Call | None]]:
        """Every visible agent state with the call it is on or being offered, if any."""
        query = sa_select(AgentState, Call).outerjoin(
            Call,
            and_(
                col(Call.tenant_id) == col(AgentState.tenant_id),
                col(Call.id) == col(AgentState.current_call_id),
            ),
        )
        return [(row[0], row[1]) for row in (await self.session.execute(query)).all()]

    async def handled_since(self, since: datetime) -> dict[tuple[UUID, UUID], int]:
        """How many calls each agent answered since `since`, by (tenant, agent)."""
        query = (
            sa_select(col(Call.tenant_id), col(Call.agent_id), func.count())
            .where(
                col(Call.answered_at) >= since,
                col(Call.agent_id).is_not(None),
                # No call waits a day in a queue: this bound lets the queued_at index serve.
                col(Call.queued_at) >= since - timedelta(days=1),
            )
            .group_by(col(Call.tenant_id), col(Call.agent_id))
        )
        rows = (await self.session.execute(query)).all()
        return {(tenant_id, agent_id): int(count) for tenant_id, agent_id, count in rows}

    async def agent_rows(self, user_id: UUID) -> Sequence[AgentState]:
        """The user's agent states in every visible tenant (an HQ sees its branches' floors)."""
        query = select(AgentState).where(AgentState.user_id == user_id)
        return (await self.session.exec(query.order_by(col(AgentState.tenant_id)))).all()

    # -- the agent desktop ----------------------------------------------------------------------
    async def desk_codes(self, kind: DeskCodeKind) -> Sequence[DeskCode]:
        """The scoped tenant's own active codes of a kind (not its branches'), in order."""
        query = select(DeskCode).where(
            DeskCode.tenant_id == require_tenant(),
            DeskCode.kind == kind,
            col(DeskCode.active).is_(True),
        )
        return (
            await self.session.exec(query.order_by(col(DeskCode.position), col(DeskCode.label)))
        ).all()

    async def desk_code(self, code_id: UUID) -> DeskCode | None:
        query = select(DeskCode).where(
            DeskCode.tenant_id == require_tenant(), DeskCode.id == code_id
        )
        return (await self.session.exec(query.with_for_update())).first()

    async def next_desk_code_position(self, kind: DeskCodeKind) -> int:
        query = select(func.coalesce(func.max(DeskCode.position), 0) + 1).where(
            DeskCode.tenant_id == require_tenant(), DeskCode.kind == kind
        )
        return int((await self.session.exec(query)).one())

    async def ready_agents(self) -> Sequence[AgentState]:
        """The scoped tenant's ready agents whom a call can be transferred to: outsourced ones
        only while seated here and not busy on another floor (the rule routing applies)."""
        query = select(AgentState).where(
            AgentState.tenant_id == require_tenant(),
            AgentState.status == AgentStatus.READY,
            or_(
                col(AgentState.home_tenant_id) == col(AgentState.tenant_id),
                and_(
                    func.depotline_holds_seat(AgentState.tenant_id, AgentState.user_id),
                    ~exists().where(col(AgentEngagement.user_id) == col(AgentState.user_id)),
                ),
            ),
        )
        return (await self.session.exec(query.order_by(col(AgentState.since)))).all()


@cache
def _call_start_facts() -> Select[Any]:
    """Built once (it takes longer to build than to run): answers every call's first webhook."""
    tenant = bindparam("tenant", type_=Uuid())
    blocked = exists().where(
        col(BlocklistEntry.tenant_id) == tenant,
        col(BlocklistEntry.phone) == bindparam("phone"),
        col(BlocklistEntry.removed_at).is_(None),
        or_(
            col(BlocklistEntry.expires_at).is_(None),
            col(BlocklistEntry.expires_at) > bindparam("now", type_=DateTime(timezone=True)),
        ),
    )
    published = (
        select(IvrFlowVersion.id)
        .where(
            col(IvrFlowVersion.tenant_id) == tenant, IvrFlowVersion.status == FlowStatus.PUBLISHED
        )
        .scalar_subquery()
    )
    one = sa_select(literal(1).label("one")).subquery()
    return (
        sa_select(blocked.label("blocked"), published.label("flow_id"), ContactCenterSettings)
        .select_from(one)
        .outerjoin(ContactCenterSettings, col(ContactCenterSettings.tenant_id) == tenant)
    )


@dataclass(frozen=True)
class Joining:
    """A call joining a queue's line, as routing decided it joins."""

    call_id: UUID
    queue_id: UUID
    priority: int
    queued_at: datetime
    overflowed_at: datetime | None


def _joining(joining: Joining | None) -> dict[str, Any]:
    return {
        "joining": joining.call_id if joining else None,
        "joining_queue": joining.queue_id if joining else None,
        "joining_priority": joining.priority if joining else None,
        "joining_queued_at": joining.queued_at if joining else None,
        "joining_overflowed_at": joining.overflowed_at if joining else None,
    }


@dataclass(frozen=True)
class Reservation:
    """An agent reserved for a call by `reserve_next`, both rows as the statement left them."""

    agent: AgentState
    call: Call
    reservation_seconds: int
    #: Another waiting call may have a free agent as well: route again.
    more: bool


#: The states and strategies the routing statements name, as bound parameters.
_STATES = {
    "queued": CallStatus.QUEUED.value,
    "offered": CallStatus.OFFERED.value,
    "ready": AgentStatus.READY.value,
    "reserved": AgentStatus.RESERVED.value,
    "round_robin": Strategy.ROUND_ROBIN.value,
    "least_talk": Strategy.LEAST_TALK.value,
    "skill_first": Strategy.SKILL_FIRST.value,
}


def _columns(table: Any, alias: str) -> str:
    return ", ".join(f"{alias}.{c.name}" for c in table.columns)


# Each kind of waiting call (queue, overflowed or not) is represented by its first call: a later
# call of the kind has the same agents. Eligible for a kind: ready agents with the queue's skill;
# once overflowed, also those with the overflow queue's skill and the overflow operator's
# agents. Its queue's strategy ranks them: longest idle (`since`), round robin (least recently
# offered, never offered first), least talk time today, or skill level first (no skill: 0);
# ties go to the longest idle. The best two are kept so the statement can also tell whether a
# second pair is left once the first is made.
_PICK = """
kinds AS (
  SELECT DISTINCT ON (w.queue_id, w.overflowed)
         w.id, w.queue_id, w.priority, w.queued_at, w.overflowed,
         count(*) OVER (PARTITION BY w.queue_id, w.overflowed) AS calls
  FROM (SELECT c.id, c.queue_id, c.priority, c.queued_at, c.overflowed_at IS NOT NULL AS overflowed
        FROM calls c
        WHERE c.tenant_id = :tenant AND c.status = :queued
          AND c.id IS DISTINCT FROM CAST(:joining AS uuid)
        UNION ALL
        SELECT CAST(:joining AS uuid), CAST(:joining_queue AS uuid),
               CAST(:joining_priority AS integer), CAST(:joining_queued_at AS timestamptz),
               CAST(:joining_overflowed_at AS timestamptz) IS NOT NULL
        WHERE CAST(:joining AS uuid) IS NOT NULL) AS w
  ORDER BY w.queue_id, w.overflowed, w.priority DESC, w.queued_at
),
options AS (
  SELECT k.id AS call_id, k.priority, k.queued_at, k.calls, q.reservation_seconds,
         a.id AS agent_row, a.user_id, a.rank
  FROM kinds k
  JOIN queues q ON q.tenant_id = :tenant AND q.id = k.queue_id
  CROSS JOIN LATERAL (
    SELECT a.id, a.user_id, row_number() OVER (ORDER BY
             CASE WHEN q.strategy = :skill_first THEN coalesce(sk.level, 0) END DESC,
             CASE WHEN q.strategy = :round_robin THEN a.last_offered_at END ASC NULLS FIRST,
             CASE WHEN q.strategy = :least_talk THEN a.talk_seconds_today END,
             a.since) AS rank
    FROM agent_states a
    LEFT JOIN agent_skills sk  -- the agent's skill in the queue (one at most), or none
      ON sk.tenant_id = a.tenant_id AND sk.user_id = a.user_id AND sk.queue_id = q.id
    WHERE a.tenant_id = :tenant AND a.status = :ready
      -- An outsourced agent: seated on this floor, not busy on another (migration 0011).
      AND (a.home_tenant_id = a.tenant_id
           OR (depotline_holds_seat(a.tenant_id, a.user_id)
               AND NOT EXISTS (SELECT FROM agent_engagements e WHERE e.user_id = a.user_id)))
      AND (sk.id IS NOT NULL
           OR (k.overflowed
               AND (a.home_tenant_id = q.overflow_operator_id
                    OR EXISTS (SELECT FROM agent_skills s
                               WHERE s.tenant_id = a.tenant_id AND s.user_id = a.user_id
                                 AND s.queue_id = q.overflow_queue_id))))
    ORDER BY rank
    LIMIT 2
  ) AS a
),
pick AS (
  SELECT o.call_id, o.agent_row, o.reservation_seconds,
         EXISTS (SELECT FROM options m
                 WHERE m.user_id <> o.user_id AND (m.call_id <> o.call_id OR m.calls > 1)) AS more
  FROM options o
  ORDER BY o.priority DESC, o.queued_at, o.rank
  LIMIT 1
),
"""

# Rows are found by primary key through scalar subqueries, so the plan never depends on the
# planner guessing the CTEs' sizes (a scan of a tenant's calls would grow with its history).
# The status check makes the database itself refuse an agent who is no longer ready (changed
# outside routing after the snapshot): then nothing is written for the pair. The call joining
# the line (:joining, if any) is written as waiting, or offered if it is the call picked: one
# UPDATE for both, as a statement may change a row once. {agent} and {call}: the models'
# columns, in their order (the rows are matched to the models by position).
_WRITE = """
reserved AS (
  UPDATE agent_states a
  SET status = :reserved, reason = NULL, since = CAST(:now AS timestamptz),
      current_call_id = (SELECT p.call_id FROM pick p),
      last_offered_at = CAST(:now AS timestamptz)
  WHERE a.tenant_id = :tenant AND a.id = (SELECT p.agent_row FROM pick p) AND a.status = :ready
  RETURNING {agent}
),
offered AS (
  UPDATE calls c
  SET status = CASE WHEN c.id = x.call_id THEN :offered ELSE :queued END,
      agent_id = CASE WHEN c.id = x.call_id THEN x.user_id ELSE c.agent_id END,
      offered_at = CASE WHEN c.id = x.call_id THEN CAST(:now AS timestamptz) ELSE c.offered_at END,
      queue_id = CASE WHEN c.id = CAST(:joining AS uuid)
                      THEN CAST(:joining_queue AS uuid) ELSE c.queue_id END,
      priority = CASE WHEN c.id = CAST(:joining AS uuid)
                      THEN CAST(:joining_priority AS integer) ELSE c.priority END,
      queued_at = CASE WHEN c.id = CAST(:joining AS uuid)
                       THEN CAST(:joining_queued_at AS timestamptz) ELSE c.queued_at END,
      overflowed_at = CASE WHEN c.id = CAST(:joining AS uuid)
                           THEN CAST(:joining_overflowed_at AS timestamptz)
                           ELSE c.overflowed_at END
  FROM (SELECT (SELECT r.current_call_id FROM reserved r) AS call_id,
               (SELECT r.user_id FROM reserved r) AS user_id) AS x
  WHERE c.tenant_id = :tenant
    AND c.id = ANY (ARRAY[(SELECT r.current_call_id FROM reserved r), CAST(:joining AS uuid)])
  RETURNING {call}
),
recorded AS (
  INSERT INTO call_offers (tenant_id, id, call_id, agent_id, offered_at)
  SELECT r.tenant_id, CAST(:offer AS uuid), r.current_call_id, r.user_id,
         CAST(:now AS timestamptz)
  FROM reserved r
)
"""

_RESERVE_NEXT = (
    "WITH "
    + _PICK
    + _WRITE
    + """
SELECT r.*, o.*, p.reservation_seconds, p.more, p.call_id IS NOT NULL AS picked
FROM (SELECT) AS one
LEFT JOIN pick p ON true
LEFT JOIN offered o ON true
LEFT JOIN reserved r ON r.current_call_id = o.id
"""
)

# A transfer to a named agent: the pair is given.
_GIVEN = """
pick AS (
  SELECT CAST(:call AS uuid) AS call_id, a.id AS agent_row
  FROM agent_states a
  WHERE a.tenant_id = :tenant AND a.user_id = :agent
),
"""

_RESERVE = (
    "WITH "
    + _GIVEN
    + _WRITE
    + """
SELECT r.*, o.* FROM reserved r JOIN offered o ON true
"""
)


def _mapped(sql: str, *extra: ColumnClause[Any]) -> Any:
    """`sql` as an ORM statement whose rows are (AgentState, Call, *extra), by position: the
    rows it returns are loaded into (or refresh) the session's objects."""
    agent: Any = AgentState.__table__  # type: ignore[attr-defined]
    call: Any = Call.__table__  # type: ignore[attr-defined]
    columns = {"agent": _columns(agent, "a"), "call": _columns(call, "c")}
    statement = text(sql.format(**columns)).columns(*agent.columns, *call.columns, *extra)
    return (
        select(AgentState, Call, *extra)
        .from_statement(statement)
        .execution_options(populate_existing=True)
    )


@cache
def _reserve_next() -> Any:
    """Built once: every routing decision runs it."""
    return _mapped(
        _RESERVE_NEXT,
        column("reservation_seconds", Integer()),
        column("more", Boolean()),
        column("picked", Boolean()),
    )


@cache
def _reserve() -> Any:
    return _mapped(_RESERVE)
