"""The supervisor console's figures: per queue for today, per agent right now.

"Today" is the tenant's calendar day, from midnight to now in its time zone (the zone of the
business hours under Call handling, else the tenant's own). Every daily count is over the calls
that *entered a queue* today (`queued_at`), so each call belongs to exactly one day and
answered + abandoned never exceed offered. The scope is the acting tenant and, through
row-level security, its branches.

Per queue, following DOMAIN.md's definitions:

- waiting: calls in the queue now, not yet offered to an agent; ringing: being offered now.
- longest wait: how long the oldest call still waiting has waited, in seconds, now.
- offered: calls that entered the queue today ("calls offered to the queue"), including those
  still waiting or ringing.
- answered: of those, the ones an agent answered.
- abandoned: of those, the ones whose caller hung up while queued (ringing an agent still
  counts as queued). DOMAIN.md has no short-abandon rule, so every such hang-up counts.
- answer rate = answered / offered; abandonment rate = abandoned / offered.
- answered within 15 s (应答及时率) = calls answered by an agent within the queue's service
  level threshold of entering the queue (15 s unless the tenant sets another) / calls offered.
- average wait (ASA) = total queue wait of answered calls / answered calls.
- average talk = total talk time of answered calls that have ended / those calls.

A rate or average over no calls is None (a dash on the page), never 0.

Per agent: state and reason, time in that state, the call being offered or talked on, a
supervisor's change waiting for that call to end, and the calls the agent answered today.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlmodel.ext.asyncio.session import AsyncSession

from contact_center.models import AgentState, AgentStatus, Call, CallStatus
from contact_center.repository import ContactCenterRepository
from depotline.db import require_tenant, utcnow
from tenant.repository import TenantRepository


def share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


@dataclass(frozen=True)
class QueueFigures:
    queue_id: UUID
    tenant_id: UUID
    name: str
    threshold_seconds: int  # the service level threshold: 15 s unless the tenant sets another
    waiting: int
    ringing: int
    longest_wait_seconds: int
    offered: int
    answered: int
    abandoned: int
    answered_in_time: int
    total_wait_seconds: float
    talked: int
    total_talk_seconds: float

    @property
    def answer_rate(self) -> float | None:
        return share(self.answered, self.offered)

    @property
    def abandonment_rate(self) -> float | None:
        return share(self.abandoned, self.offered)

    @property
    def service_level(self) -> float | None:
        """Answered within the threshold / offered (DOMAIN.md's answer-in-15 s rate)."""
        return share(self.answered_in_time, self.offered)

    @property
    def average_wait_seconds(self) -> float | None:
        """ASA: total queue wait of answered calls / answered calls."""
        return self.total_wait_seconds / self.answered if self.answered else None

    @property
    def average_talk_seconds(self) -> float | None:
        return self.total_talk_seconds / self.talked if self.talked else None


@dataclass(frozen=True)
class CurrentCall:
    call_id: UUID
    from_number: str
    queue: str | None
    status: CallStatus  # offered (ringing the agent) or on_call
    seconds: int  # ringing for, or talking for


@dataclass(frozen=True)
class AgentRow:
    user_id: UUID
    tenant_id: UUID
    name: str
    email: str
    status: AgentStatus
    reason: str | None
    since: datetime
    time_in_state_seconds: int
    pending_status: AgentStatus | None
    pending_reason: str | None
    current_call: CurrentCall | None
    calls_handled_today: int


@dataclass(frozen=True)
class Floor:
    as_of: datetime
    time_zone: str
    day: date
    queues: list[QueueFigures]
    agents: list[AgentRow]
    #: Names of the tenants whose rows are shown, when more than one (an HQ sees its branches).
    tenants: dict[UUID, str]

    @property
    def local_time(self) -> str:
        return self.as_of.astimezone(ZoneInfo(self.time_zone)).strftime("%H:%M:%S")


async def tenant_zone(session: AsyncSession) -> ZoneInfo:
    """The acting tenant's time zone: its business hours' zone, else the tenant's own."""
    tenant_id = require_tenant()
    settings = await ContactCenterRepository(session).settings_of(tenant_id)
    name = (settings.business_hours or {}).get("time_zone") if settings else None
    if not name:
        tenant = await TenantRepository(session).get_tenant(tenant_id)
        name = tenant.timezone if tenant else "UTC"
    try:
        return ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def start_of_day(now: datetime, zone: ZoneInfo) -> datetime:
    """Local midnight of `now`'s day in `zone`, in UTC."""
    local = now.astimezone(zone)
    return datetime.combine(local.date(), time.min, tzinfo=zone).astimezone(UTC)


def seconds_between(earlier: datetime | None, later: datetime) -> int:
    return max(0, int((later - earlier).total_seconds())) if earlier else 0


async def floor(session: AsyncSession, now: datetime | None = None) -> Floor:
    """The console's figures at `now` (default: this moment)."""
    now = now or utcnow()
    zone = await tenant_zone(session)
    since = start_of_day(now, zone)
    repo = ContactCenterRepository(session)
    queues = [_queue_figures(row, now) for row in await repo.queue_figures(since, now)]
    queue_names = {q.queue_id: q.name for q in queues}
    handled = await repo.handled_since(since)
    users = TenantRepository(session)
    on_floor = await repo.floor_agents()
    # One query for every agent's name: the console asks for the floor every two seconds.
    people = await users.users_by_ids([agent.user_id for agent, _ in on_floor])
    agents: list[AgentRow] = []
    for agent, call in on_floor:
        user = people.get(agent.user_id)
        agents.append(
            _agent_row(
                agent,
                call,
                name=user.name if user else str(agent.user_id),
                email=user.email if user else "",
                queue_names=queue_names,
                handled=handled.get((agent.tenant_id, agent.user_id), 0),
                now=now,
            )
        )
    # Signed-out agents last; otherwise by name, so a row stays where the eye left it.
    agents.sort(key=lambda a: (a.status == AgentStatus.SIGNED_OUT, a.name.casefold(), a.email))
    shown = {q.tenant_id for q in queues} | {a.tenant_id for a in agents}
    tenants: dict[UUID, str] = {}
    if len(shown) > 1:
        found = await users.tenants_by_ids(list(shown))
        tenants = {tenant_id: tenant.name for tenant_id, tenant in found.items()}
    return Floor(
        as_of=now,
        time_zone=zone.key,
        day=now.astimezone(zone).date(),
        queues=queues,
        agents=agents,
        tenants=tenants,
    )


def _queue_figures(row: Any, now: datetime) -> QueueFigures:
    return QueueFigures(
        queue_id=row.queue_id,
        tenant_id=row.tenant_id,
        name=row.name,
        threshold_seconds=row.threshold_seconds,
        waiting=row.waiting,
        ringing=row.ringing,
        longest_wait_seconds=seconds_between(row.oldest_waiting_since, now),
        offered=row.offered,
        answered=row.answered,
        abandoned=row.abandoned,
        answered_in_time=row.answered_in_time,
        total_wait_seconds=float(row.total_wait_seconds),
        talked=row.talked,
        total_talk_seconds=float(row.total_talk_seconds),
    )


def _agent_row(
    agent: AgentState,
    call: Call | None,
    *,
    name: str,
    email: str,
    queue_names: dict[UUID, str],
    handled: int,
    now: datetime,
) -> AgentRow:
    current = None
    if call is not None and call.status in (CallStatus.OFFERED, CallStatus.ON_CALL):
        began = call.answered_at if call.status == CallStatus.ON_CALL else call.offered_at
        current = CurrentCall(
            call_id=call.id,
            from_number=call.from_number,
            queue=queue_names.get(call.queue_id) if call.queue_id else None,
            status=CallStatus(call.status),
            seconds=seconds_between(began, now),
        )
    return AgentRow(
        user_id=agent.user_id,
        tenant_id=agent.tenant_id,
        name=name,
        email=email,
        status=AgentStatus(agent.status),
        reason=agent.reason,
        since=agent.since,
        time_in_state_seconds=seconds_between(agent.since, now),
        pending_status=AgentStatus(agent.pending_status) if agent.pending_status else None,
        pending_reason=agent.pending_reason,
        current_call=current,
        calls_handled_today=handled,
    )
