"""Routing (ACD): calls wait in queues, agents change state, and every change that could match
a waiting call with a free agent routes at once, in the same transaction, under the tenant's
routing lock. Timers (offer timeout, overflow, wrap-up) are delayed outbox events, so they
survive restarts and run on whichever worker is free."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID, uuid4

import structlog
from sqlmodel.ext.asyncio.session import AsyncSession

from contact_center import live
from contact_center.models import (
    AgentSkill,
    AgentState,
    AgentStatus,
    BlocklistEntry,
    Call,
    CallStatus,
    Queue,
    Strategy,
)
from contact_center.repository import ContactCenterRepository, Joining
from depotline import outbox
from depotline.auth import Principal
from depotline.db import require_tenant, utcnow
from depotline.errors import Conflict, InvalidInput, NotFound
from telephony_gateway.service import e164
from tenant.service import audit

log = structlog.get_logger(__name__)

OFFERED = "contact_center.offered"
OFFER_TIMEOUT = "contact_center.offer_timeout"
OVERFLOW_DUE = "contact_center.overflow_due"
WRAP_UP_DONE = "contact_center.wrap_up_done"
#: An outsourced agent's ringing offer ended without a call (the caller left): the agent's other
#: floors may have calls waiting for them. {"user_id"}
AGENT_FREED = "contact_center.agent_freed"
VIP_PRIORITY = 100


@dataclass(frozen=True)
class Offer:
    call_id: UUID
    agent_id: UUID


# -- configuration ------------------------------------------------------------------------------
async def create_queue(
    session: AsyncSession,
    name: str,
    *,
    strategy: str = Strategy.LONGEST_IDLE,
    reservation_seconds: int = 15,
    wrap_up_seconds: int = 30,
    overflow_after_seconds: int | None = None,
    overflow_when_waiting: int | None = None,
    overflow_queue_id: UUID | None = None,
    overflow_operator_id: UUID | None = None,
    callback_offer_after_seconds: int | None = None,
) -> Queue:
    repo = ContactCenterRepository(session)
    if not name.strip():
        raise InvalidInput("A queue needs a name", field="name")
    try:
        chosen = Strategy(strategy)
    except ValueError:
        names = ", ".join(s.value for s in Strategy)
        raise InvalidInput(f"Strategy is one of: {names}", field="strategy") from None
    if reservation_seconds < 3:
        raise InvalidInput("Give agents at least 3 seconds to answer", field="reservation_seconds")
    if callback_offer_after_seconds is not None and callback_offer_after_seconds < 10:
        raise InvalidInput(
            "Let callers wait at least 10 seconds before the offer",
            field="callback_offer_after_seconds",
        )
    if await repo.queue_by_name(name.strip()):
        raise Conflict(f"There is already a queue called {name}", field="name")
    queue = Queue(
        name=name.strip(),
        strategy=chosen,
        reservation_seconds=reservation_seconds,
        wrap_up_seconds=wrap_up_seconds,
        overflow_after_seconds=overflow_after_seconds,
        overflow_when_waiting=overflow_when_waiting,
        overflow_queue_id=overflow_queue_id,
        overflow_operator_id=overflow_operator_id,
        callback_offer_after_seconds=callback_offer_after_seconds,
    )
    repo.add(queue)
    await repo.flush()
    return queue


async def set_skill(session: AsyncSession, user_id: UUID, queue_id: UUID, level: int = 1) -> None:
    if not 1 <= level <= 10:
        raise InvalidInput("Skill levels run from 1 to 10", field="level")
    repo = ContactCenterRepository(session)
    skill = await repo.skill(user_id, queue_id)
    if skill is None:
        repo.add(AgentSkill(user_id=user_id, queue_id=queue_id, level=level))
    else:
        skill.level = level
        repo.add(skill)


# -- agents -------------------------------------------------------------------------------------
async def agent_signs_in(session: AsyncSession, user_id: UUID, home_tenant_id: UUID) -> AgentState:
    """An agent appears in this tenant's pool, not ready until they say so."""
    repo = ContactCenterRepository(session)
    agent = await repo.agent(user_id, lock=True)
    if agent is None:
        agent = AgentState(user_id=user_id, home_tenant_id=home_tenant_id)
    if agent.agent_number is None:  # told to callers on answer; kept for good
        await repo.lock_agent_numbers(require_tenant())
        agent.agent_number = await repo.next_agent_number()
    if agent.status == AgentStatus.SIGNED_OUT:
        _move(agent, AgentStatus.NOT_READY, "signed in")
    repo.add(agent)
    await repo.flush()
    return agent


