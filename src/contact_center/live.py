"""What agents and supervisors see change, pushed as it happens (see depotline.realtime).

Every change of an agent's state, a call's state or an offer is noticed where it is written, at
the flush, whichever code path made it (routing, the desk, a supervisor, a timer, the caller
hanging up), and pushed once the transaction commits, by the process that committed it. Routing
writes a call joining a line and an offer in one SQL statement, not through a flush: it pushes
them itself (`joined`, `offered`), the same events.

agent channel ("agent:<user id>"), the agent's desktop:
  offer            {tenant_id, call_id, offer_id, offered_at}: a call is offered
  offer_withdrawn  {tenant_id, call_id, offer_id, reason}: declined, timed out, caller hung up
  call_state       {tenant_id, call_id, state, held, conference_with}: answered, on hold,
                   resumed, three-way, ended, or "transferred" (to the agent it left)
  status           {tenant_id, status, reason, since, call_id, last_call_id, auto_answer}

floor channel ("floor:<tenant id>"), the supervisor console:
  agent            {tenant_id, user_id, status, reason, since, call_id}
  call             {tenant_id, call_id, queue_id, agent_id, state, at}, state one of
                   ivr, queued, offered, answered, ended, abandoned

Payloads carry identifiers and states only, never a caller's data: a desktop fetches the screen
pop through the app, where the tenancy rule and the audit log apply.

An offer is also pushed by the OFFERED outbox handler (`push_offer`), with the same once-key, so
it reaches the agent even if the committing process died before its push went out.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from redis.asyncio import Redis
from sqlalchemy import event, inspect
from sqlalchemy.orm import Session, UOWTransaction
from sqlmodel.ext.asyncio.session import AsyncSession

from contact_center.models import AgentState, Call, CallOffer, CallStatus
from depotline import realtime

#: What the floor calls each call status.
CALL_STATES = {
    CallStatus.IVR: "ivr",
    CallStatus.QUEUED: "queued",
    CallStatus.OFFERED: "offered",
    CallStatus.ON_CALL: "answered",
    CallStatus.ENDED: "ended",
    CallStatus.ABANDONED: "abandoned",
}
AGENT_FIELDS = ("status", "reason", "current_call_id", "auto_answer")
CALL_FIELDS = ("status", "agent_id", "held_since", "conference_with")


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _changed(row: object, fields: tuple[str, ...]) -> bool:
    state = inspect(row)
    return any(state.attrs[name].history.has_changes() for name in fields)


def offer_event(offer: CallOffer) -> dict[str, Any]:
    return _offer_event(offer.tenant_id, offer.call_id, offer.id, offer.offered_at)


def _offer_event(
    tenant_id: UUID, call_id: UUID, offer_id: UUID, offered_at: datetime | None
) -> dict[str, Any]:
    return {
        "tenant_id": str(tenant_id),
        "call_id": str(call_id),
        "offer_id": str(offer_id),
        "offered_at": _iso(offered_at),
    }


def call_state(call: Call) -> str:
    if call.status == CallStatus.ON_CALL:
        if call.held_since is not None:
            return "held"
        return "conference" if call.conference_with else "on_call"
    return str(call.status)


async def push_offer(redis: Redis, offer: CallOffer) -> str:
    """The offer to the agent's desktop, now (the outbox handler's path)."""
    return await realtime.publish(
        redis,
        realtime.agent_channel(offer.agent_id),
        "offer",
        offer_event(offer),
        once=f"offer:{offer.id}",
    )


def offered(session: Session | AsyncSession, agent: AgentState, call: Call, offer_id: UUID) -> None:
    """An offer that routing wrote in one statement, not through a flush (which `_notice` would
    have seen): the same pushes, at commit."""
    channel = realtime.agent_channel(agent.user_id)
    event = _offer_event(call.tenant_id, call.id, offer_id, call.offered_at)
    realtime.after_commit(session, channel, "offer", event, once=f"offer:{offer_id}")
    _agent_changed(session, agent, floor=True)
    _call_floor(session, call)


def joined(
    session: Session | AsyncSession, call: Call, queue_id: UUID, queued_at: datetime
) -> None:
    """A call joining a line, which routing writes in its own statement (not through a flush):
    the floor sees it waiting (and then offered, if it is offered at once)."""
    _call_floor(session, call, CallStatus.QUEUED, queue_id, queued_at)


def _agent_changed(
    session: Session | AsyncSession, agent: AgentState, *, floor: bool = False
) -> None:
    base = {
        "tenant_id": str(agent.tenant_id),
        "status": str(agent.status),
        "reason": agent.reason,
        "since": _iso(agent.since),
        "call_id": str(agent.current_call_id) if agent.current_call_id else None,
    }
    realtime.after_commit(
        session,
        realtime.agent_channel(agent.user_id),
        "status",
        {
            **base,
            "last_call_id": str(agent.last_call_id) if agent.last_call_id else None,
            "auto_answer": agent.auto_answer,
        },
    )
    if floor or _changed(agent, ("status", "reason", "current_call_id")):
        realtime.after_commit(
            session,
            realtime.floor_channel(agent.tenant_id),
            "agent",
            {**base, "user_id": str(agent.user_id)},
        )


def _call_changed(session: Session, call: Call) -> None:
    state = inspect(call)
    if state.attrs["status"].history.has_changes():
        _call_floor(session, call)
    payload = {"tenant_id": str(call.tenant_id), "call_id": str(call.id)}
    # The agent who transferred the call away is told so (an offer withdrawn is an offer's
    # event); the agent it goes to gets an offer.
    for earlier in state.attrs["agent_id"].history.deleted or ():
        if earlier is not None and earlier == call.transferred_from != call.agent_id:
            realtime.after_commit(
                session,
                realtime.agent_channel(earlier),
                "call_state",
                {**payload, "state": "transferred", "held": False, "conference_with": None},
            )
    if call.agent_id is not None and call.status in (CallStatus.ON_CALL, CallStatus.ENDED):
        realtime.after_commit(
            session,
            realtime.agent_channel(call.agent_id),
            "call_state",
            {
                **payload,
                "state": call_state(call),
                "held": call.held_since is not None,
                "conference_with": call.conference_with,
            },
        )


def _call_floor(
    session: Session | AsyncSession,
    call: Call,
    status: CallStatus | None = None,
    queue_id: UUID | None = None,
    queued_at: datetime | None = None,
) -> None:
    """The floor's call event; `status`, `queue_id`, `queued_at`: values not on `call` yet."""
    status = CallStatus(status or call.status)
    queue_id, queued_at = queue_id or call.queue_id, queued_at or call.queued_at
    realtime.after_commit(
        session,
        realtime.floor_channel(call.tenant_id),
        "call",
        {
            "tenant_id": str(call.tenant_id),
            "call_id": str(call.id),
            "queue_id": str(queue_id) if queue_id else None,
            "agent_id": str(call.agent_id) if call.agent_id else None,
            "state": CALL_STATES.get(status, str(status)),
            "at": _iso(call.ended_at or call.answered_at or call.offered_at or queued_at),
        },
    )


