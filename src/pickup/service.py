"""Business rules of pickup and delivery: booking (rules, duplicates, idempotency, numbers),
the order lifecycle, dispatch to depots by zone and capacity, depots' answers, exceptions and
the reports feed. No HTTP here: routes, jobs, the IVR (and SMS replies) call these.

Contract for notifications and tracking
=======================================

Every function takes a session whose tenant scope includes the order's tenant (a job handler
runs under the event's tenant; a webhook under the number's tenant) and an `Actor` (`by`) that is
written into the order's timeline: `Actor.of(principal)`, `Actor.depot_sms(depot, phone)`,
`Actor.system("what")`.

Events (outbox topics; the outbox event's tenant_id is the order's tenant; ids are strings):

``pickup.order_booked`` (ORDER_BOOKED), after a booking commits. Dispatch runs from it.
    {"order_id", "number", "confirmation_code", "contact_phone" (E.164 or null), "language"
    (en | zh_Hans | zh_Hant), "notify_sms" (bool), "tracking_token"}
``pickup.depot_assigned`` (DEPOT_ASSIGNED), dispatch offered the order to a depot.
    {"order_id", "number", "ref" (int: the order's `seq`, what a depot answers with:
    "Y 123" / "N 123 reason"), "depot_id", "assignment_id", "redispatch" (bool: a depot
    rejected it before), "depot_told" (bool: the depot's SMS was queued in the dispatch's own
    transaction, as for a new booking)}. Unless told, SMS the depot's `sms_contacts` in
    `depot.language`; for a reminder on silence publish a delayed event and ask
    `waiting_assignment(session, assignment_id)`.
``pickup.depot_answered`` (DEPOT_ANSWERED)
    {"order_id", "number", "depot_id", "assignment_id", "accepted" (bool), "reason"}
``pickup.status_changed`` (STATUS_CHANGED), every change of status after booking,
    dispatch's included: {"order_id", "number", "from", "to", "at" (ISO 8601), "by_kind",
    "by_name", "reason", "attempt" (int or null), "driver_name"}
``pickup.exception`` (EXCEPTION_RAISED), no depot can take the order (unserviceable):
    {"order_id", "number", "reason"}; staff see it on the exceptions list.
``pickup.window_moved`` (WINDOW_MOVED), an order's window moved before its visit (after a
    failed attempt it is a status change to rescheduled instead): {"order_id", "number",
    "change_id" (the timeline entry), "depot_id" (or null), "before", "after", "reason"}
``customers.contact`` (CUSTOMER_CONTACT), for the customer timeline, on booking:
    {"phone", "kind": "order", "ref": order id, "summary", "direction": "inbound", "at"}

Functions (each raises NotFound for an order the actor may not see, Conflict for a change the
lifecycle does not allow, InvalidInput naming the field):

- `get_order`, `order_by_number`, `timeline(session, order_id)`
- `order_for_depot_reply(session, phone, ref) -> (order, depot)`: the order a depot means by
  "123", found through the depot whose `sms_contacts` hold `phone`
- `depot_accepts(session, order_id, by)`, `depot_rejects(session, order_id, by, reason)`:
  a rejection re-dispatches at once, never to a depot that rejected the order
- `record_status(session, order_id, to_status, by, reason="", driver_name=None)`: a depot's
  report (driver assigned, en route, picked up, attempt failed (needs a reason), out for
  delivery, delivered, cancelled to confirm a cancel request)
- `request_cancel(session, order_id, by, reason) -> CancelOutcome`,
  `reschedule(session, order_id, by, start, end, reason)`
- `note(session, order_id, by, text, **detail)`: a timeline line (e.g. "SMS sent to depot");
  `note_on(session, order, ...)` for an order already at hand
- `waiting_assignment(session, assignment_id)`: the offer, while still unanswered and current

Columns they read: `Order.tracking_token` (unique platform-wide; the tracking page needs its own
way to find the tenant, since the page has no tenant scope), `contact_phone`, `language`,
`notify_sms`, `number`, `seq`, `confirmation_code`, `window_start`/`window_end` (UTC) with
`timezone`, `status`, `depot_id`, `driver_name`; `Depot.sms_contacts`, `Depot.language`,
`Depot.code`, `Depot.name`.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from shapely.geometry import Point, mapping, shape
from shapely.ops import unary_union
from sqlmodel.ext.asyncio.session import AsyncSession

from depotline import outbox
from depotline.auth import Principal
from depotline.db import require_tenant, utcnow
from depotline.errors import Conflict, DomainError, InvalidInput, NotFound, Term
from pickup.models import (
    OPEN_STATUSES,
    Assignment,
    Depot,
    DepotKey,
    DepotUser,
    Order,
    OrderEvent,
    OrderKind,
    OrderStatus,
    Payment,
    PickupSettings,
    Zone,
)
from pickup.repository import OrderFilter, PickupRepository
from pickup.schemas import LANGUAGES, DepotIn, OrderIn, PartyIn, SettingsIn, ZoneIn
from telephony_gateway.service import e164

ORDER_BOOKED = "pickup.order_booked"
DEPOT_ASSIGNED = "pickup.depot_assigned"
DEPOT_ANSWERED = "pickup.depot_answered"
STATUS_CHANGED = "pickup.status_changed"
EXCEPTION_RAISED = "pickup.exception"
WINDOW_MOVED = "pickup.window_moved"
CUSTOMER_CONTACT = "customers.contact"

S = OrderStatus
#: The lifecycle. Kind and phase narrow it further (`allowed_next`).
TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    S.BOOKED: frozenset({S.DEPOT_ASSIGNED, S.UNSERVICEABLE, S.CANCELLED}),
    S.DEPOT_ASSIGNED: frozenset(
        {
            S.BOOKED,  # the depot rejected it: dispatch again
            S.DRIVER_ASSIGNED,
            S.EN_ROUTE,
            S.PICKED_UP,
            S.OUT_FOR_DELIVERY,
            S.ATTEMPT_FAILED,
            S.CANCELLED,
        }
    ),
    S.DRIVER_ASSIGNED: frozenset(
        {S.EN_ROUTE, S.PICKED_UP, S.OUT_FOR_DELIVERY, S.ATTEMPT_FAILED, S.CANCEL_REQUESTED}
    ),
    S.EN_ROUTE: frozenset({S.PICKED_UP, S.ATTEMPT_FAILED, S.CANCEL_REQUESTED}),
    S.PICKED_UP: frozenset({S.OUT_FOR_DELIVERY}),
    S.OUT_FOR_DELIVERY: frozenset({S.DELIVERED, S.ATTEMPT_FAILED}),
    S.ATTEMPT_FAILED: frozenset({S.RESCHEDULED, S.FAILED, S.CANCELLED}),
    S.RESCHEDULED: frozenset(
        {
            S.DRIVER_ASSIGNED,
            S.EN_ROUTE,
            S.PICKED_UP,
            S.OUT_FOR_DELIVERY,
            S.ATTEMPT_FAILED,
            S.CANCEL_REQUESTED,
            S.CANCELLED,
        }
    ),
    # The driver was on the way: the depot confirms the cancellation, or had the parcel already.
    S.CANCEL_REQUESTED: frozenset({S.CANCELLED, S.PICKED_UP, S.ATTEMPT_FAILED}),
    S.UNSERVICEABLE: frozenset({S.BOOKED, S.DEPOT_ASSIGNED, S.CANCELLED}),
    S.DELIVERED: frozenset(),
    S.FAILED: frozenset(),
    S.CANCELLED: frozenset(),
}
#: What a depot (or staff on its behalf) reports with `record_status`; the rest have their own
#: functions (dispatch, cancel, reschedule).
REPORTED = frozenset(
    {
        S.DRIVER_ASSIGNED,
        S.EN_ROUTE,
        S.PICKED_UP,
        S.OUT_FOR_DELIVERY,
        S.DELIVERED,
        S.ATTEMPT_FAILED,
        S.FAILED,
        S.CANCELLED,
    }
)
#: Cancelled at once: nobody is on the way yet.
CANCEL_AT_ONCE = frozenset(
    {S.BOOKED, S.DEPOT_ASSIGNED, S.UNSERVICEABLE, S.ATTEMPT_FAILED, S.RESCHEDULED}
)
#: A driver is on the way: the depot must confirm.
CANCEL_ASKS_DEPOT = frozenset({S.DRIVER_ASSIGNED, S.EN_ROUTE})
WINDOW_STEP = timedelta(minutes=15)


# -- who acts -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Actor:
    """Who or what makes a change; written into the timeline."""

    kind: str  # user | api_key | depot | sms | ivr | system
    name: str
    user_id: UUID | None = None
    #: A depot's own people may touch only their depots' orders; None: not restricted.
    depot_ids: frozenset[UUID] | None = None

    @classmethod
    def of(cls, principal: Principal, depot_ids: Iterable[UUID] = ()) -> Actor:
        is_depot = principal.role == "depot_user"
        kind = "depot" if is_depot else ("api_key" if principal.via == "api_key" else "user")
        return cls(
            kind=kind,
            name=principal.name,
            user_id=principal.user_id,
            depot_ids=frozenset(depot_ids) if is_depot else None,
        )

    @classmethod
    def system(cls, what: str) -> Actor:
        return cls(kind="system", name=what)

    @classmethod
    def depot_sms(cls, depot: Depot, phone: str) -> Actor:
        return cls(kind="sms", name=f"{depot.name} ({phone})", depot_ids=frozenset({depot.id}))

    def may_see(self, order: Order) -> bool:
        return self.depot_ids is None or order.depot_id in self.depot_ids


DISPATCH = Actor.system("dispatch")


# -- errors with more to say ----------------------------------------------------------------------
class BookingRuleBroken(InvalidInput):
    """A window one of the tenant's booking rules forbids, and the earliest one that works."""

    def __init__(
        self,
        detail: str,
        *,
        rule: str,
        field: str,
        earliest: tuple[datetime, datetime] | None,
        params: dict[str, str],
    ) -> None:
        super().__init__(detail, field=field)
        self.rule, self.earliest, self.params = rule, earliest, params