async def set_status(
    session: AsyncSession, user_id: UUID, status: AgentStatus, reason: str | None = None
) -> list[Offer]:
    """Ready, not ready (with a reason) or signed out. Ready routes at once."""
    repo = ContactCenterRepository(session)
    await repo.lock_routing(require_tenant())
    agent = await repo.agent(user_id, lock=True)
    if agent is None:
        raise NotFound("That agent is not signed in here")
    if status not in (AgentStatus.READY, AgentStatus.NOT_READY, AgentStatus.SIGNED_OUT):
        raise InvalidInput("Agents set themselves ready, not ready or signed out", field="status")
    if agent.status in (AgentStatus.RESERVED, AgentStatus.ON_CALL):
        raise Conflict("Finish the current call first")
    _move(agent, status, reason)
    repo.add(agent)
    return await route(session, locked=True) if status == AgentStatus.READY else []


def _move(agent: AgentState, status: AgentStatus, reason: str | None = None) -> None:
    agent.status, agent.reason, agent.since = status, reason, utcnow()


# -- calls --------------------------------------------------------------------------------------
async def enqueue(
    session: AsyncSession,
    call: Call,
    queue: Queue,
    *,
    vip: bool = False,
) -> list[Offer]:
    """A call joins a queue (from the IVR or a transfer) and is routed at once if it can be."""
    repo = ContactCenterRepository(session)
    await repo.lock_routing(require_tenant())
    now = utcnow()
    # "More than N waiting" counts the calls already in line, before this one joins (counted
    # only for a queue with that rule: one statement fewer on every routing decision).
    limit = queue.overflow_when_waiting
    already_waiting = await repo.count_waiting(queue.id) if limit is not None else 0
    overflowed = now if limit is not None and already_waiting >= limit else call.overflowed_at
    joining = Joining(
        call_id=call.id,
        queue_id=queue.id,
        priority=VIP_PRIORITY if vip else call.priority,
        queued_at=call.queued_at or now,
        overflowed_at=overflowed,
    )
    repo.add(call)
    if queue.overflow_after_seconds is not None and overflowed is None:
        outbox.publish(
            session,
            OVERFLOW_DUE,
            {"call_id": str(call.id)},
            delay=timedelta(seconds=queue.overflow_after_seconds),
        )
    live.joined(session, call, queue.id, joining.queued_at)
    # The call is written as waiting (or offered at once) by the routing statement itself.
    return await route(session, locked=True, joining=joining)


async def route(
    session: AsyncSession, *, locked: bool = False, joining: Joining | None = None
) -> list[Offer]:
    """Offer waiting calls to free agents until no more pairs match. Highest priority first,
    then the longest waiting; each queue's strategy picks among its eligible ready agents.
    `locked`: the caller holds the routing lock already (taking it again is a round trip).
    `joining`: a call that joins the line in the first routing statement."""
    repo = ContactCenterRepository(session)
    tenant_id = require_tenant()
    if not locked:
        await repo.lock_routing(tenant_id)
    offers: list[Offer] = []
    # One statement a decision (picking the pair and reserving it): the hot path of routing.
    while True:
        offer_id = uuid4()
        made = await repo.reserve_next(tenant_id, utcnow(), offer_id, joining)
        joining = None
        if made is None:
            break
        offers.append(_offered(session, made.agent, made.call, offer_id, made.reservation_seconds))
        if not made.more:
            break
    if offers:
        log.info("routed", offers=len(offers))
    return offers


