"""The agent desktop's business rules: the agent's state with reason codes, offers accepted or
declined, call controls (hold, transfer, three-way call, hang up), wrap-up with a code and notes,
the tenant's code lists, and the screen pop. No HTTP here: routes call these with a session
under the acting tenant's scope.

What the carrier must do (hold music, a queue, a conference, hanging up) it is told through the
gateway's call control before the change commits: a carrier that refuses leaves nothing changed
(see `telephony_gateway.service.control_call`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import structlog
from sqlmodel.ext.asyncio.session import AsyncSession

from contact_center import seating, service
from contact_center.models import (
    AgentState,
    AgentStatus,
    Call,
    CallOffer,
    CallStatus,
    DeskCode,
    DeskCodeKind,
    Queue,
)
from contact_center.repository import ContactCenterRepository
from customers.schemas import CallerCard
from customers.service import caller_card
from depotline.auth import Principal
from depotline.db import require_tenant, utcnow
from depotline.errors import Conflict, InvalidInput, NotFound
from telephony_gateway import service as gateway
from telephony_gateway.commands import (
    Command,
    Conference,
    ConnectAgent,
    Enqueue,
    Hangup,
    Hold,
    PlaceCall,
    Unsupported,
)
from telephony_gateway.providers.base import CarrierRefused
from telephony_gateway.providers.registry import Providers
from telephony_gateway.service import e164
from tenant.repository import TenantRepository
from tenant.service import audit, record_client_data_read

log = structlog.get_logger(__name__)

#: What agents choose from until their tenant defines its own (English; the pages translate).
DEFAULT_CODES: dict[DeskCodeKind, tuple[str, ...]] = {
    DeskCodeKind.NOT_READY: ("Break", "Lunch", "Training", "Meeting", "Coaching", "Admin work"),
    DeskCodeKind.WRAP_UP: (
        "Resolved",
        "Pickup booked",
        "Parcel enquiry",
        "Complaint filed",
        "Callback needed",
        "Wrong number",
    ),
}
MAX_LABEL = 60
MAX_NOTES = 2000
MAX_TRANSFER_NOTE = 500
RECENT_CONTACTS = 5
MANAGERS = frozenset({"tenant_admin", "supervisor"})
#: The caller's language as the IVR tags it, in words.
LANGUAGES = {"cmn-CN": "Mandarin", "yue-HK": "Cantonese", "en-US": "English"}


def agent_endpoint(user_id: UUID) -> str:
    """How the carrier reaches an agent (their softphone's identity)."""
    return f"agent:{user_id}"


async def _tell_carrier(
    session: AsyncSession, providers: Providers, call: Call, *commands: Command
) -> None:
    """The carrier carries out `commands` on the call now; a refusal undoes the desk's change
    (the transaction rolls back) and tells the agent why."""
    try:
        for command in commands:
            await gateway.control_call(
                session,
                providers,
                number=call.to_number,
                call_id=call.provider_call_id,
                command=command,
            )
    except (Unsupported, CarrierRefused) as refused:
        raise Conflict(f"The carrier refused: {refused}") from None


# -- codes --------------------------------------------------------------------------------------
def code_kind(value: str) -> DeskCodeKind:
    try:
        return DeskCodeKind(value)
    except ValueError:
        raise InvalidInput("Not ready reasons or wrap-up codes", field="kind") from None


async def code_labels(session: AsyncSession, kind: DeskCodeKind) -> list[str]:
    """The tenant's own codes of a kind, or the defaults while it has none."""
    own = await ContactCenterRepository(session).desk_codes(kind)
    return [code.label for code in own] if own else list(DEFAULT_CODES[kind])


async def own_codes(session: AsyncSession, kind: DeskCodeKind) -> Sequence[DeskCode]:
    return await ContactCenterRepository(session).desk_codes(kind)


async def add_code(session: AsyncSession, actor: Principal, kind: str, label: str) -> DeskCode:
    chosen = code_kind(kind)
    text = " ".join(label.split())
    if not text:
        raise InvalidInput("A code needs a label", field="label")
    if len(text) > MAX_LABEL:
        raise InvalidInput("At most 60 characters", field="label")
    repo = ContactCenterRepository(session)
    if any(code.label == text for code in await repo.desk_codes(chosen)):
        raise Conflict("That code exists already", field="label")
    code = DeskCode(kind=chosen, label=text, position=await repo.next_desk_code_position(chosen))
    repo.add(code)
    await repo.flush()
    audit(session, actor, "desk_code.add", record_type="desk_code", record_id=code.id, label=text)
    return code


async def retire_code(session: AsyncSession, actor: Principal, code_id: UUID) -> DeskCode:
    repo = ContactCenterRepository(session)
    code = await repo.desk_code(code_id)
    if code is None or not code.active:
        raise NotFound("No such code")
    code.active = False
    repo.add(code)
    audit(session, actor, "desk_code.retire", record_type="desk_code", record_id=code.id)
    return code


# -- the agent's state ----------------------------------------------------------------------------
async def change_status(
    session: AsyncSession,
    user_id: UUID,
    home_tenant_id: UUID,
    status: str,
    reason: str | None = None,
    *,
    reason_checked: bool = False,
) -> list[service.Offer]:
    """Ready, not ready (with one of the tenant's reasons) or signed out; the agent joins the
    tenant's floor first if they are not on it. `reason_checked`: the reason is one of another
    floor's the agent serves, given once for all of them."""
    try:
        chosen = AgentStatus(status)
    except ValueError:
        raise InvalidInput("Ready, not ready or signed out", field="status") from None
    if chosen == AgentStatus.NOT_READY:
        known = reason_checked or reason in await code_labels(session, DeskCodeKind.NOT_READY)
        if not reason or not known:
            raise InvalidInput("Choose why you are not ready", field="reason")
    else:
        reason = None
    await service.agent_signs_in(session, user_id, home_tenant_id)
    return await service.set_status(session, user_id, chosen, reason)


async def set_auto_answer(
    session: AsyncSession, user_id: UUID, home_tenant_id: UUID, on: bool
) -> AgentState:
    agent = await service.agent_signs_in(session, user_id, home_tenant_id)
    agent.auto_answer = on
    session.add(agent)
    return agent


async def leave_floor(session: AsyncSession, user_id: UUID) -> None:
    """Signed out of this tenant's floor (the agent moves to another seat). Not mid-call."""
    agent = await ContactCenterRepository(session).agent(user_id)
    if agent is not None and agent.status != AgentStatus.SIGNED_OUT:
        await service.set_status(session, user_id, AgentStatus.SIGNED_OUT)


async def call_exists(session: AsyncSession, call_id: UUID) -> bool:
    """Whether the call is one of the acting tenant's (row-level security hides the rest)."""
    return await ContactCenterRepository(session).get_call(call_id) is not None


# -- offers -------------------------------------------------------------------------------------
async def accept(session: AsyncSession, user_id: UUID, call_id: UUID) -> Call:
    repo = ContactCenterRepository(session)
    await repo.lock_routing(require_tenant())
    if await repo.get_call(call_id) is None:
        raise NotFound("No such call")
    return await service.accept(session, user_id, call_id)


async def decline(session: AsyncSession, user_id: UUID, call_id: UUID) -> list[service.Offer]:
    """The call goes to the next free agent, keeping its place in line; the agent who declined
    is not ready (a declined call would otherwise come straight back)."""
    repo = ContactCenterRepository(session)
    await repo.lock_routing(require_tenant())
    if await repo.get_call(call_id) is None:
        raise NotFound("No such call")
    if await repo.open_offer(call_id, user_id) is None:
        raise Conflict("This call is no longer offered to you")
    return await service.release_offer(session, call_id, user_id, "declined")


# -- call controls --------------------------------------------------------------------------------
async def _my_call(
    session: AsyncSession, user_id: UUID, call_id: UUID
) -> tuple[ContactCenterRepository, AgentState, Call]:
    """The call this agent is on, locked (the routing lock first, as routing takes them)."""
    repo = ContactCenterRepository(session)
    await repo.lock_routing(require_tenant())
    call = await repo.get_call(call_id, lock=True)
    if call is None:
        raise NotFound("No such call")
    agent = await repo.agent(user_id, lock=True)
    if agent is None or call.agent_id != user_id or call.status != CallStatus.ON_CALL:
        raise Conflict("You are not on that call")
    return repo, agent, call


def _stop_hold(call: Call, now: datetime) -> None:
    if call.held_since is not None:
        call.hold_seconds += int((now - call.held_since).total_seconds())
        call.held_since = None


async def hold(session: AsyncSession, providers: Providers, user_id: UUID, call_id: UUID) -> Call:
    repo, _, call = await _my_call(session, user_id, call_id)
    if call.held_since is not None:
        raise Conflict("The caller is on hold already")
    call.held_since = utcnow()
    repo.add(call)
    await _tell_carrier(session, providers, call, Hold())
    return call


async def resume(session: AsyncSession, providers: Providers, user_id: UUID, call_id: UUID) -> Call:
    repo, _, call = await _my_call(session, user_id, call_id)
    if call.held_since is None:
        raise Conflict("The caller is not on hold")
    _stop_hold(call, utcnow())
    repo.add(call)
    await _tell_carrier(session, providers, call, ConnectAgent(agent_endpoint(user_id)))
    return call


async def hang_up(
    session: AsyncSession, providers: Providers, user_id: UUID, call_id: UUID
) -> Call:
    """The agent ends the call (for everyone on it) and goes to wrap-up. A carrier that cannot
    be told (no call control) still has its call ended here: the agent is free either way."""
    repo = ContactCenterRepository(session)
    await repo.lock_routing(require_tenant())
    if await repo.get_call(call_id) is None:
        raise NotFound("No such call")
    call = await service.agent_hangs_up(session, user_id, call_id)
    try:
        await _tell_carrier(session, providers, call, Hangup())
    except Conflict as refused:
        log.warning("hang-up not carried out by the carrier", reason=refused.detail)
    return call


def _note(note: str | None) -> str | None:
    text = (note or "").strip()
    if len(text) > MAX_TRANSFER_NOTE:
        raise InvalidInput("A transfer note is at most 500 characters", field="note")
    return text or None


async def _hand_over(
    session: AsyncSession, agent: AgentState, call: Call, to: str, note: str | None
) -> None:
    """The agent's part of the call ends (kept in its legs) and the agent goes to wrap-up;
    the call, its IVR path and its caller go on to the next agent."""
    now = utcnow()
    _stop_hold(call, now)
    await service.start_wrap_up(session, agent, call)
    leg_start = call.agent_answered_at or call.answered_at
    call.legs = [
        *call.legs,
        {
            "agent_id": str(agent.user_id),
            "answered_at": leg_start.isoformat() if leg_start else None,
            "ended_at": now.isoformat(),
            "how": "transferred",
            "to": to,
            "note": note,
        },
    ]
    call.transferred_from, call.transfer_note = agent.user_id, note
    call.agent_id = call.agent_answered_at = None
    call.conference_with = call.conference_since = None
    session.add(call)


async def transfer_to_queue(
    session: AsyncSession,
    providers: Providers,
    user_id: UUID,
    call_id: UUID,
    queue_id: UUID,
    note: str | None = None,
) -> list[service.Offer]:
    """The caller waits in `queue` (ahead of later callers: the call keeps its queue time)."""
    text = _note(note)
    repo, agent, call = await _my_call(session, user_id, call_id)
    queue = await repo.get_queue(queue_id)
    if queue is None:
        raise InvalidInput("No such queue", field="queue_id")
    await _tell_carrier(session, providers, call, Enqueue(queue.name))
    await _hand_over(session, agent, call, f"queue:{queue.name}", text)
    return await service.enqueue(session, call, queue)


async def transfer_to_agent(
    session: AsyncSession,
    providers: Providers,
    user_id: UUID,
    call_id: UUID,
    target_id: UUID,
    note: str | None = None,
) -> service.Offer:
    """The call is offered to one ready agent; declined or unanswered, it goes back to its queue
    and on to the next free agent there."""
    text = _note(note)
    if target_id == user_id:
        raise InvalidInput("Choose another agent", field="agent_id")
    repo, agent, call = await _my_call(session, user_id, call_id)
    target = await repo.agent(target_id, lock=True)
    if target is None or target.tenant_id != call.tenant_id:
        raise InvalidInput("No such agent", field="agent_id")
    if target.status != AgentStatus.READY or not await seating.offerable(session, target):
        raise Conflict("That agent is not ready to take a call", field="agent_id")
    queue = await repo.get_queue(call.queue_id) if call.queue_id else None
    if queue is None:
        raise Conflict("This call has no queue to fall back to", field="agent_id")
    await _tell_carrier(session, providers, call, Hold())  # music until the other agent answers
    await _hand_over(session, agent, call, agent_endpoint(target_id), text)
    return await service.offer_call(session, call, target, queue)


async def conference(
    session: AsyncSession, providers: Providers, user_id: UUID, call_id: UUID, number: str
) -> Call:
    """A three-way call: the caller, the agent and a third party (a depot, a courier, a
    colleague) dialled at `number`."""
    third = e164(number, field="number")
    repo, _, call = await _my_call(session, user_id, call_id)
    if call.conference_with is not None:
        raise Conflict("This call has a third party already", field="number")
    now = utcnow()
    _stop_hold(call, now)  # everyone hears everyone in the conference
    call.conference_with, call.conference_since = third, now
    repo.add(call)
    await _tell_carrier(
        session,
        providers,
        call,
        Conference(f"call-{call.id}"),
        PlaceCall(from_number=call.to_number, to_number=third),
    )
    return call


# -- wrap-up --------------------------------------------------------------------------------------
async def wrap_up(
    session: AsyncSession, user_id: UUID, call_id: UUID, code: str, notes: str = ""
) -> list[service.Offer]:
    """The agent's wrap-up code and notes for a call they handled (or their part of it, before a
    transfer). During wrap-up this ends it: the agent is ready, and routed, at once."""
    if code not in await code_labels(session, DeskCodeKind.WRAP_UP):
        raise InvalidInput("Choose a wrap-up code", field="code")
    text = notes.strip()
    if len(text) > MAX_NOTES:
        raise InvalidInput("Notes are at most 2,000 characters", field="notes")
    repo = ContactCenterRepository(session)
    await repo.lock_routing(require_tenant())
    call = await repo.get_call(call_id, lock=True)
    if call is None:
        raise NotFound("No such call")
    mine = [i for i, leg in enumerate(call.legs) if leg.get("agent_id") == str(user_id)]
    now = utcnow()
    if call.agent_id == user_id:
        if call.status == CallStatus.ON_CALL:
            raise Conflict("Hang up before wrapping up")
        if call.status == CallStatus.OFFERED:
            raise Conflict("This call is still being offered to you")
        call.wrap_up_code, call.wrap_up_notes, call.wrapped_up_at = code, text or None, now
    elif mine:
        legs = [dict(leg) for leg in call.legs]
        legs[mine[-1]].update(wrap_up_code=code, wrap_up_notes=text or None)
        call.legs = legs
    else:
        raise NotFound("No such call")
    repo.add(call)
    agent = await repo.agent(user_id, lock=True)
    if agent is not None and agent.status == AgentStatus.WRAP_UP:
        return await service.wrap_up_done(session, user_id, call.id)
    return []


# -- what the desktop shows -----------------------------------------------------------------------
@dataclass(frozen=True)
class DeskState:
    """The agent's desk in the acting tenant, as the server knows it: what a desktop shows on
    (re)load, whatever events it missed."""

    agent: AgentState | None
    tenant_id: UUID | None = None  # the floor
    offer: CallOffer | None = None
    offer_expires_at: datetime | None = None
    call: Call | None = None  # answered and in progress
    wrap_up_call: Call | None = None  # the call to wrap up
    wrap_up_ends_at: datetime | None = None
    queues: Sequence[Queue] = ()

    @property
    def busy(self) -> bool:
        """A call is offered, in progress or being wrapped up on this floor."""
        return bool(self.offer or self.call or self.wrap_up_call)

    def as_json(self) -> dict[str, Any]:
        agent, call, wrap = self.agent, self.call, self.wrap_up_call
        return {
            "tenant_id": str(self.tenant_id) if self.tenant_id else None,
            "status": str(agent.status) if agent else str(AgentStatus.SIGNED_OUT),
            "reason": agent.reason if agent else None,
            "since": _iso(agent.since) if agent else None,
            "auto_answer": agent.auto_answer if agent else False,
            "offer": {
                "call_id": str(self.offer.call_id),
                "offer_id": str(self.offer.id),
                "offered_at": _iso(self.offer.offered_at),
                "expires_at": _iso(self.offer_expires_at),
            }
            if self.offer
            else None,
            "call": {
                "call_id": str(call.id),
                "answered_at": _iso(call.agent_answered_at or call.answered_at),
                "held": call.held_since is not None,
                "held_since": _iso(call.held_since),
                "conference_with": call.conference_with,
            }
            if call
            else None,
            "wrap_up": {
                "call_id": str(wrap.id),
                "ends_at": _iso(self.wrap_up_ends_at),
                "code": wrap.wrap_up_code,
            }
            if wrap
            else None,
            "server_time": _iso(utcnow()),
        }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


async def desk_state(session: AsyncSession, user_id: UUID) -> DeskState:
    """The agent's desk on the scoped tenant's floor."""
    repo = ContactCenterRepository(session)
    floor = require_tenant()
    agent = await repo.agent(user_id)
    queues = await repo.queues()
    if agent is None:
        return DeskState(agent=None, tenant_id=floor, queues=queues)
    by_id = {queue.id: queue for queue in queues}
    current = await repo.get_call(agent.current_call_id) if agent.current_call_id else None
    if current is not None and current.agent_id == user_id:
        queue = by_id.get(current.queue_id) if current.queue_id else None
        if current.status == CallStatus.OFFERED:
            offer = await repo.open_offer(current.id, user_id)
            if offer is not None:
                seconds = queue.reservation_seconds if queue else 0
                expires = offer.offered_at + timedelta(seconds=seconds)
                return DeskState(agent, floor, offer, expires, queues=queues)
        elif current.status == CallStatus.ON_CALL:
            return DeskState(agent, floor, call=current, queues=queues)
    if agent.status == AgentStatus.WRAP_UP and agent.last_call_id is not None:
        wrap = await repo.get_call(agent.last_call_id)
        if wrap is not None:
            queue = by_id.get(wrap.queue_id) if wrap.queue_id else None
            ends = agent.since + timedelta(seconds=queue.wrap_up_seconds if queue else 0)
            return DeskState(agent, floor, wrap_up_call=wrap, wrap_up_ends_at=ends, queues=queues)
    return DeskState(agent, floor, queues=queues)


async def transfer_targets(session: AsyncSession, user_id: UUID) -> list[tuple[UUID, str]]:
    """Ready agents of the tenant who may take a call (not the agent asking), by name."""
    agents = [
        a for a in await ContactCenterRepository(session).ready_agents() if a.user_id != user_id
    ]
    names = await TenantRepository(session).users_by_ids([a.user_id for a in agents])
    return [
        (a.user_id, names[a.user_id].name if a.user_id in names else str(a.user_id)) for a in agents
    ]


# -- the screen pop -------------------------------------------------------------------------------
@dataclass(frozen=True)
class IvrStep:
    node: str
    keys: str | None  # what the caller pressed there; None where they only passed through


@dataclass(frozen=True)
class ScreenPop:
    call: Call
    tenant_name: str
    tenant_hue: int  # a colour of the tenant's own, so an agent serving several sees whose call
    queue_name: str | None
    language: str | None
    ivr_steps: list[IvrStep]
    ivr_values: dict[str, str]
    caller: CallerCard
    transferred_by: str | None = None
    transfer_note: str | None = None
    earlier_agents: list[str] = field(default_factory=list)
    timezone: str = "UTC"  # the tenant's: times are shown as its people live them

    def local(self, moment: datetime) -> str:
        try:
            zone = ZoneInfo(self.timezone)
        except (ValueError, ZoneInfoNotFoundError):
            zone = ZoneInfo("UTC")
        return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M")


def _steps(path: list[list[Any]]) -> list[IvrStep]:
    """The nodes the caller passed and the keys pressed there: a node entered and then
    answered is one step."""
    steps: list[IvrStep] = []
    for node, keys in path:
        if steps and steps[-1].node == str(node) and steps[-1].keys is None:
            steps[-1] = IvrStep(str(node), keys)
        else:
            steps.append(IvrStep(str(node), keys))
    return steps


def _may_see(actor: Principal, call: Call) -> bool:
    if actor.user_id is None:
        return False
    if call.agent_id == actor.user_id:
        return True
    if any(leg.get("agent_id") == str(actor.user_id) for leg in call.legs):
        return True
    return actor.role in MANAGERS or actor.is_platform_admin


async def screen_pop(
    session: AsyncSession,
    actor: Principal,
    call_id: UUID,
    *,
    language: str = "en",
    ip: str | None = None,
) -> ScreenPop:
    """Who is calling, for the agent the call is offered to or who is on it: the tenant, the
    IVR path and keys, and the caller's profile with recent contacts (or the number's region
    and carrier). Each one read by someone from another tenant (an operator's agent) goes to
    the client's audit log. Another tenant's call, or one this agent has nothing to do with,
    does not exist."""
    repo = ContactCenterRepository(session)
    call = await repo.get_call(call_id)
    if call is None or not _may_see(actor, call):
        raise NotFound("No such call")
    tenants = TenantRepository(session)
    tenant = await tenants.get_tenant(call.tenant_id)
    queue = await repo.get_queue(call.queue_id) if call.queue_id else None
    try:
        card = await caller_card(
            session, call.from_number, recent=RECENT_CONTACTS, language=language
        )
    except InvalidInput:  # a withheld or malformed number: nothing to look up
        card = CallerCard(number=call.from_number, customer_id=None, name=None, tier=None)
    if card.customer_id is not None:
        record_client_data_read(session, actor, "customer", card.customer_id, ip)
    else:
        record_client_data_read(session, actor, "call", call.id, ip)
    path = (call.ivr_path or {}).get("path", [])
    values = (call.ivr_path or {}).get("variables", {})
    names: dict[str, str] = {}
    for leg in call.legs:
        user = await tenants.get_user(UUID(leg["agent_id"]))
        names[leg["agent_id"]] = user.name if user else leg["agent_id"]
    by = names.get(str(call.transferred_from)) if call.transferred_from else None
    return ScreenPop(
        call=call,
        tenant_name=tenant.name if tenant else "",
        tenant_hue=int(call.tenant_id.hex[:6], 16) % 360,
        queue_name=queue.name if queue else None,
        language=LANGUAGES.get(call.language or "", call.language),
        ivr_steps=_steps(path),
        ivr_values={str(k): str(v) for k, v in values.items()},
        caller=card,
        transferred_by=by,
        transfer_note=call.transfer_note,
        earlier_agents=list(dict.fromkeys(names.values())),
        timezone=tenant.timezone if tenant else "UTC",
    )