class DuplicateBooking(Conflict):
    """An open order looks the same (customer, address, overlapping window)."""

    def __init__(self, existing: Order) -> None:
        super().__init__(
            f"{existing.number} is already booked for this customer and address in an "
            "overlapping window; book again only if that is deliberate",
            field="deliberate",
        )
        self.existing = existing


class IdempotencyMismatch(DomainError):
    status = 422


@dataclass(frozen=True)
class Booking:
    order: Order
    replayed: bool = False  # the same Idempotency-Key and request as before: the same order


@dataclass(frozen=True)
class CancelOutcome:
    order: Order
    #: cancelled | requested (the depot confirms) | refused (a rule forbids it) | already
    outcome: str
    reason: str = ""


# -- settings -------------------------------------------------------------------------------------
async def booking_rules(session: AsyncSession, tenant_id: UUID | None = None) -> PickupSettings:
    """The tenant's rules, or the defaults while it has set none."""
    tenant = tenant_id or require_tenant()
    found = await PickupRepository(session).settings(tenant)
    return found if found is not None else PickupSettings(tenant_id=tenant)


async def save_rules(session: AsyncSession, data: SettingsIn) -> PickupSettings:
    zone_of(data.timezone, "timezone")
    if data.day_ends <= data.day_starts:
        raise InvalidInput("The day must end after it starts", field="day_ends")
    day = _minutes(data.day_ends) - _minutes(data.day_starts)
    if day < data.min_window_minutes:
        raise InvalidInput("The minimum window must fit into the day", field="min_window_minutes")
    tenant = require_tenant()
    repo = PickupRepository(session)
    rules = await repo.settings(tenant) or PickupSettings(tenant_id=tenant)
    for name, value in data.model_dump().items():
        setattr(rules, name, value)
    rules.updated_at = utcnow()
    repo.add(rules)
    await repo.flush()
    return rules