async def offer_call(session: AsyncSession, call: Call, agent: AgentState, queue: Queue) -> Offer:
    """Reserve a ready agent for a call (the caller holds the routing lock): the offer, its
    OFFERED event and the timer that takes the call back if nobody answers. For a transfer to
    a named agent; routing reserves the agent it picks the same way (`route`)."""
    repo = ContactCenterRepository(session)
    offer_id = uuid4()
    made = await repo.reserve(require_tenant(), call.id, agent.user_id, utcnow(), offer_id)
    if made is None:
        raise Conflict("That agent is not ready to take a call", field="agent_id")
    return _offered(session, *made, offer_id, queue.reservation_seconds)


def _offered(
    session: AsyncSession, agent: AgentState, call: Call, offer_id: UUID, reservation_seconds: int
) -> Offer:
    """What follows an offer written by the repository (not by a flush, which `live` would
    notice): the pushes to the agent and the floor, the OFFERED event and the timeout."""
    live.offered(session, agent, call, offer_id)
    payload = {"call_id": str(call.id), "agent_id": str(agent.user_id)}
    # Urgent: a ringing agent and a caller wait on both (the push, the timeout's next agent).
    outbox.publish(session, OFFERED, payload, priority=outbox.URGENT)
    outbox.publish(
        session,
        OFFER_TIMEOUT,
        payload,
        delay=timedelta(seconds=reservation_seconds),
        priority=outbox.URGENT,
    )
    return Offer(call.id, agent.user_id)


async def accept(session: AsyncSession, user_id: UUID, call_id: UUID) -> Call:
    repo = ContactCenterRepository(session)
    await repo.lock_routing(require_tenant())
    agent = await repo.agent(user_id, lock=True)
    call = await repo.get_call(call_id, lock=True)
    offer = await repo.open_offer(call_id, user_id)
    if agent is None or call is None or offer is None or agent.current_call_id != call_id:
        raise Conflict("This call is no longer offered to you")
    now = utcnow()
    _move(agent, AgentStatus.ON_CALL)
    call.status, call.agent_answered_at = CallStatus.ON_CALL, now
    if call.answered_at is None:  # a transferred call keeps its first answer (ASA, service level)
        call.answered_at = now
        call.wait_seconds = int((now - (call.queued_at or call.arrived_at)).total_seconds())
    offer.outcome, offer.decided_at = "accepted", now
    repo.add(agent, call, offer)
    return call


async def release_offer(
    session: AsyncSession, call_id: UUID, agent_id: UUID, outcome: str
) -> list[Offer]:
    """The agent declined or let the offer time out: the agent goes not ready, the call goes
    back to the head of its place in line (it keeps its queue time) and to the next agent."""
    repo = ContactCenterRepository(session)
    await repo.lock_routing(require_tenant())
    offer = await repo.open_offer(call_id, agent_id)
    if offer is None:
        return []  # already answered or released: a late timer does nothing
    agent = await repo.agent(agent_id, lock=True)
    call = await repo.get_call(call_id, lock=True)
    now = utcnow()
    offer.outcome, offer.decided_at = outcome, now
    repo.add(offer)
    if (
        agent is not None
        and agent.current_call_id == call_id
        and agent.status == AgentStatus.RESERVED
    ):
        _move(agent, AgentStatus.NOT_READY, "missed call" if outcome == "timeout" else "declined")
        agent.current_call_id = None
        repo.add(agent)
    if call is not None and call.status == CallStatus.OFFERED and call.agent_id == agent_id:
        call.status, call.agent_id, call.offered_at = CallStatus.QUEUED, None, None
        repo.add(call)
    await repo.flush()
    return await route(session)