def _offer_changed(session: Session, offer: CallOffer, *, new: bool) -> None:
    channel = realtime.agent_channel(offer.agent_id)
    if new and offer.outcome is None:
        realtime.after_commit(
            session, channel, "offer", offer_event(offer), once=f"offer:{offer.id}"
        )
    elif offer.outcome not in (None, "accepted") and _changed(offer, ("outcome",)):
        realtime.after_commit(
            session,
            channel,
            "offer_withdrawn",
            {**offer_event(offer), "reason": offer.outcome},
        )


@event.listens_for(Session, "after_flush")
def _notice(session: Session, flush_context: UOWTransaction) -> None:
    # In after_flush the rows' histories still hold what this flush wrote.
    for row in session.new:
        if isinstance(row, AgentState):
            _agent_changed(session, row)
        elif isinstance(row, Call):
            _call_changed(session, row)
        elif isinstance(row, CallOffer):
            _offer_changed(session, row, new=True)
    for row in session.dirty:
        if isinstance(row, AgentState) and _changed(row, AGENT_FIELDS):
            _agent_changed(session, row)
        elif isinstance(row, Call) and _changed(row, CALL_FIELDS):
            _call_changed(session, row)
        elif isinstance(row, CallOffer):
            _offer_changed(session, row, new=False)