def zone_of(name: str, field: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(
            "'%(name)s' is not a time zone (e.g. Asia/Shanghai)", field=field, name=name
        ) from None


def _minutes(moment: time) -> int:
    return moment.hour * 60 + moment.minute


# -- booking rules --------------------------------------------------------------------------------
def _local(moment: datetime, tz: ZoneInfo) -> datetime:
    """A window time as given: naive is the address's local time; aware is converted."""
    return moment.replace(tzinfo=tz) if moment.tzinfo is None else moment.astimezone(tz)


def _at(day: date, moment: time, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, moment, tzinfo=tz)


def earliest_window(
    rules: PickupSettings,
    tz: ZoneInfo,
    now: datetime,
    length: timedelta,
    not_before: datetime | None = None,
) -> tuple[datetime, datetime]:
    """The first window of `length` (at least the minimum, at most a day) that every rule
    allows, in local time, starting no earlier than `not_before` (what the caller asked for)."""
    day_length = timedelta(minutes=_minutes(rules.day_ends) - _minutes(rules.day_starts))
    length = min(max(length, timedelta(minutes=rules.min_window_minutes)), day_length)
    local_now = now.astimezone(tz)
    candidate = local_now + timedelta(minutes=rules.lead_time_minutes)
    if not_before is not None:
        candidate = max(candidate, not_before.astimezone(tz))
    # Round up to the next quarter hour: nobody books 10:07-11:07.
    over = timedelta(minutes=candidate.minute % 15, seconds=candidate.second) + timedelta(
        microseconds=candidate.microsecond
    )
    if over:
        candidate += WINDOW_STEP - over
    for _ in range(rules.horizon_days + 3):
        day = candidate.date()
        opens, closes = _at(day, rules.day_starts, tz), _at(day, rules.day_ends, tz)
        next_day = _at(day + timedelta(days=1), rules.day_starts, tz)
        if day == local_now.date() and local_now.time() >= rules.same_day_cutoff:
            candidate = next_day
            continue
        candidate = max(candidate, opens)
        if candidate + length > closes:
            candidate = next_day
            continue
        return candidate, candidate + length
    raise InvalidInput("No window within the booking horizon works", field="window_start")


def _fmt(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M")


def check_window(
    rules: PickupSettings, start: datetime, end: datetime, tz: ZoneInfo, now: datetime
) -> None:
    """Raise BookingRuleBroken naming the first rule the window breaks and the earliest window
    that works. `start` and `end` are aware."""
    if end <= start:
        raise InvalidInput("The window must end after it starts", field="window_end")
    local_now = now.astimezone(tz)
    local_start, local_end = start.astimezone(tz), end.astimezone(tz)
    minimum = timedelta(minutes=rules.min_window_minutes)
    lead = timedelta(minutes=rules.lead_time_minutes)
    cutoff = rules.same_day_cutoff.strftime("%H:%M")
    opens, closes = rules.day_starts.strftime("%H:%M"), rules.day_ends.strftime("%H:%M")
    broken: tuple[str, str, str, dict[str, str]] | None = None
    if end - start < minimum:
        broken = (
            "min_window",
            "window_end",
            f"A window must be at least {rules.min_window_minutes} minutes long.",
            {"minutes": str(rules.min_window_minutes)},
        )
    elif local_start.date() == local_now.date() and local_now.time() >= rules.same_day_cutoff:
        broken = (
            "same_day_cutoff",
            "window_start",
            f"Same-day bookings close at {cutoff}.",
            {"time": cutoff},
        )
    elif start < now + lead:
        broken = (
            "lead_time",
            "window_start",
            f"Bookings need {rules.lead_time_minutes} minutes' notice.",
            {"minutes": str(rules.lead_time_minutes)},
        )
    elif (
        local_start.time() < rules.day_starts
        or local_end.date() != local_start.date()
        or local_end.time() > rules.day_ends
    ):
        broken = (
            "service_hours",
            "window_start",
            f"Pickups and deliveries happen between {opens} and {closes}.",
            {"opens": opens, "closes": closes},
        )
    elif local_start.date() > local_now.date() + timedelta(days=rules.horizon_days):
        broken = (
            "horizon",
            "window_start",
            f"Bookings can be made up to {rules.horizon_days} days ahead.",
            {"days": str(rules.horizon_days)},
        )
    if broken is None:
        return
    rule, field_name, text, params = broken
    earliest = earliest_window(rules, tz, now, end - start, not_before=start)
    shown = f"{_fmt(earliest[0])}–{earliest[1].strftime('%H:%M')} ({tz.key})"
    raise BookingRuleBroken(
        f"{text} The earliest window that works is {shown}.",
        rule=rule,
        field=field_name,
        earliest=earliest,
        params={**params, "earliest": shown},
    )


# -- booking --------------------------------------------------------------------------------------
def _phone(raw: str | None, field_name: str) -> str | None:
    return e164(raw, field=field_name) if raw and raw.strip() else None


def request_hash(data: OrderIn) -> str:
    canonical = json.dumps(data.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _need(party: PartyIn, role: str, *names: str) -> None:
    for name in names:
        if not getattr(party, name):
            raise InvalidInput(
                f"The {role}'s {name.replace('_', ' ')} is needed", field=f"{role}.{name}"
            )


def _address_key(address: str) -> str:
    return "".join(address.split()).lower()


async def create_order(
    session: AsyncSession,
    by: Actor,
    data: OrderIn,
    *,
    idempotency_key: str | None = None,
    now: datetime | None = None,
) -> Booking:
    """Book an order: check it, number it, and publish it for dispatch, in the caller's
    transaction. The same Idempotency-Key with the same request gives back the first order."""
    tenant_id = require_tenant()
    repo = PickupRepository(session)
    fingerprint = request_hash(data)
    key = idempotency_key.strip() if idempotency_key is not None else None
    if key is not None:
        if not key or len(key) > 200:
            raise InvalidInput(
                "An Idempotency-Key has 1 to 200 characters", field="Idempotency-Key"
            )
        await repo.lock("pickup-idempotency", tenant_id, key)  # two retries at once: one order
        earlier = await repo.order_by_idempotency_key(tenant_id, key)
        if earlier is not None:
            if earlier.request_hash != fingerprint:
                raise IdempotencyMismatch(
                    "This Idempotency-Key was used for a different booking; use a new key",
                    field="Idempotency-Key",
                )
            return Booking(earlier, replayed=True)

    now = now or utcnow()
    rules = await booking_rules(session, tenant_id)
    tz = zone_of(data.timezone or rules.timezone, "timezone")
    kind = data.kind
    sender, receiver = data.sender, data.receiver
    if kind != OrderKind.DELIVERY:
        _need(sender, "sender", "name", "phone", "address")
    if kind != OrderKind.PICKUP:
        _need(receiver, "receiver", "name", "phone", "address")
    sender_phone = _phone(sender.phone, "sender.phone")
    receiver_phone = _phone(receiver.phone, "receiver.phone")
    contact = _phone(data.contact_phone, "contact_phone") or (
        receiver_phone if kind == OrderKind.DELIVERY else sender_phone
    )
    if data.language not in LANGUAGES:
        raise InvalidInput(f"Language is one of: {', '.join(LANGUAGES)}", field="language")
    if data.payment == Payment.CASH_ON_DELIVERY and kind == OrderKind.PICKUP:
        raise InvalidInput(
            "A pickup-only order has no delivery to collect cash on", field="payment"
        )
    if data.payment == Payment.CASH_ON_PICKUP and kind == OrderKind.DELIVERY:
        raise InvalidInput(
            "A delivery-only order has no pickup to collect cash on", field="payment"
        )

    start, end = _local(data.window_start, tz), _local(data.window_end, tz)
    check_window(rules, start, end, tz, now)

    service = receiver if kind == OrderKind.DELIVERY else sender
    lookalikes = await repo.open_lookalikes(
        tenant_id,
        phones=[p for p in (contact, sender_phone) if p],
        customer_id=data.customer_id,
        postal_code=service.postal_code,
        address=_address_key(service.address),
        window_start=start,
        window_end=end,
    )
    if lookalikes and not data.deliberate:
        # A copy: the transaction rolls back, and the caller still shows the order.
        existing = lookalikes[0]
        raise DuplicateBooking(
            Order(**{name: getattr(existing, name) for name in Order.model_fields})
        )

    year = now.astimezone(tz).year
    seq = await repo.next_seq(tenant_id, year)
    parcels = [p.model_dump(mode="json", exclude_none=True) for p in data.parcels]
    order = Order(
        tenant_id=tenant_id,
        number=f"{rules.order_prefix}-{year}-{seq:06d}",
        year=year,
        seq=seq,
        confirmation_code=f"{secrets.randbelow(10**6):06d}",
        tracking_token=secrets.token_urlsafe(24),
        kind=kind,
        customer_id=data.customer_id,
        sender_name=sender.name,
        sender_phone=sender_phone,
        sender_address=sender.address,
        sender_city=sender.city,
        sender_postal_code=sender.postal_code.upper(),
        sender_lat=sender.lat,
        sender_lon=sender.lon,
        receiver_name=receiver.name,
        receiver_phone=receiver_phone,
        receiver_address=receiver.address,
        receiver_city=receiver.city,
        receiver_postal_code=receiver.postal_code.upper(),
        receiver_lat=receiver.lat,
        receiver_lon=receiver.lon,
        contact_phone=contact,
        language=data.language,
        notify_sms=data.notify_sms,
        window_start=start,
        window_end=end,
        timezone=tz.key,
        parcels=parcels,
        parcel_count=sum(p.count for p in data.parcels),
        weight_kg=round(sum(p.weight_kg * p.count for p in data.parcels), 3),
        declared_value=sum((p.declared_value * p.count for p in data.parcels), Decimal(0)),
        notes=data.notes,
        payment=data.payment,
        cash_amount=data.cash_amount,
        idempotency_key=key,
        request_hash=fingerprint,
        created_by=by.name,
        created_at=now,
        updated_at=now,
    )
    repo.add(order)
    await repo.flush()
    detail: dict[str, Any] = {}
    if lookalikes:
        detail["deliberate_despite"] = [o.number for o in lookalikes]
    _log(session, order, by, to_status=S.BOOKED, detail=detail, at=now)
    outbox.publish(
        session,
        ORDER_BOOKED,
        {
            "order_id": str(order.id),
            "number": order.number,
            "confirmation_code": order.confirmation_code,
            "contact_phone": order.contact_phone,
            "language": order.language,
            "notify_sms": order.notify_sms,
            "tracking_token": order.tracking_token,
        },
        tenant_id=tenant_id,
        priority=outbox.URGENT,  # dispatch and the customer's confirmation
    )
    if contact:
        local = start.astimezone(tz)
        outbox.publish(
            session,
            CUSTOMER_CONTACT,
            {
                "phone": contact,
                "kind": "order",
                "ref": str(order.id),
                "summary": f"{order.number}: {kind.value.replace('_', ' ')} booked for "
                f"{_fmt(local)}–{end.astimezone(tz).strftime('%H:%M')}, "
                f"{order.parcel_count} parcel(s), {service.address}",
                "direction": "inbound",
                "at": now.isoformat(),
            },
            tenant_id=tenant_id,
        )
    return Booking(order)


# -- the timeline ---------------------------------------------------------------------------------
def _log(
    session: AsyncSession,
    order: Order,
    by: Actor,
    *,
    action: str = "status",
    from_status: str | None = None,
    to_status: str | None = None,
    reason: str | None = None,
    depot_id: UUID | None = None,
    attempt: int | None = None,
    detail: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> OrderEvent:
    entry = OrderEvent(
        tenant_id=order.tenant_id,  # the order's, also when an HQ acts on a branch's order
        order_id=order.id,
        at=at or utcnow(),
        action=action,
        from_status=from_status,
        to_status=to_status,
        reason=reason or None,
        actor_kind=by.kind,
        actor_name=by.name,
        actor_user_id=by.user_id,
        depot_id=depot_id or order.depot_id,
        attempt=attempt,
        detail=detail or {},
    )
    session.add(entry)
    return entry


def _move(
    session: AsyncSession,
    order: Order,
    to: OrderStatus,
    by: Actor,
    reason: str = "",
    *,
    attempt: int | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Change the status, stamp it in the timeline and tell whoever follows the order."""
    before, now = order.status, utcnow()
    order.status, order.updated_at = to, now
    session.add(order)
    _log(
        session,
        order,
        by,
        from_status=before,
        to_status=to,
        reason=reason,
        attempt=attempt,
        detail=detail,
        at=now,
    )
    outbox.publish(
        session,
        STATUS_CHANGED,
        {
            "order_id": str(order.id),
            "number": order.number,
            "from": str(before),
            "to": str(to),
            "at": now.isoformat(),
            "by_kind": by.kind,
            "by_name": by.name,
            "reason": reason,
            "attempt": attempt,
            "driver_name": order.driver_name,
        },
        tenant_id=order.tenant_id,
    )


def allowed_next(order: Order) -> frozenset[OrderStatus]:
    """Where the order may go from here, for its kind and phase."""
    allowed = set(TRANSITIONS[OrderStatus(order.status)])
    picked_up = order.picked_up_at is not None
    if order.kind == OrderKind.PICKUP:
        allowed.discard(S.OUT_FOR_DELIVERY)
    if order.kind == OrderKind.DELIVERY or picked_up:
        allowed -= {S.EN_ROUTE, S.PICKED_UP}
    if order.kind == OrderKind.PICKUP_AND_DELIVERY and not picked_up:
        allowed.discard(S.OUT_FOR_DELIVERY)
    return frozenset(allowed)


def _words(status: str) -> str:
    return status.replace("_", " ")


def _said(status: str) -> Term:
    """A status inside a refusal: pages translate it with the message."""
    return Term("failed for good" if status == S.FAILED else _words(status))


def _check(order: Order, to: OrderStatus) -> None:
    if to not in allowed_next(order):
        raise Conflict(
            "%(number)s is %(status)s: it cannot become %(to)s",
            field="status",
            number=order.number,
            status=_said(order.status),
            to=_said(to),
        )


def is_open(order: Order) -> bool:
    if order.status == S.PICKED_UP:
        return order.kind == OrderKind.PICKUP_AND_DELIVERY
    return order.status in OPEN_STATUSES


async def get_order(session: AsyncSession, order_id: UUID, by: Actor | None = None) -> Order:
    order = await PickupRepository(session).get_order(order_id)
    if order is None or (by is not None and not by.may_see(order)):
        raise NotFound("No such order")
    return order


async def _locked(repo: PickupRepository, order_id: UUID, by: Actor) -> Order:
    order = await repo.get_order(order_id, lock=True)
    if order is None or not by.may_see(order):
        raise NotFound("No such order")
    return order


async def order_by_number(session: AsyncSession, number: str) -> Order | None:
    return await PickupRepository(session).order_by_number(number)


async def timeline(session: AsyncSession, order_id: UUID) -> Sequence[OrderEvent]:
    return await PickupRepository(session).timeline(order_id)


async def note(
    session: AsyncSession, order_id: UUID, by: Actor, text: str, **detail: Any
) -> OrderEvent:
    """A line in the order's timeline that is not a change of status."""
    return note_on(session, await get_order(session, order_id, by), by, text, **detail)


def note_on(session: AsyncSession, order: Order, by: Actor, text: str, **detail: Any) -> OrderEvent:
    """`note` for an order the caller holds already (no second read)."""
    return _log(session, order, by, action="note", reason=text, detail=detail)


# -- dispatch -------------------------------------------------------------------------------------
def normalise_postal(code: str) -> str:
    return "".join(code.split()).upper()


def covering_zones(
    zones: Sequence[Zone], postal_code: str, point: tuple[float, float] | None
) -> list[Zone]:
    """The zones that cover an address, best first: higher priority, then the more specific
    match (an exact postal code, a polygon, then the longest prefix), then by name."""
    code = normalise_postal(postal_code)
    ranked: list[tuple[int, int, str, Zone]] = []
    for zone in zones:
        score = 0
        if code and code in zone.postal_codes:
            score = 1000
        elif zone.polygon and point is not None and shape(zone.polygon).covers(Point(point)):
            score = 500
        elif code:
            score = max((len(p) for p in zone.postal_prefixes if code.startswith(p)), default=0)
        if score:
            ranked.append((-zone.priority, -score, zone.name, zone))
    return [entry[3] for entry in sorted(ranked, key=lambda entry: entry[:3])]


@dataclass(frozen=True)
class Offer:
    """An order offered to a depot: what the depot's SMS needs, as dispatch left it."""

    order: Order
    depot: Depot
    assignment: Assignment


@dataclass
class Decision:
    depot: Depot | None = None
    zone: Zone | None = None
    passed_over: list[str] = field(default_factory=list)
    reason: str = ""
    redispatch: bool = False  # a depot rejected the order before


async def _full(
    repo: PickupRepository, depot: Depot, order: Order, *, moving: bool = False
) -> str | None:
    """Why the depot cannot take the order's window, or None when it has room. `moving`: the
    order is the depot's already (its window moves): it does not count against itself."""
    besides = order.id if moving else None
    tz = ZoneInfo(depot.timezone)
    local = order.window_start.astimezone(tz)
    day_start = _at(local.date(), time(0), tz)
    day_end = _at(local.date() + timedelta(days=1), time(0), tz)
    if depot.daily_capacity is not None:
        load = await repo.depot_load(order.tenant_id, depot.id, day_start, day_end, besides=besides)
        if load >= depot.daily_capacity:
            return f"{depot.name} is full on {local.date()} ({load}/{depot.daily_capacity})"
    if depot.slot_capacity is not None:
        slot = timedelta(minutes=depot.slot_minutes)
        since_midnight = local - day_start
        slot_start = day_start + slot * (since_midnight // slot)
        load = await repo.depot_load(
            order.tenant_id, depot.id, slot_start, slot_start + slot, besides=besides
        )
        if load >= depot.slot_capacity:
            span = f"{slot_start.strftime('%H:%M')}–{(slot_start + slot).strftime('%H:%M')}"
            return f"{depot.name} is full {local.date()} {span} ({load}/{depot.slot_capacity})"
    return None


WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def closed_for(depot: Depot, order: Order) -> str | None:
    """Why the depot does not work during the order's window (in the depot's time zone), or
    None when the window meets its hours on one of its days."""
    tz = ZoneInfo(depot.timezone)
    start, end = order.window_start.astimezone(tz), order.window_end.astimezone(tz)
    if start.isoweekday() not in depot.open_days:
        return f"{depot.name} does not work on {WEEKDAYS[start.isoweekday() - 1]}s"
    opens = _at(start.date(), depot.opens_at, tz)
    closes = _at(start.date(), depot.closes_at, tz)
    if end <= opens or start >= closes:
        hours = f"{depot.opens_at.strftime('%H:%M')}–{depot.closes_at.strftime('%H:%M')}"
        return f"{depot.name} works {hours}"
    return None


async def choose_depot(repo: PickupRepository, order: Order) -> Decision:
    zones = covering_zones(
        await repo.zones(order.tenant_id, active=True),
        order.service_postal_code,
        order.service_point,
    )
    if not zones:
        where = order.service_postal_code or "—"
        return Decision(reason=f"No zone covers postal code {where} or the address's location")
    depots = {depot.id: depot for depot in await repo.depots(order.tenant_id)}
    rejected = await repo.rejected_depot_ids(order.id)
    decision, seen = Decision(redispatch=bool(rejected)), set[UUID]()
    # Capacity is counted, then taken: one decision at a time per depot with a limit, held to
    # the end of the transaction. Locks are taken in one order (by id), so two decisions that
    # both need depots A and B never wait for each other; depots without limits need none.
    limited = {
        depot.id
        for zone in zones
        if (depot := depots.get(zone.depot_id)) is not None
        and depot.active
        and depot.id not in rejected
        and (depot.daily_capacity is not None or depot.slot_capacity is not None)
    }
    for depot_id in sorted(limited, key=str):
        await repo.lock("pickup-capacity", depot_id)
    for zone in zones:
        depot = depots.get(zone.depot_id)
        if depot is None or depot.id in seen:
            continue
        seen.add(depot.id)
        if not depot.active:
            decision.passed_over.append(f"{depot.name} is closed")
        elif depot.id in rejected:
            decision.passed_over.append(f"{depot.name} rejected it")
        elif (closed := closed_for(depot, order)) is not None:
            decision.passed_over.append(closed)
        elif (full := await _full(repo, depot, order)) is not None:
            decision.passed_over.append(full)
        else:
            decision.depot, decision.zone = depot, zone
            return decision
    decision.reason = "No depot can take it: " + "; ".join(decision.passed_over)
    return decision


async def dispatch(
    session: AsyncSession, order_id: UUID, by: Actor = DISPATCH, *, depot_told: bool = False
) -> Offer | None:
    """Give a booked order to the best depot with room; none: the exceptions list (None). Runs
    once per booking from the outbox; a repeated delivery finds the order no longer booked.
    `depot_told`: the caller SMSes the depot in this transaction (the `depot_assigned` event
    says so, and its subscribers leave the depot alone)."""
    repo = PickupRepository(session)
    order = await repo.get_order(order_id, lock=True)
    if order is None or order.status != S.BOOKED:
        return None
    return await _dispatch(session, repo, order, by, depot_told=depot_told)


async def _dispatch(
    session: AsyncSession,
    repo: PickupRepository,
    order: Order,
    by: Actor,
    *,
    depot_told: bool = False,
) -> Offer | None:
    decision = await choose_depot(repo, order)
    order.dispatched_at = utcnow()
    if decision.depot is None:
        order.depot_id = order.zone_id = None
        order.exception_reason = decision.reason
        _move(session, order, S.UNSERVICEABLE, by, decision.reason)
        outbox.publish(
            session,
            EXCEPTION_RAISED,
            {"order_id": str(order.id), "number": order.number, "reason": decision.reason},
            tenant_id=order.tenant_id,
        )
        return None
    zone = decision.zone
    assert zone is not None
    return await _assign(
        session,
        repo,
        order,
        decision.depot,
        zone.id,
        by,
        decision.passed_over,
        redispatch=decision.redispatch,
        depot_told=depot_told,
    )


async def _assign(
    session: AsyncSession,
    repo: PickupRepository,
    order: Order,
    depot: Depot,
    zone_id: UUID | None,
    by: Actor,
    passed_over: Sequence[str] = (),
    *,
    redispatch: bool | None = None,
    depot_told: bool = False,
) -> Offer:
    if redispatch is None:
        redispatch = bool(await repo.rejected_depot_ids(order.id))
    order.depot_id, order.zone_id = depot.id, zone_id
    order.depot_accepted_at, order.exception_reason, order.driver_name = None, None, None
    assignment = Assignment(
        tenant_id=order.tenant_id, order_id=order.id, depot_id=depot.id, zone_id=zone_id
    )
    repo.add(assignment)  # written with the order's change, in one flush
    reason = depot.name + (f" ({'; '.join(passed_over)})" if passed_over else "")
    _move(session, order, S.DEPOT_ASSIGNED, by, reason)
    outbox.publish(
        session,
        DEPOT_ASSIGNED,
        {
            "order_id": str(order.id),
            "number": order.number,
            "ref": order.seq,
            "depot_id": str(depot.id),
            "assignment_id": str(assignment.id),
            "redispatch": redispatch,
            "depot_told": depot_told,
        },
        tenant_id=order.tenant_id,
        # Untold, the depot's SMS waits on this event.
        priority=outbox.NORMAL if depot_told else outbox.URGENT,
    )
    return Offer(order, depot, assignment)


async def dispatch_again(session: AsyncSession, order_id: UUID, by: Actor) -> Order:
    """Staff retry an order on the exceptions list (after adding a zone or capacity)."""
    repo = PickupRepository(session)
    order = await _locked(repo, order_id, by)
    if order.status != S.UNSERVICEABLE:
        raise Conflict(
            "%(number)s is %(status)s, not on the exceptions list",
            number=order.number,
            status=_said(order.status),
        )
    _move(session, order, S.BOOKED, by, "dispatch again")
    await _dispatch(session, repo, order, DISPATCH)
    return order


async def assign_to_depot(
    session: AsyncSession, order_id: UUID, depot_id: UUID, by: Actor
) -> Order:
    """Staff give an order to a depot by hand, whatever zones and capacity say."""
    repo = PickupRepository(session)
    order = await _locked(repo, order_id, by)
    if order.status not in (S.BOOKED, S.UNSERVICEABLE):
        raise Conflict(
            "%(number)s is %(status)s: only orders waiting for a depot are assigned by hand",
            field="status",
            number=order.number,
            status=_said(order.status),
        )
    depot = await repo.get_depot(depot_id)
    if depot is None or depot.tenant_id != order.tenant_id:
        raise InvalidInput("No such depot", field="depot_id")
    order.dispatched_at = utcnow()
    await _assign(session, repo, order, depot, None, by, ["assigned by hand"])
    return order


# -- depots answer --------------------------------------------------------------------------------
async def order_for_depot_reply(session: AsyncSession, phone: str, ref: int) -> tuple[Order, Depot]:
    """The order a depot means by `ref` (its `seq`) in an SMS from `phone`."""
    repo = PickupRepository(session)
    depots = await repo.depots_with_contact(e164(phone, field="from"))
    if not depots:
        raise NotFound("This number is not a depot's contact")
    order = await repo.order_for_depot([d.id for d in depots], ref)
    if order is None:
        raise NotFound("No order %(ref)s with this depot", ref=str(ref))
    depot = next(d for d in depots if d.id == order.depot_id)
    return order, depot


async def waiting_assignment(session: AsyncSession, assignment_id: UUID) -> Assignment | None:
    """The offer while it is unanswered and still the order's current one (for reminders)."""
    repo = PickupRepository(session)
    assignment = await repo.get_assignment(assignment_id)
    if assignment is None or assignment.accepted is not None:
        return None
    order = await repo.get_order(assignment.order_id)
    if order is None or order.status != S.DEPOT_ASSIGNED or order.depot_id != assignment.depot_id:
        return None
    return assignment


async def depot_silent(
    session: AsyncSession, assignment_id: UUID, by: Actor, reason: str
) -> Order | None:
    """The depot left the offer unanswered, reminder and all: the order goes on the exceptions
    list (staff phone the depot, assign it by hand or dispatch it again). The offer stays
    unanswered in the reports. None when it was answered or withdrawn in the meantime."""
    repo = PickupRepository(session)
    assignment = await repo.get_assignment(assignment_id)
    if assignment is None:
        return None
    order = await _locked(repo, assignment.order_id, by)
    if await waiting_assignment(session, assignment_id) is None:
        return None  # re-checked under the order's lock: an answer may have just come in
    order.depot_id = order.zone_id = None
    order.exception_reason = reason
    _move(session, order, S.UNSERVICEABLE, by, reason)
    outbox.publish(
        session,
        EXCEPTION_RAISED,
        {"order_id": str(order.id), "number": order.number, "reason": reason},
        tenant_id=order.tenant_id,
    )
    return order


async def _answer(
    session: AsyncSession,
    repo: PickupRepository,
    order: Order,
    by: Actor,
    accepted: bool,
    reason: str,
) -> None:
    assert order.depot_id is not None
    assignment = await repo.current_assignment(order.id, order.depot_id)
    now = utcnow()
    if assignment is not None:
        assignment.accepted, assignment.answered_at = accepted, now
        assignment.reason, assignment.answered_by = reason or None, by.name
        repo.add(assignment)
    if accepted:
        order.depot_accepted_at = now
        session.add(order)
    _log(
        session,
        order,
        by,
        action="accepted" if accepted else "rejected",
        reason=reason,
        at=now,
    )
    outbox.publish(
        session,
        DEPOT_ANSWERED,
        {
            "order_id": str(order.id),
            "number": order.number,
            "depot_id": str(order.depot_id),
            "assignment_id": str(assignment.id) if assignment else None,
            "accepted": accepted,
            "reason": reason,
        },
        tenant_id=order.tenant_id,
    )


async def depot_accepts(session: AsyncSession, order_id: UUID, by: Actor) -> Order:
    """The depot takes the job. Saying yes twice changes nothing."""
    repo = PickupRepository(session)
    order = await _locked(repo, order_id, by)
    if order.depot_accepted_at is not None and order.depot_id is not None:
        return order
    if order.status != S.DEPOT_ASSIGNED:
        raise Conflict(
            "%(number)s is %(status)s: there is no offer to accept",
            field="status",
            number=order.number,
            status=_said(order.status),
        )
    await _answer(session, repo, order, by, True, "")
    return order


async def depot_rejects(
    session: AsyncSession, order_id: UUID, by: Actor, reason: str = ""
) -> Order:
    """The depot gives the job back (before a driver has it); dispatch picks the next depot at
    once, never one that rejected the order."""
    repo = PickupRepository(session)
    order = await _locked(repo, order_id, by)
    if order.status != S.DEPOT_ASSIGNED or order.depot_id is None:
        raise Conflict(
            "%(number)s is %(status)s: it can no longer be rejected",
            field="status",
            number=order.number,
            status=_said(order.status),
        )
    depot = await repo.get_depot(order.depot_id)
    reason = reason.strip() or "no reason given"
    await _answer(session, repo, order, by, False, reason)
    name = depot.name if depot else "the depot"
    order.depot_id = order.zone_id = order.depot_accepted_at = None
    _move(session, order, S.BOOKED, by, f"rejected by {name}: {reason}")
    await _dispatch(session, repo, order, DISPATCH)
    return order


async def record_status(
    session: AsyncSession,
    order_id: UUID,
    to_status: str | None,
    by: Actor,
    reason: str = "",
    *,
    driver_name: str | None = None,
) -> Order:
    """A depot's report of progress. The lifecycle decides what may follow what; reporting the
    status the order already has changes nothing (an SMS sent twice)."""
    repo = PickupRepository(session)
    order = await _locked(repo, order_id, by)
    try:
        target = OrderStatus(to_status or "")
    except ValueError:
        names = ", ".join(s.value for s in OrderStatus if s in REPORTED)
        raise InvalidInput("Status is one of: %(names)s", field="status", names=names) from None
    reason = reason.strip()
    if target == order.status and target != S.ATTEMPT_FAILED:
        if driver_name and target == S.DRIVER_ASSIGNED:
            order.driver_name = driver_name.strip()
            session.add(order)
        return order
    if target not in REPORTED:
        raise InvalidInput(
            f"{_words(target).capitalize()} is not reported: it follows from dispatch, "
            "cancelling or rescheduling",
            field="status",
        )
    if target == S.CANCELLED and order.status != S.CANCEL_REQUESTED:
        raise Conflict(
            "%(number)s has no cancel request to confirm: cancel it instead",
            field="status",
            number=order.number,
        )
    _check(order, target)
    if target in (S.ATTEMPT_FAILED, S.FAILED) and not reason:
        raise InvalidInput("Say why the attempt failed", field="reason")
    if order.status == S.DEPOT_ASSIGNED and order.depot_accepted_at is None:
        await _answer(session, repo, order, by, True, "")  # getting on with it is a yes
    if target == S.DRIVER_ASSIGNED and driver_name:
        order.driver_name = driver_name.strip()
    if target == S.PICKED_UP:
        order.picked_up_at = utcnow()
    attempt = None
    if target == S.ATTEMPT_FAILED:
        order.attempts += 1
        attempt = order.attempts
    if target == S.CANCELLED:
        order.status_before_cancel = None
    _move(session, order, target, by, reason, attempt=attempt)
    if target == S.ATTEMPT_FAILED:
        rules = await booking_rules(session, order.tenant_id)
        if order.attempts >= rules.max_attempts:
            _move(
                session,
                order,
                S.FAILED,
                Actor.system("rule: maximum attempts"),
                f"{order.attempts} attempts failed; the limit is {rules.max_attempts}",
                attempt=attempt,
            )
    return order


# -- customers change their minds -----------------------------------------------------------------
async def request_cancel(
    session: AsyncSession, order_id: UUID, by: Actor, reason: str = ""
) -> CancelOutcome:
    """Cancel at once while nobody is on the way; ask the depot while a driver is; refuse (and
    record the refusal) once the parcel is picked up or the order has ended."""
    repo = PickupRepository(session)
    order = await _locked(repo, order_id, by)
    reason = reason.strip() or "customer's request"
    status = OrderStatus(order.status)
    if status == S.CANCELLED:
        return CancelOutcome(order, "already")
    if status == S.CANCEL_REQUESTED:
        return CancelOutcome(order, "requested")
    if status in CANCEL_AT_ONCE:
        _move(session, order, S.CANCELLED, by, reason)
        return CancelOutcome(order, "cancelled")
    if status in CANCEL_ASKS_DEPOT:
        order.status_before_cancel = status
        _move(session, order, S.CANCEL_REQUESTED, by, reason)
        return CancelOutcome(order, "requested")
    refusal = {
        S.PICKED_UP: "the parcel has been picked up",
        S.OUT_FOR_DELIVERY: "the parcel is out for delivery",
        S.DELIVERED: "the order has been delivered",
        S.FAILED: "the order has failed for good",
    }.get(status, f"the order is {_words(status)}")
    refused = f"{order.number} cannot be cancelled: {refusal}"
    _log(session, order, by, action="cancel_refused", reason=f"{reason} — {refused}")
    return CancelOutcome(order, "refused", refused)


async def reschedule(
    session: AsyncSession,
    order_id: UUID,
    by: Actor,
    window_start: datetime,
    window_end: datetime,
    reason: str = "",
    *,
    now: datetime | None = None,
) -> Order:
    """A new window (the booking rules apply): after a failed attempt the order is rescheduled;
    before the visit only its window moves."""
    repo = PickupRepository(session)
    order = await _locked(repo, order_id, by)
    movable = {S.BOOKED, S.DEPOT_ASSIGNED, S.DRIVER_ASSIGNED, S.UNSERVICEABLE, S.RESCHEDULED}
    if order.status != S.ATTEMPT_FAILED and order.status not in movable:
        raise Conflict(
            "%(number)s is %(status)s: its window can no longer move",
            field="status",
            number=order.number,
            status=_said(order.status),
        )
    rules = await booking_rules(session, order.tenant_id)
    tz = ZoneInfo(order.timezone)
    start, end = _local(window_start, tz), _local(window_end, tz)
    check_window(rules, start, end, tz, now or utcnow())
    before = f"{_fmt(order.window_start.astimezone(tz))}–{order.window_end.astimezone(tz):%H:%M}"
    order.window_start, order.window_end = start, end
    await _depot_takes_new_window(repo, order)
    detail = {"before": before, "after": f"{_fmt(start)}–{end:%H:%M}"}
    why = reason.strip() or "new appointment"
    if order.status == S.ATTEMPT_FAILED:
        order.driver_name = None
        _move(session, order, S.RESCHEDULED, by, why, detail=detail)
    else:
        order.updated_at = utcnow()
        session.add(order)
        change = _log(session, order, by, action="window_changed", reason=why, detail=detail)
        outbox.publish(
            session,
            WINDOW_MOVED,
            {
                "order_id": str(order.id),
                "number": order.number,
                "change_id": str(change.id),
                "depot_id": str(order.depot_id) if order.depot_id else None,
                **detail,
                "reason": why,
            },
            tenant_id=order.tenant_id,
        )
    return order


async def _depot_takes_new_window(repo: PickupRepository, order: Order) -> None:
    """The depot holding the order must work, and have room, in its new window; else the move
    is refused with the reason (staff may pick another window, or give the order to another
    depot first). An order without a depot is dispatched for its new window as usual."""
    if order.depot_id is None or order.status in (S.BOOKED, S.UNSERVICEABLE):
        return
    depot = await repo.get_depot(order.depot_id)
    if depot is None:
        return
    if depot.daily_capacity is not None or depot.slot_capacity is not None:
        await repo.lock("pickup-capacity", depot.id)  # as dispatch counts, then takes
    why_not = closed_for(depot, order) or await _full(repo, depot, order, moving=True)
    if why_not is not None:
        raise Conflict(f"{why_not}: choose another window", field="window_start")


# -- depots and zones -----------------------------------------------------------------------------
def _contacts(raw: Iterable[str]) -> list[str]:
    contacts: list[str] = []
    for number in raw:
        if number.strip():
            normalised = e164(number, field="sms_contacts")
            if normalised not in contacts:
                contacts.append(normalised)
    return contacts


async def save_depot(session: AsyncSession, data: DepotIn, depot_id: UUID | None = None) -> Depot:
    tenant = require_tenant()
    repo = PickupRepository(session)
    found = await repo.get_depot(depot_id) if depot_id is not None else None
    if depot_id is not None and found is None:
        raise NotFound("No such depot")
    if not data.name:
        raise InvalidInput("A depot needs a name", field="name")
    if not data.code:
        raise InvalidInput("A depot needs a short code", field="code")
    if not data.address:
        raise InvalidInput("A depot needs an address", field="address")
    zone_of(data.timezone, "timezone")
    if data.language not in LANGUAGES:
        raise InvalidInput(f"Language is one of: {', '.join(LANGUAGES)}", field="language")
    if any(day not in range(1, 8) for day in data.open_days):
        raise InvalidInput("Days are 1 (Monday) to 7 (Sunday)", field="open_days")
    if data.closes_at <= data.opens_at:
        raise InvalidInput("A depot closes after it opens", field="closes_at")
    depot = found or Depot(tenant_id=tenant, name=data.name, code=data.code, address=data.address)
    same_name = await repo.depot_by_name(depot.tenant_id, data.name)
    if same_name is not None and same_name.id != depot.id:
        raise Conflict("There is already a depot called %(name)s", field="name", name=data.name)
    for name, value in data.model_dump().items():
        setattr(depot, name, value)
    depot.code = data.code.upper()
    depot.sms_contacts = _contacts(data.sms_contacts)
    depot.open_days = sorted(set(data.open_days))
    repo.add(depot)
    await repo.flush()
    return depot


async def add_depot_user(session: AsyncSession, depot_id: UUID, user_id: UUID) -> DepotUser:
    repo = PickupRepository(session)
    depot = await repo.get_depot(depot_id)
    if depot is None:
        raise NotFound("No such depot")
    existing = await repo.depot_user(depot_id, user_id)
    if existing is not None:
        return existing
    link = DepotUser(tenant_id=depot.tenant_id, depot_id=depot_id, user_id=user_id)
    repo.add(link)
    await repo.flush()
    return link


async def add_depot_key(session: AsyncSession, depot_id: UUID, api_key_id: UUID) -> DepotKey:
    """Let an API key with the depot_user role work for this depot (checked by the caller: the
    key is the tenant's, with that role). Linking it again changes nothing."""
    repo = PickupRepository(session)
    depot = await repo.get_depot(depot_id)
    if depot is None:
        raise NotFound("No such depot")
    existing = await repo.depot_key(depot_id, api_key_id)
    if existing is not None:
        return existing
    link = DepotKey(tenant_id=depot.tenant_id, depot_id=depot_id, api_key_id=api_key_id)
    repo.add(link)
    await repo.flush()
    return link


def parse_postal_codes(raw: Iterable[str]) -> tuple[list[str], list[str]]:
    """Exact codes and prefixes: "510630" is exact; "510xxx", "510*" and "510" + "x" are the
    prefix 510. Separators: commas, spaces, semicolons, new lines."""
    exact: list[str] = []
    prefixes: list[str] = []
    for chunk in raw:
        for token in chunk.replace(",", " ").replace(";", " ").split():
            code = normalise_postal(token)
            stripped = code.rstrip("X*")
            if not stripped or not stripped.isalnum():
                raise InvalidInput(
                    "'%(token)s' is not a postal code or prefix", field="postal_codes", token=token
                )
            target = prefixes if stripped != code else exact
            if stripped not in target:
                target.append(stripped)
    return exact, prefixes


def polygon_of(geojson: dict[str, Any]) -> dict[str, Any]:
    """A valid Polygon or MultiPolygon geometry from a geometry, Feature or FeatureCollection
    (several polygons become one MultiPolygon)."""
    kind = geojson.get("type")
    if kind == "FeatureCollection":
        geometries = [f.get("geometry") for f in geojson.get("features") or []]
    elif kind == "Feature":
        geometries = [geojson.get("geometry")]
    else:
        geometries = [geojson]
    shapes = []
    for geometry in geometries:
        if not isinstance(geometry, dict) or geometry.get("type") not in (
            "Polygon",
            "MultiPolygon",
        ):
            raise InvalidInput("The GeoJSON must hold polygons", field="geojson")
        try:
            polygon = shape(geometry)
        except (ValueError, TypeError, IndexError, AttributeError) as exc:
            raise InvalidInput(f"Not a polygon: {exc}", field="geojson") from None
        if polygon.is_empty or not polygon.is_valid:
            raise InvalidInput(
                "The polygon is empty or crosses itself; check its coordinates", field="geojson"
            )
        minx, miny, maxx, maxy = polygon.bounds
        if minx < -180 or maxx > 180 or miny < -90 or maxy > 90:
            raise InvalidInput("Coordinates are longitude, latitude in degrees", field="geojson")
        shapes.append(polygon)
    if not shapes:
        raise InvalidInput("The GeoJSON holds no polygon", field="geojson")
    merged = unary_union(shapes)
    return dict(mapping(merged))


async def save_zone(session: AsyncSession, data: ZoneIn, zone_id: UUID | None = None) -> Zone:
    tenant = require_tenant()
    repo = PickupRepository(session)
    found = await repo.get_zone(zone_id) if zone_id is not None else None
    if zone_id is not None and found is None:
        raise NotFound("No such zone")
    if not data.name:
        raise InvalidInput("A zone needs a name", field="name")
    depot = await repo.get_depot(data.depot_id)
    if depot is None or depot.tenant_id != tenant:
        raise InvalidInput("No such depot", field="depot_id")
    exact, prefixes = parse_postal_codes(data.postal_codes)
    polygon = polygon_of(data.geojson) if data.geojson else None
    zone = found or Zone(tenant_id=tenant, name=data.name, depot_id=depot.id)
    if found is not None and polygon is None and not data.postal_codes:
        polygon = zone.polygon  # a change of name, depot or priority keeps the polygon
    if not exact and not prefixes and polygon is None:
        raise InvalidInput("Give postal codes or upload a GeoJSON polygon", field="postal_codes")
    same_name = await repo.zone_by_name(zone.tenant_id, data.name)
    if same_name is not None and same_name.id != zone.id:
        raise Conflict("There is already a zone called %(name)s", field="name", name=data.name)
    zone.name, zone.depot_id, zone.priority = data.name, depot.id, data.priority
    zone.postal_codes, zone.postal_prefixes, zone.polygon = exact, prefixes, polygon
    zone.active = True
    repo.add(zone)
    await repo.flush()
    return zone


async def retire_zone(session: AsyncSession, zone_id: UUID) -> Zone:
    repo = PickupRepository(session)
    zone = await repo.get_zone(zone_id)
    if zone is None:
        raise NotFound("No such zone")
    zone.active = False
    repo.add(zone)
    return zone


# -- lists and reports ----------------------------------------------------------------------------
async def orders(session: AsyncSession, by: Actor, where: OrderFilter) -> Sequence[Order]:
    if by.depot_ids is not None:
        where = OrderFilter(**{**where.__dict__, "depot_ids": by.depot_ids})
    return await PickupRepository(session).orders(where)


@dataclass
class Row:
    """One line of a report: a depot, a zone or the whole tenant."""

    name: str
    orders: int = 0
    completed: int = 0  # delivered, or picked up for pickup-only orders
    failed: int = 0
    cancelled: int = 0
    unserviceable: int = 0
    offers: int = 0
    accepted: int = 0
    rejected: int = 0
    failed_attempts: int = 0

    @property
    def acceptance_rate(self) -> float | None:
        answered = self.accepted + self.rejected
        return self.accepted / answered if answered else None

    @property
    def failure_rate(self) -> float | None:
        ended = self.completed + self.failed
        return self.failed / ended if ended else None


@dataclass
class Report:
    since: date
    until: date  # exclusive
    days: list[tuple[date, int]]
    depots: list[Row]
    zones: list[Row]
    total: Row


async def report(
    session: AsyncSession, since: date, until: date, timezone: str | None = None
) -> Report:
    """Bookings per day, per depot and per zone; acceptance and failure rates. Days are local
    days of the tenant's time zone; `until` is exclusive."""
    if until <= since:
        raise InvalidInput("The period must end after it starts", field="until")
    repo = PickupRepository(session)
    tz = zone_of(timezone or (await booking_rules(session)).timezone, "timezone")
    start, end = _at(since, time(0), tz), _at(until, time(0), tz)
    days = list(await repo.bookings_per_day(start, end, tz.key))
    depots = {d.id: d.name for d in await repo.depots()}
    zones = {z.id: z.name for z in await repo.zones()}
    total = Row("all")

    def rows(
        counts: dict[UUID | None, dict[str, int]], names: dict[UUID, str]
    ) -> dict[UUID | None, Row]:
        made: dict[UUID | None, Row] = {}
        for owner, by_status in counts.items():
            row = made[owner] = Row(names.get(owner, "—") if owner else "—")
            row.orders = by_status.get("orders", 0)
            row.completed = by_status.get("completed", 0)
            row.failed = by_status.get(S.FAILED, 0)
            row.cancelled = by_status.get(S.CANCELLED, 0)
            row.unserviceable = by_status.get(S.UNSERVICEABLE, 0)
        return made

    depot_rows = rows(await repo.orders_per("depot", start, end), depots)
    for depot_id, answers in (await repo.answers_per_depot(start, end)).items():
        offered = depot_rows.setdefault(depot_id, Row(depots.get(depot_id, "—")))
        offered.offers = sum(answers.values())
        offered.accepted = answers.get("accepted", 0)
        offered.rejected = answers.get("rejected", 0)
    for attempted_at, count in (await repo.failed_attempts_per_depot(start, end)).items():
        name = depots.get(attempted_at, "—") if attempted_at else "—"
        depot_rows.setdefault(attempted_at, Row(name)).failed_attempts = count
    zone_rows = rows(await repo.orders_per("zone", start, end), zones)
    for row in depot_rows.values():
        for name in (
            "orders",
            "completed",
            "failed",
            "cancelled",
            "unserviceable",
            "offers",
            "accepted",
            "rejected",
            "failed_attempts",
        ):
            setattr(total, name, getattr(total, name) + getattr(row, name))
    return Report(
        since=since,
        until=until,
        days=days,
        depots=sorted(depot_rows.values(), key=lambda r: r.name),
        zones=sorted(zone_rows.values(), key=lambda r: r.name),
        total=total,
    )