async def agent_hangs_up(session: AsyncSession, user_id: UUID, call_id: UUID) -> Call:
    repo = ContactCenterRepository(session)
    await repo.lock_routing(require_tenant())
    call = await repo.get_call(call_id, lock=True)
    agent = await repo.agent(user_id, lock=True)
    if (
        call is None
        or agent is None
        or call.agent_id != user_id
        or call.status != CallStatus.ON_CALL
    ):
        raise Conflict("You are not on that call")
    _end(call, "completed")
    queue = await repo.get_queue(call.queue_id) if call.queue_id else None
    _finish_call_for(agent, call)
    repo.add(call, agent)
    outbox.publish(
        session,
        WRAP_UP_DONE,
        {"agent_id": str(user_id), "call_id": str(call.id)},
        delay=timedelta(seconds=queue.wrap_up_seconds if queue else 0),
    )
    return call


async def caller_hangs_up(session: AsyncSession, call_id: UUID) -> list[Offer]:
    """The caller left. Waiting: abandoned. Being offered: the agent is freed (and routed)."""
    repo = ContactCenterRepository(session)
    # The routing lock before any row lock, always: the order that keeps replicas deadlock-free.
    await repo.lock_routing(require_tenant())
    call = await repo.get_call(call_id, lock=True)
    if call is None:
        raise NotFound("No such call")
    offers: list[Offer] = []
    # A call answered before (and transferred) that the caller leaves while it waits again was
    # not abandoned: it counts as answered, once.
    transferred = call.answered_at is not None
    if call.status in (CallStatus.QUEUED, CallStatus.IVR):
        waiting = call.status == CallStatus.QUEUED
        _end(call, "transfer_hangup" if transferred else "abandoned" if waiting else "ivr_hangup")
        call.status = (
            # Out of the queue for voicemail or a callback (status ivr again) is not abandoned.
            CallStatus.ABANDONED if waiting and not transferred else CallStatus.ENDED
        )
    elif call.status == CallStatus.OFFERED and call.agent_id:
        offer = await repo.open_offer(call.id, call.agent_id)
        agent = await repo.agent(call.agent_id, lock=True)
        if offer is not None:
            offer.outcome, offer.decided_at = "caller_hangup", utcnow()
            repo.add(offer)
        _end(call, "transfer_hangup" if transferred else "abandoned")
        call.status = CallStatus.ENDED if transferred else CallStatus.ABANDONED
        if agent is not None and agent.current_call_id == call.id:
            _move(agent, AgentStatus.READY)
            agent.current_call_id = None
            repo.add(agent)
            if agent.home_tenant_id != agent.tenant_id:
                outbox.publish(
                    session, AGENT_FREED, {"user_id": str(agent.user_id)}, priority=outbox.URGENT
                )
        repo.add(call)
        await repo.flush()
        offers = await route(session)
    elif call.status == CallStatus.ON_CALL and call.agent_id:
        agent = await repo.agent(call.agent_id, lock=True)
        _end(call, "completed")
        queue = await repo.get_queue(call.queue_id) if call.queue_id else None
        if agent is not None:
            _finish_call_for(agent, call)
            repo.add(agent)
            outbox.publish(
                session,
                WRAP_UP_DONE,
                {"agent_id": str(agent.user_id), "call_id": str(call.id)},
                delay=timedelta(seconds=queue.wrap_up_seconds if queue else 0),
            )
    repo.add(call)
    return offers


def _end(call: Call, disposition: str) -> None:
    now = utcnow()
    call.ended_at, call.disposition = now, call.disposition or disposition
    if call.answered_at is not None:
        call.talk_seconds = int((now - call.answered_at).total_seconds())
    if call.held_since is not None:
        call.hold_seconds += int((now - call.held_since).total_seconds())
        call.held_since = None
    call.status = CallStatus.ENDED


def _finish_call_for(agent: AgentState, call: Call) -> None:
    _move(agent, AgentStatus.WRAP_UP)
    agent.current_call_id, agent.last_call_id = None, call.id
    # Only this agent's part: after a transfer, the call began with someone else.
    leg_start = call.agent_answered_at or call.answered_at
    if leg_start is not None:
        agent.talk_seconds_today += int(((call.ended_at or utcnow()) - leg_start).total_seconds())
    # A supervisor's not ready / sign out asked for during the call applies now, in place of
    # wrap-up (the wrap-up timer then finds the agent moved on and does nothing).
    if agent.pending_status is not None:
        _move(agent, agent.pending_status, agent.pending_reason)
        agent.pending_status = agent.pending_reason = None


async def start_wrap_up(session: AsyncSession, agent: AgentState, call: Call) -> None:
    """The agent's part of a call is over while the call goes on (a transfer): wrap-up, which
    the queue's wrap-up timer ends if the agent does not end it first."""
    repo = ContactCenterRepository(session)
    queue = await repo.get_queue(call.queue_id) if call.queue_id else None
    _finish_call_for(agent, call)
    repo.add(agent)
    outbox.publish(
        session,
        WRAP_UP_DONE,
        {"agent_id": str(agent.user_id), "call_id": str(call.id)},
        delay=timedelta(seconds=queue.wrap_up_seconds if queue else 0),
    )


async def wrap_up_done(
    session: AsyncSession, agent_id: UUID, call_id: UUID | None = None
) -> list[Offer]:
    """Wrap-up is over (its timer, or the agent's wrap-up code): the agent is ready again."""
    repo = ContactCenterRepository(session)
    await repo.lock_routing(require_tenant())
    agent = await repo.agent(agent_id, lock=True)
    if agent is None or agent.status != AgentStatus.WRAP_UP:
        return []  # the agent moved on already (not ready, signed out)
    if call_id is not None and agent.last_call_id not in (None, call_id):
        return []  # a timer of an earlier call, whose wrap-up the agent ended early
    _move(agent, AgentStatus.READY)
    repo.add(agent)
    return await route(session)


async def overflow_due(session: AsyncSession, call_id: UUID) -> list[Offer]:
    repo = ContactCenterRepository(session)
    await repo.lock_routing(require_tenant())
    call = await repo.get_call(call_id, lock=True)
    if call is None or call.status != CallStatus.QUEUED or call.overflowed_at is not None:
        return []
    call.overflowed_at = utcnow()
    repo.add(call)
    await repo.flush()
    return await route(session)


# -- harassment blocklist -----------------------------------------------------------------------
async def block_number(
    session: AsyncSession,
    actor: Principal,
    phone: str,
    reason: str,
    expires_at: datetime | None = None,
) -> BlocklistEntry:
    """Block a number. A reason is required, the author is recorded, and it is audited."""
    if len(reason.strip()) < 3:
        raise InvalidInput("Say why this number is blocked", field="reason")
    number = e164(phone, field="phone")
    repo = ContactCenterRepository(session)
    now = utcnow()
    if expires_at is not None and expires_at <= now:
        raise InvalidInput("The block would already have expired", field="expires_at")
    if await repo.active_block(number, now):
        raise Conflict(f"{number} is already blocked", field="phone")
    assert actor.user_id is not None
    entry = BlocklistEntry(
        phone=number, reason=reason.strip(), author_id=actor.user_id, expires_at=expires_at
    )
    repo.add(entry)
    await repo.flush()
    audit(
        session,
        actor,
        "blocklist.add",
        record_type="blocklist",
        record_id=entry.id,
        phone=number,
        reason=reason,
    )
    return entry


async def unblock(session: AsyncSession, actor: Principal, entry_id: UUID) -> BlocklistEntry:
    repo = ContactCenterRepository(session)
    entry = await repo.get_block(entry_id)
    if entry is None or entry.removed_at is not None:
        raise NotFound("No such blocklist entry")
    entry.removed_at, entry.removed_by = utcnow(), actor.user_id
    repo.add(entry)
    audit(
        session,
        actor,
        "blocklist.remove",
        record_type="blocklist",
        record_id=entry.id,
        phone=entry.phone,
    )
    return entry


async def is_blocked(session: AsyncSession, phone: str) -> bool:
    try:
        number = e164(phone, field="phone")
    except InvalidInput:
        return False
    return await ContactCenterRepository(session).active_block(number, utcnow()) is not None
