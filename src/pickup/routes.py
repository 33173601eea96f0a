"""HTTP for pickup and delivery: the JSON API under /api/v1/pickup and the portal pages (orders,
the booking form, depots, zones, exceptions, the depot's own page, reports, booking rules).
Thin: the service decides; these turn forms and JSON into its calls and its answers into pages."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Awaitable, Callable, Sequence
from datetime import date, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode
from uuid import UUID
from zoneinfo import ZoneInfo

from litestar import Controller, Response, delete, get, post, put
from litestar.datastructures import UploadFile
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, HeaderParameter, JSONBody
from litestar.response import Redirect, Template
from openpyxl import load_workbook
from pydantic import ValidationError
from sqlmodel.ext.asyncio.session import AsyncSession

from depotline.auth import Principal, principal_of, requires, signed_in
from depotline.db import Database, utcnow
from depotline.errors import DomainError, InvalidInput, NotFound
from depotline.pages import Req, flash, form_of, refused, render
from depotline.problems import problem_response
from pickup import service
from pickup.models import Depot, Order, OrderKind, OrderStatus, Payment
from pickup.repository import OrderFilter, PickupRepository
from pickup.schemas import (
    LANGUAGES,
    AssignIn,
    BookingPrefill,
    DepotIn,
    DepotOut,
    OrderEventOut,
    OrderIn,
    OrderOut,
    ReasonIn,
    RescheduleIn,
    SettingsIn,
    StatusIn,
    ZoneIn,
    ZoneOut,
)
from pickup.service import Actor, BookingRuleBroken, DuplicateBooking
from telephony_gateway import service as gateway
from tenant.repository import TenantRepository

ADMINS = ("tenant_admin",)
MANAGERS = ("tenant_admin", "supervisor")
STAFF = ("tenant_admin", "supervisor", "agent")
VIEWERS = (*STAFF, "read_only")
DEPOT = "depot_user"
PARCEL_ROWS = 3


async def actor_of(session: AsyncSession, principal: Principal) -> Actor:
    """A depot user (or a depot's API key) acts for the depots it is linked to, and no others."""
    depots: set[UUID] = set()
    if principal.role == DEPOT and principal.user_id is not None:
        depots = await PickupRepository(session).depot_ids_of_user(principal.user_id)
    elif principal.role == DEPOT and principal.api_key_id is not None:
        depots = await PickupRepository(session).depot_ids_of_key(principal.api_key_id)
    return Actor.of(principal, depots)


def order_out(order: Order, timeline: Sequence[Any] = ()) -> OrderOut:
    out = OrderOut.model_validate(order)
    out.timeline = [OrderEventOut.model_validate(e) for e in timeline]
    return out


def _rule_extra(exc: BookingRuleBroken) -> dict[str, Any]:
    extra: dict[str, Any] = {
        "rule": exc.rule,
        "errors": [{"field": exc.field, "message": exc.detail}],
    }
    if exc.earliest:
        start, end = exc.earliest
        extra["earliest_window"] = {
            "window_start": start.isoformat(),
            "window_end": end.isoformat(),
            "timezone": str(start.tzinfo),
        }
    return extra


# -- JSON API -----------------------------------------------------------------------------------
class PickupApi(Controller):
    path = "/api/v1/pickup"
    tags = ["pickup and delivery"]
    guards = [signed_in]

    @post(
        "/orders",
        guards=[requires(*STAFF)],
        status_code=201,
        summary="Book a pickup or delivery (idempotent with an Idempotency-Key header)",
        description="409 with `existing_order` when an open order of the same customer, address "
        "and overlapping window exists, unless `deliberate` is true. 400 with `rule` and "
        "`earliest_window` when a booking rule forbids the window. The same Idempotency-Key "
        "with the same body answers with the same order; with another body, 422.",
    )
    async def create_order(
        self,
        request: Req,
        db: NamedDependency[Database],
        data: JSONBody[OrderIn],
        idempotency_key: Annotated[
            str | None, HeaderParameter(name="idempotency-key", required=False)
        ] = None,
    ) -> Response[Any]:
        try:
            async with db.session() as session:
                actor = await actor_of(session, principal_of(request))
                booking = await service.create_order(
                    session, actor, data, idempotency_key=idempotency_key
                )
        except DuplicateBooking as exc:
            extra = {
                "errors": [{"field": exc.field, "message": exc.detail}],
                "existing_order": order_out(exc.existing).model_dump(mode="json"),
            }
            return problem_response(request, 409, "Conflict", exc.detail, extra)
        except BookingRuleBroken as exc:
            return problem_response(request, 400, "Bad Request", exc.detail, _rule_extra(exc))
        headers = {"Idempotent-Replayed": "true"} if booking.replayed else {}
        body = order_out(booking.order).model_dump(mode="json")
        return Response(body, status_code=201, headers=headers)

    @get("/orders", guards=[requires(*VIEWERS, DEPOT)], summary="Orders, newest first")
    async def orders(
        self,
        request: Req,
        db: NamedDependency[Database],
        status: FromQuery[str | None] = None,
        q: FromQuery[str | None] = None,
        depot_id: FromQuery[UUID | None] = None,
        since: FromQuery[date | None] = None,
        until: FromQuery[date | None] = None,
    ) -> list[OrderOut]:
        async with db.session() as session:
            actor = await actor_of(session, principal_of(request))
            where = await _filter(session, status, q, depot_id, since, until)
            return [order_out(o) for o in await service.orders(session, actor, where)]

    @get("/orders/{order_id:uuid}", guards=[requires(*VIEWERS, DEPOT)])
    async def order(
        self, request: Req, db: NamedDependency[Database], order_id: FromPath[UUID]
    ) -> OrderOut:
        async with db.session() as session:
            actor = await actor_of(session, principal_of(request))
            order = await service.get_order(session, order_id, actor)
            return order_out(order, await service.timeline(session, order.id))

    @post(
        "/orders/{order_id:uuid}/cancel",
        guards=[requires(*STAFF)],
        status_code=200,
        summary="Cancel: at once, or asked of the depot while a driver is on the way; "
        "409 when a rule forbids it (the refusal is on the timeline)",
    )
    async def cancel(
        self,
        request: Req,
        db: NamedDependency[Database],
        order_id: FromPath[UUID],
        data: JSONBody[ReasonIn],
    ) -> Response[Any]:
        async with db.session() as session:
            actor = await actor_of(session, principal_of(request))
            outcome = await service.request_cancel(session, order_id, actor, data.reason)
        if outcome.outcome == "refused":
            return problem_response(
                request, 409, "Conflict", outcome.reason, {"outcome": "refused"}
            )
        body = {
            "outcome": outcome.outcome,
            "order": order_out(outcome.order).model_dump(mode="json"),
        }
        return Response(body, status_code=200)

    @post("/orders/{order_id:uuid}/reschedule", guards=[requires(*STAFF, DEPOT)], status_code=200)
    async def reschedule(
        self,
        request: Req,
        db: NamedDependency[Database],
        order_id: FromPath[UUID],
        data: JSONBody[RescheduleIn],
    ) -> Response[Any]:
        try:
            order = await self._act(
                request,
                db,
                lambda session, actor: service.reschedule(
                    session, order_id, actor, data.window_start, data.window_end, data.reason
                ),
            )
        except BookingRuleBroken as exc:
            return problem_response(request, 400, "Bad Request", exc.detail, _rule_extra(exc))
        return Response(order.model_dump(mode="json"), status_code=200)

    @post(
        "/orders/{order_id:uuid}/accept",
        guards=[requires(*STAFF, DEPOT)],
        status_code=200,
        summary="The assigned depot takes the order",
    )
    async def accept(
        self, request: Req, db: NamedDependency[Database], order_id: FromPath[UUID]
    ) -> OrderOut:
        return await self._act(
            request, db, lambda session, actor: service.depot_accepts(session, order_id, actor)
        )

    @post(
        "/orders/{order_id:uuid}/reject",
        guards=[requires(*STAFF, DEPOT)],
        status_code=200,
        summary="The assigned depot gives the order back; it goes to the next eligible depot",
    )
    async def reject(
        self,
        request: Req,
        db: NamedDependency[Database],
        order_id: FromPath[UUID],
        data: JSONBody[ReasonIn],
    ) -> OrderOut:
        return await self._act(
            request,
            db,
            lambda session, actor: service.depot_rejects(session, order_id, actor, data.reason),
        )

    @post(
        "/orders/{order_id:uuid}/status",
        guards=[requires(*STAFF, DEPOT)],
        status_code=200,
        summary="Report progress: driver_assigned, en_route, picked_up, attempt_failed (with a "
        "reason), out_for_delivery, delivered, failed; cancelled confirms a cancel request",
    )
    async def status(
        self,
        request: Req,
        db: NamedDependency[Database],
        order_id: FromPath[UUID],
        data: JSONBody[StatusIn],
    ) -> OrderOut:
        return await self._act(
            request,
            db,
            lambda session, actor: service.record_status(
                session, order_id, data.status, actor, data.reason, driver_name=data.driver_name
            ),
        )

    @post(
        "/orders/{order_id:uuid}/dispatch",
        guards=[requires(*STAFF)],
        status_code=200,
        summary="Dispatch an order on the exceptions list again",
    )
    async def dispatch_again(
        self, request: Req, db: NamedDependency[Database], order_id: FromPath[UUID]
    ) -> OrderOut:
        return await self._act(
            request, db, lambda session, actor: service.dispatch_again(session, order_id, actor)
        )

    @post(
        "/orders/{order_id:uuid}/assign",
        guards=[requires(*STAFF)],
        status_code=200,
        summary="Give an order waiting for a depot to a depot by hand",
    )
    async def assign(
        self,
        request: Req,
        db: NamedDependency[Database],
        order_id: FromPath[UUID],
        data: JSONBody[AssignIn],
    ) -> OrderOut:
        return await self._act(
            request,
            db,
            lambda session, actor: service.assign_to_depot(session, order_id, data.depot_id, actor),
        )

    async def _act(
        self,
        request: Req,
        db: Database,
        action: Callable[[AsyncSession, Actor], Awaitable[Order]],
    ) -> OrderOut:
        async with db.session() as session:
            actor = await actor_of(session, principal_of(request))
            order = await action(session, actor)
            return order_out(order, await service.timeline(session, order.id))

    @get("/exceptions", guards=[requires(*VIEWERS)], summary="Orders that need staff")
    async def exceptions(self, db: NamedDependency[Database]) -> list[OrderOut]:
        async with db.session() as session:
            return [order_out(o) for o in await PickupRepository(session).exceptions()]

    @get("/depots", guards=[requires(*VIEWERS)])
    async def depots(self, db: NamedDependency[Database]) -> list[DepotOut]:
        async with db.session() as session:
            return [DepotOut.model_validate(d) for d in await PickupRepository(session).depots()]

    @get("/depots/{depot_id:uuid}", guards=[requires(*VIEWERS)])
    async def depot(self, db: NamedDependency[Database], depot_id: FromPath[UUID]) -> DepotOut:
        async with db.session() as session:
            found = await PickupRepository(session).get_depot(depot_id)
        if found is None:
            raise NotFound("No such depot")
        return DepotOut.model_validate(found)

    @post("/depots", guards=[requires(*ADMINS)], status_code=201)
    async def create_depot(
        self, db: NamedDependency[Database], data: JSONBody[DepotIn]
    ) -> DepotOut:
        async with db.session() as session:
            return DepotOut.model_validate(await service.save_depot(session, data))

    @put("/depots/{depot_id:uuid}", guards=[requires(*ADMINS)])
    async def change_depot(
        self, db: NamedDependency[Database], depot_id: FromPath[UUID], data: JSONBody[DepotIn]
    ) -> DepotOut:
        async with db.session() as session:
            return DepotOut.model_validate(await service.save_depot(session, data, depot_id))

    @get("/zones", guards=[requires(*VIEWERS)])
    async def zones(self, db: NamedDependency[Database]) -> list[ZoneOut]:
        async with db.session() as session:
            return [ZoneOut.model_validate(z) for z in await PickupRepository(session).zones()]

    @get("/zones/{zone_id:uuid}", guards=[requires(*VIEWERS)])
    async def zone(self, db: NamedDependency[Database], zone_id: FromPath[UUID]) -> ZoneOut:
        async with db.session() as session:
            found = await PickupRepository(session).get_zone(zone_id)
        if found is None:
            raise NotFound("No such zone")
        return ZoneOut.model_validate(found)

    @post(
        "/zones",
        guards=[requires(*ADMINS)],
        status_code=201,
        summary="Add a zone: postal codes (exact, or prefixes like 510xxx) and/or GeoJSON",
    )
    async def create_zone(self, db: NamedDependency[Database], data: JSONBody[ZoneIn]) -> ZoneOut:
        async with db.session() as session:
            return ZoneOut.model_validate(await service.save_zone(session, data))

    @put("/zones/{zone_id:uuid}", guards=[requires(*ADMINS)])
    async def change_zone(
        self, db: NamedDependency[Database], zone_id: FromPath[UUID], data: JSONBody[ZoneIn]
    ) -> ZoneOut:
        async with db.session() as session:
            return ZoneOut.model_validate(await service.save_zone(session, data, zone_id))

    @delete("/zones/{zone_id:uuid}", guards=[requires(*ADMINS)], status_code=204)
    async def retire_zone(self, db: NamedDependency[Database], zone_id: FromPath[UUID]) -> None:
        async with db.session() as session:
            await service.retire_zone(session, zone_id)

    @get(
        "/reports",
        guards=[requires(*VIEWERS)],
        summary="Bookings per day, depot and zone; acceptance and failure rates",
    )
    async def reports(
        self,
        db: NamedDependency[Database],
        since: FromQuery[date | None] = None,
        until: FromQuery[date | None] = None,
    ) -> dict[str, Any]:
        async with db.session() as session:
            found = await _report(session, since, until)
        return report_json(found)

    @get("/settings", guards=[requires(*VIEWERS)], summary="Booking rules")
    async def settings(self, db: NamedDependency[Database]) -> SettingsIn:
        async with db.session() as session:
            rules = await service.booking_rules(session)
        return SettingsIn.model_validate(rules, from_attributes=True)

    @put("/settings", guards=[requires(*ADMINS)], summary="Change the booking rules")
    async def save_settings(
        self, db: NamedDependency[Database], data: JSONBody[SettingsIn]
    ) -> SettingsIn:
        async with db.session() as session:
            rules = await service.save_rules(session, data)
        return SettingsIn.model_validate(rules, from_attributes=True)


async def _filter(
    session: AsyncSession,
    status: str | None,
    q: str | None,
    depot_id: UUID | None,
    since: date | None,
    until: date | None,
) -> OrderFilter:
    tz = ZoneInfo((await service.booking_rules(session)).timezone)
    if status and status not in {s.value for s in OrderStatus}:
        raise InvalidInput("Not a status", field="status")
    return OrderFilter(
        status=status or None,
        q=(q or "").strip() or None,
        depot_id=depot_id,
        since=datetime.combine(since, datetime.min.time(), tzinfo=tz) if since else None,
        until=datetime.combine(until + timedelta(days=1), datetime.min.time(), tzinfo=tz)
        if until
        else None,
    )


async def _report(session: AsyncSession, since: date | None, until: date | None) -> service.Report:
    tz = ZoneInfo((await service.booking_rules(session)).timezone)
    today = utcnow().astimezone(tz).date()
    return await service.report(
        session, since or today - timedelta(days=6), (until or today) + timedelta(days=1)
    )


def report_json(found: service.Report) -> dict[str, Any]:
    def row(r: service.Row) -> dict[str, Any]:
        return {
            "name": r.name,
            "orders": r.orders,
            "completed": r.completed,
            "failed": r.failed,
            "cancelled": r.cancelled,
            "unserviceable": r.unserviceable,
            "offers": r.offers,
            "accepted": r.accepted,
            "rejected": r.rejected,
            "failed_attempts": r.failed_attempts,
            "acceptance_rate": r.acceptance_rate,
            "failure_rate": r.failure_rate,
        }

    return {
        "since": found.since.isoformat(),
        "until": (found.until - timedelta(days=1)).isoformat(),
        "bookings_per_day": [{"day": d.isoformat(), "bookings": n} for d, n in found.days],
        "depots": [row(r) for r in found.depots],
        "zones": [row(r) for r in found.zones],
        "total": row(found.total),
    }


# -- the booking form ---------------------------------------------------------------------------
def _form_field(location: Sequence[Any]) -> str:
    """The form's name for a field of OrderIn: sender.phone -> sender_phone."""
    parts = [str(p) for p in location]
    if parts and parts[0] == "parcels" and len(parts) >= 3:
        return f"parcel_{parts[1]}_{parts[2]}"
    return "_".join(parts)


def order_in_from_form(form: dict[str, str], timezone: str) -> OrderIn:
    """The booking form as an OrderIn; a wrong field is a 400 naming the form's field."""
    if form.get("use_earliest"):
        start_text, _, end_text = form["use_earliest"].partition("|")
        form = {**form, "date": start_text[:10], "start_time": start_text[11:16]}
        form["end_time"] = end_text[11:16]
    known = form.get("known_address", "")
    if known:
        try:
            chosen = json.loads(known)
        except ValueError:
            raise InvalidInput("Choose one of the known addresses", field="known_address") from None
        who = "receiver" if form.get("kind") == OrderKind.DELIVERY else "sender"
        for name in ("address", "city", "postal_code", "lat", "lon"):
            if chosen.get(name) not in (None, "") and not form.get(f"{who}_{name}"):
                form = {**form, f"{who}_{name}": str(chosen[name])}
    day = form.get("date", "")
    parcels = []
    for row in range(PARCEL_ROWS):
        fields = {
            name: form.get(f"parcel_{row}_{name}", "").strip()
            for name in (
                "count",
                "weight_kg",
                "length_cm",
                "width_cm",
                "height_cm",
                "declared_value",
            )
        }
        if any(fields.values()):
            parcels.append({k: v for k, v in fields.items() if v})

    def party(prefix: str) -> dict[str, Any]:
        values: dict[str, Any] = {
            name: form.get(f"{prefix}_{name}", "").strip()
            for name in ("name", "phone", "address", "city", "postal_code")
        }
        for name in ("lat", "lon"):
            raw = form.get(f"{prefix}_{name}", "").strip()
            values[name] = raw or None
        values["phone"] = values["phone"] or None
        return values

    raw = {
        "kind": form.get("kind") or OrderKind.PICKUP,
        "sender": party("sender"),
        "receiver": party("receiver"),
        "window_start": f"{day}T{form.get('start_time', '')}" if day else "",
        "window_end": f"{day}T{form.get('end_time', '')}" if day else "",
        "timezone": form.get("timezone") or timezone,
        "parcels": parcels,
        "notes": form.get("notes", ""),
        "payment": form.get("payment") or Payment.PREPAID,
        "cash_amount": form.get("cash_amount") or None,
        "customer_id": form.get("customer_id") or None,
        "contact_phone": form.get("contact_phone") or None,
        "language": form.get("language") or "zh_Hans",
        "notify_sms": form.get("notify_sms") == "on",
        "deliberate": form.get("deliberate") == "on",
    }
    if not day:
        raise InvalidInput("Choose the day of the visit", field="date")
    if not parcels:
        raise InvalidInput("Add at least one parcel with its weight", field="parcel_0_weight_kg")
    try:
        return OrderIn.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise InvalidInput(first["msg"], field=_form_field(first["loc"])) from None


FORM_DEFAULTS = {
    "kind": "pickup",
    "payment": "prepaid",
    "language": "zh_Hans",
    "notify_sms": "on",
    "parcel_0_count": "1",
}


# -- pages --------------------------------------------------------------------------------------
def _safe_next(path: str | None, default: str) -> str:
    return path if path and path.startswith("/") and not path.startswith("//") else default


class PickupPages(Controller):
    path = "/pickup"
    include_in_schema = False
    guards = [signed_in]

    @get("/")
    async def start(self, request: Req) -> Redirect:
        if principal_of(request).role == DEPOT:
            return Redirect(path="/pickup/depot")
        return Redirect(path="/pickup/orders")

    # -- orders ------------------------------------------------------------------------------
    @get("/orders", guards=[requires(*VIEWERS)])
    async def orders(
        self,
        request: Req,
        db: NamedDependency[Database],
        status: FromQuery[str | None] = None,
        q: FromQuery[str | None] = None,
        depot_id: FromQuery[str | None] = None,
        since: FromQuery[str | None] = None,
        until: FromQuery[str | None] = None,
    ) -> Template:
        async with db.session() as session:
            actor = await actor_of(session, principal_of(request))
            try:
                where = await _filter(
                    session,
                    status or None,
                    q,
                    UUID(depot_id) if depot_id else None,
                    date.fromisoformat(since) if since else None,
                    date.fromisoformat(until) if until else None,
                )
            except ValueError:
                raise InvalidInput("A date like 2026-12-01", field="since") from None
            found = await service.orders(session, actor, where)
            repo = PickupRepository(session)
            depots = {d.id: d for d in await repo.depots()}
            alerts = await repo.count_unserviceable()
        return render(
            request,
            "pickup/orders.html",
            orders=found,
            depots=depots,
            alerts=alerts,
            statuses=[s.value for s in OrderStatus],
            filters={
                "status": status or "",
                "q": q or "",
                "depot_id": depot_id or "",
                "since": since or "",
                "until": until or "",
            },
            local=_local_time,
        )

    @get("/orders/new", guards=[requires(*STAFF)])
    async def new_order(self, request: Req, db: NamedDependency[Database]) -> Template:
        params = {k: v for k, v in request.query_params.items() if isinstance(v, str)}
        prefill = BookingPrefill.from_query(params, request.query_params.getall("address", []))
        return await self._booking_page(request, db, prefill=prefill)

    async def _booking_page(
        self,
        request: Req,
        db: Database,
        *,
        status_code: int = 200,
        values: dict[str, str] | None = None,
        prefill: BookingPrefill | None = None,
        error: DomainError | None = None,
        duplicate: Order | None = None,
    ) -> Template:
        async with db.session() as session:
            rules = await service.booking_rules(session)
            alerts = await PickupRepository(session).count_unserviceable()
        values = {**FORM_DEFAULTS, **(values or {})}
        prefill = prefill or BookingPrefill()
        for name in ("sender_name", "sender_phone", "customer_id", "language"):
            if getattr(prefill, name) and not (values or {}).get(name):
                values[name] = getattr(prefill, name)
        if "date" not in values:
            start, end = service.earliest_window(
                rules, ZoneInfo(rules.timezone), utcnow(), timedelta(hours=2)
            )
            values.update(
                date=start.date().isoformat(),
                start_time=start.strftime("%H:%M"),
                end_time=end.strftime("%H:%M"),
            )
        return render(
            request,
            "pickup/new_order.html",
            status_code,
            values=values,
            prefill=prefill,
            error=error,
            duplicate=duplicate,
            rules=rules,
            alerts=alerts,
            languages=LANGUAGES,
            local=_local_time,
        )

    @post("/orders", guards=[requires(*STAFF)])
    async def book(self, request: Req, db: NamedDependency[Database]) -> Redirect | Template:
        form = await form_of(request)
        form.pop("_csrf", None)
        try:
            async with db.session() as session:
                rules = await service.booking_rules(session)
                data = order_in_from_form(form, rules.timezone)
                actor = await actor_of(session, principal_of(request))
                booking = await service.create_order(session, actor, data)
        except DuplicateBooking as exc:
            return await self._booking_page(
                request, db, status_code=409, values=form, error=exc, duplicate=exc.existing
            )
        except DomainError as exc:
            return await self._booking_page(
                request, db, status_code=exc.status, values=form, error=exc
            )
        flash(request, "Order booked")
        return Redirect(path=f"/pickup/orders/{booking.order.id}")

    @get("/orders/{order_id:uuid}", guards=[requires(*VIEWERS, DEPOT)])
    async def order(
        self, request: Req, db: NamedDependency[Database], order_id: FromPath[UUID]
    ) -> Template:
        async with db.session() as session:
            actor = await actor_of(session, principal_of(request))
            order = await service.get_order(session, order_id, actor)
            events = await service.timeline(session, order.id)
            repo = PickupRepository(session)
            depots = {d.id: d for d in await repo.depots(order.tenant_id)}
            zone = await repo.get_zone(order.zone_id) if order.zone_id else None
            depot = depots.get(order.depot_id) if order.depot_id else None
            messages = await _sms_of(session, order, depot)
            assignments = await repo.assignments(order.id)
        return render(
            request,
            "pickup/order.html",
            order=order,
            events=events,
            depots=depots,
            zone=zone,
            messages=messages,
            assignments=assignments,
            next_statuses=sorted(service.allowed_next(order) & service.REPORTED),
            is_depot=actor.depot_ids is not None,
            local=_local_time,
        )

    async def _order_action(
        self,
        request: Req,
        db: Database,
        order_id: UUID,
        action: Callable[[AsyncSession, Actor, dict[str, str]], Awaitable[object]],
        success: str | None,
    ) -> Redirect:
        """Run an action on an order from a form: the order is looked up (and may be another
        tenant's: 404) before anything else; its outcome is shown on the page we go back to."""
        form = await form_of(request)
        to = _safe_next(form.get("next"), f"/pickup/orders/{order_id}")
        try:
            async with db.session() as session:
                actor = await actor_of(session, principal_of(request))
                await service.get_order(session, order_id, actor)
                await action(session, actor, form)
        except NotFound:
            raise
        except DomainError as exc:
            refused(request, exc)
        else:
            if success:
                flash(request, success)
        return Redirect(path=to)

    @post("/orders/{order_id:uuid}/cancel", guards=[requires(*STAFF)])
    async def cancel(
        self, request: Req, db: NamedDependency[Database], order_id: FromPath[UUID]
    ) -> Redirect:
        async def action(session: AsyncSession, actor: Actor, form: dict[str, str]) -> None:
            outcome = await service.request_cancel(session, order_id, actor, form.get("reason", ""))
            messages = {
                "cancelled": "Order cancelled",
                "requested": "The depot has been asked to confirm the cancellation",
                "already": "The order was already cancelled",
            }
            if outcome.outcome == "refused":
                flash(request, outcome.reason, "error")
            else:
                flash(request, messages[outcome.outcome])

        return await self._order_action(request, db, order_id, action, None)

    @post("/orders/{order_id:uuid}/reschedule", guards=[requires(*STAFF, DEPOT)])
    async def reschedule(
        self, request: Req, db: NamedDependency[Database], order_id: FromPath[UUID]
    ) -> Redirect:
        async def action(session: AsyncSession, actor: Actor, form: dict[str, str]) -> None:
            day = form.get("date", "")
            try:
                start = datetime.fromisoformat(f"{day}T{form.get('start_time', '')}")
                end = datetime.fromisoformat(f"{day}T{form.get('end_time', '')}")
            except ValueError:
                raise InvalidInput(
                    "Choose a day and the start and end times", field="date"
                ) from None
            await service.reschedule(session, order_id, actor, start, end, form.get("reason", ""))

        return await self._order_action(request, db, order_id, action, "New window saved")

    @post("/orders/{order_id:uuid}/accept", guards=[requires(*STAFF, DEPOT)])
    async def accept(
        self, request: Req, db: NamedDependency[Database], order_id: FromPath[UUID]
    ) -> Redirect:
        async def action(session: AsyncSession, actor: Actor, form: dict[str, str]) -> None:
            await service.depot_accepts(session, order_id, actor)

        return await self._order_action(request, db, order_id, action, "Order accepted")

    @post("/orders/{order_id:uuid}/reject", guards=[requires(*STAFF, DEPOT)])
    async def reject(
        self, request: Req, db: NamedDependency[Database], order_id: FromPath[UUID]
    ) -> Redirect:
        async def action(session: AsyncSession, actor: Actor, form: dict[str, str]) -> None:
            await service.depot_rejects(session, order_id, actor, form.get("reason", ""))

        return await self._order_action(
            request, db, order_id, action, "Order rejected: it goes to the next depot"
        )

    @post("/orders/{order_id:uuid}/status", guards=[requires(*STAFF, DEPOT)])
    async def status(
        self, request: Req, db: NamedDependency[Database], order_id: FromPath[UUID]
    ) -> Redirect:
        async def action(session: AsyncSession, actor: Actor, form: dict[str, str]) -> None:
            await service.record_status(
                session,
                order_id,
                form.get("status", ""),
                actor,
                form.get("reason", ""),
                driver_name=form.get("driver_name") or None,
            )

        return await self._order_action(request, db, order_id, action, "Status updated")

    @post("/orders/{order_id:uuid}/dispatch", guards=[requires(*STAFF)])
    async def dispatch_again(
        self, request: Req, db: NamedDependency[Database], order_id: FromPath[UUID]
    ) -> Redirect:
        async def action(session: AsyncSession, actor: Actor, form: dict[str, str]) -> None:
            await service.dispatch_again(session, order_id, actor)

        return await self._order_action(request, db, order_id, action, "Dispatched again")

    @post("/orders/{order_id:uuid}/assign", guards=[requires(*STAFF)])
    async def assign(
        self, request: Req, db: NamedDependency[Database], order_id: FromPath[UUID]
    ) -> Redirect:
        async def action(session: AsyncSession, actor: Actor, form: dict[str, str]) -> None:
            try:
                depot_id = UUID(form.get("depot_id", ""))
            except ValueError:
                raise InvalidInput("Choose a depot", field="depot_id") from None
            await service.assign_to_depot(session, order_id, depot_id, actor)

        return await self._order_action(request, db, order_id, action, "Order assigned")

    @get("/exceptions", guards=[requires(*VIEWERS)])
    async def exceptions(self, request: Req, db: NamedDependency[Database]) -> Template:
        async with db.session() as session:
            repo = PickupRepository(session)
            found = await repo.exceptions()
            depots = await repo.depots()
        return render(
            request,
            "pickup/exceptions.html",
            unserviceable=[o for o in found if o.status == OrderStatus.UNSERVICEABLE],
            failed_attempts=[o for o in found if o.status == OrderStatus.ATTEMPT_FAILED],
            depots=depots,
            local=_local_time,
        )

    # -- the depot's page ----------------------------------------------------------------------
    @get("/depot", guards=[requires(*VIEWERS, DEPOT)])
    async def depot_board(
        self, request: Req, db: NamedDependency[Database], depot_id: FromQuery[str | None] = None
    ) -> Template:
        """A depot's work: offers to answer and jobs to report on. Depot users see their own
        depots; staff choose one."""
        async with db.session() as session:
            actor = await actor_of(session, principal_of(request))
            repo = PickupRepository(session)
            depots = [
                d for d in await repo.depots() if actor.depot_ids is None or d.id in actor.depot_ids
            ]
            chosen = next(
                (d for d in depots if str(d.id) == depot_id), depots[0] if depots else None
            )
            found: Sequence[Order] = []
            if chosen is not None:
                found = await repo.orders(OrderFilter(depot_id=chosen.id, limit=500))
        active = [o for o in found if service.is_open(o)]
        return render(
            request,
            "pickup/depot_board.html",
            depots=depots,
            depot=chosen,
            offers=[
                o
                for o in active
                if o.status == OrderStatus.DEPOT_ASSIGNED and not o.depot_accepted_at
            ],
            jobs=[
                o for o in active if o.status != OrderStatus.DEPOT_ASSIGNED or o.depot_accepted_at
            ],
            allowed={o.id: sorted(service.allowed_next(o) & service.REPORTED) for o in active},
            local=_local_time,
        )

    # -- depots and zones ----------------------------------------------------------------------
    @get("/depots", guards=[requires(*VIEWERS)])
    async def depots(self, request: Req, db: NamedDependency[Database]) -> Template:
        async with db.session() as session:
            repo = PickupRepository(session)
            found = await repo.depots()
            zones = await repo.zones()
        return render(request, "pickup/depots.html", depots=found, zones=zones, languages=LANGUAGES)

    @post("/depots", guards=[requires(*ADMINS)])
    async def create_depot(self, request: Req, db: NamedDependency[Database]) -> Redirect:
        form = await form_of(request)
        try:
            async with db.session() as session:
                depot = await service.save_depot(session, _depot_in(form))
        except DomainError as exc:
            refused(request, exc)
            return Redirect(path="/pickup/depots")
        flash(request, "Depot saved")
        return Redirect(path=f"/pickup/depots/{depot.id}")

    @get("/depots/{depot_id:uuid}", guards=[requires(*VIEWERS)])
    async def depot(
        self, request: Req, db: NamedDependency[Database], depot_id: FromPath[UUID]
    ) -> Template:
        async with db.session() as session:
            repo = PickupRepository(session)
            found = await repo.get_depot(depot_id)
            if found is None:
                raise NotFound("No such depot")
            links = await repo.depot_users(depot_id)
            key_links = {link.api_key_id for link in await repo.depot_keys(depot_id)}
            tenants = TenantRepository(session)
            members = await tenants.members([found.tenant_id])
            depot_keys = [
                k for k in await tenants.api_keys() if k.role == DEPOT and k.revoked_at is None
            ]
            zones = [z for z in await repo.zones(found.tenant_id) if z.depot_id == depot_id]
        names = {user.id: user for _, user in members}
        return render(
            request,
            "pickup/depot.html",
            depot=found,
            zones=zones,
            users=[names[link.user_id] for link in links if link.user_id in names],
            candidates=[user for m, user in members if m.role == DEPOT],
            keys=[k for k in depot_keys if k.id in key_links],
            key_candidates=[k for k in depot_keys if k.id not in key_links],
            languages=LANGUAGES,
        )

    @post("/depots/{depot_id:uuid}", guards=[requires(*ADMINS)])
    async def change_depot(
        self, request: Req, db: NamedDependency[Database], depot_id: FromPath[UUID]
    ) -> Redirect:
        form = await form_of(request)
        async with db.session() as session:
            if await PickupRepository(session).get_depot(depot_id) is None:
                raise NotFound("No such depot")
        try:
            async with db.session() as session:
                await service.save_depot(session, _depot_in(form), depot_id)
        except DomainError as exc:
            refused(request, exc)
        else:
            flash(request, "Depot saved")
        return Redirect(path=f"/pickup/depots/{depot_id}")

    @post("/depots/{depot_id:uuid}/users", guards=[requires(*ADMINS)])
    async def add_depot_user(
        self, request: Req, db: NamedDependency[Database], depot_id: FromPath[UUID]
    ) -> Redirect:
        form = await form_of(request)
        async with db.session() as session:
            depot = await PickupRepository(session).get_depot(depot_id)
            if depot is None:
                raise NotFound("No such depot")
            try:
                user_id = UUID(form.get("user_id", ""))
                member = await TenantRepository(session).membership(depot.tenant_id, user_id)
                if member is None or member.role != DEPOT:
                    raise InvalidInput("Choose a member with the depot user role", field="user_id")
            except (ValueError, DomainError) as exc:
                flash(request, getattr(exc, "detail", "Choose a depot user"), "error")
                return Redirect(path=f"/pickup/depots/{depot_id}")
            await service.add_depot_user(session, depot_id, user_id)
        flash(request, "Depot user added")
        return Redirect(path=f"/pickup/depots/{depot_id}")

    @post("/depots/{depot_id:uuid}/keys", guards=[requires(*ADMINS)])
    async def add_depot_key(
        self, request: Req, db: NamedDependency[Database], depot_id: FromPath[UUID]
    ) -> Redirect:
        form = await form_of(request)
        async with db.session() as session:
            if await PickupRepository(session).get_depot(depot_id) is None:
                raise NotFound("No such depot")
            try:
                key_id: UUID | None = UUID(form.get("api_key_id", ""))
            except ValueError:
                key_id = None
            keys = {k.id: k for k in await TenantRepository(session).api_keys()}
            key = keys.get(key_id) if key_id else None
            if key is None or key.role != DEPOT or key.revoked_at is not None:
                flash(request, "Choose an API key with the depot user role", "error")
                return Redirect(path=f"/pickup/depots/{depot_id}")
            await service.add_depot_key(session, depot_id, key.id)
        flash(request, "API key added")
        return Redirect(path=f"/pickup/depots/{depot_id}")

    @get("/zones", guards=[requires(*VIEWERS)])
    async def zones(self, request: Req, db: NamedDependency[Database]) -> Template:
        async with db.session() as session:
            repo = PickupRepository(session)
            found = await repo.zones()
            depots = {d.id: d for d in await repo.depots()}
        return render(request, "pickup/zones.html", zones=found, depots=depots)

    @post("/zones", guards=[requires(*ADMINS)])
    async def create_zone(self, request: Req, db: NamedDependency[Database]) -> Redirect:
        """Postal codes typed in or uploaded (.xlsx, .csv, .txt: first column), and/or a GeoJSON
        polygon uploaded (.geojson, .json)."""
        form = await request.form()
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        upload = form.get("file")
        try:
            codes = [fields.get("postal_codes", "")]
            geojson = None
            if isinstance(upload, UploadFile) and upload.filename:
                content = await upload.read()
                if len(content) > 5_000_000:
                    raise InvalidInput("Upload at most 5 MB", field="file")
                geojson, listed = read_zone_file(upload.filename, content)
                codes += listed
            try:
                depot_id = UUID(fields.get("depot_id", ""))
                priority = int(fields.get("priority") or 0)
            except ValueError:
                raise InvalidInput(
                    "Choose a depot and a whole-number priority", field="depot_id"
                ) from None
            async with db.session() as session:
                await service.save_zone(
                    session,
                    ZoneIn(
                        name=fields.get("name", "").strip(),
                        depot_id=depot_id,
                        priority=priority,
                        postal_codes=[c for c in codes if c.strip()],
                        geojson=geojson,
                    ),
                )
        except DomainError as exc:
            refused(request, exc)
        else:
            flash(request, "Zone saved")
        return Redirect(path="/pickup/zones")

    @post("/zones/{zone_id:uuid}/retire", guards=[requires(*ADMINS)])
    async def retire_zone(
        self, request: Req, db: NamedDependency[Database], zone_id: FromPath[UUID]
    ) -> Redirect:
        async with db.session() as session:
            await service.retire_zone(session, zone_id)
        flash(request, "Zone retired")
        return Redirect(path="/pickup/zones")

    # -- reports and rules ---------------------------------------------------------------------
    @get("/reports", guards=[requires(*VIEWERS)])
    async def reports(
        self,
        request: Req,
        db: NamedDependency[Database],
        since: FromQuery[str | None] = None,
        until: FromQuery[str | None] = None,
    ) -> Template:
        try:
            first = date.fromisoformat(since) if since else None
            last = date.fromisoformat(until) if until else None
        except ValueError:
            raise InvalidInput("A date like 2026-12-01", field="since") from None
        async with db.session() as session:
            found = await _report(session, first, last)
        return render(
            request,
            "pickup/reports.html",
            report=found,
            last_day=found.until - timedelta(days=1),
        )

    @get("/settings", guards=[requires(*VIEWERS)])
    async def settings(self, request: Req, db: NamedDependency[Database]) -> Template:
        async with db.session() as session:
            rules = await service.booking_rules(session)
        return render(request, "pickup/settings.html", rules=rules)

    @post("/settings", guards=[requires(*ADMINS)])
    async def save_settings(self, request: Req, db: NamedDependency[Database]) -> Redirect:
        form = await form_of(request)
        form.pop("_csrf", None)
        try:
            data = SettingsIn.model_validate({k: v for k, v in form.items() if v != ""})
        except ValidationError as exc:
            first = exc.errors()[0]
            flash(request, f"{'.'.join(map(str, first['loc']))}: {first['msg']}", "error")
            return Redirect(path="/pickup/settings")
        try:
            async with db.session() as session:
                await service.save_rules(session, data)
        except DomainError as exc:
            refused(request, exc)
        else:
            flash(request, "Booking rules saved")
        return Redirect(path="/pickup/settings")


def _depot_in(form: dict[str, str]) -> DepotIn:
    def number(name: str) -> int | None:
        raw = form.get(name, "").strip()
        if not raw:
            return None
        try:
            return int(raw)
        except ValueError:
            raise InvalidInput("A whole number", field=name) from None

    raw: dict[str, Any] = {
        "name": form.get("name", ""),
        "code": form.get("code", ""),
        "address": form.get("address", ""),
        "city": form.get("city", ""),
        "postal_code": form.get("postal_code", ""),
        "timezone": form.get("timezone") or "Asia/Shanghai",
        "opens_at": form.get("opens_at") or "08:00",
        "closes_at": form.get("closes_at") or "20:00",
        "open_days": [
            int(d) for d in form.get("open_days", "1,2,3,4,5,6").split(",") if d.strip().isdigit()
        ],
        "sms_contacts": form.get("sms_contacts", "").replace(",", "\n").splitlines(),
        "language": form.get("language") or "zh_Hans",
        "daily_capacity": number("daily_capacity"),
        "slot_minutes": number("slot_minutes") or 120,
        "slot_capacity": number("slot_capacity"),
        "active": form.get("active", "on") == "on",
    }
    try:
        return DepotIn.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise InvalidInput(first["msg"], field=str(first["loc"][0])) from None


def read_zone_file(filename: str, content: bytes) -> tuple[dict[str, Any] | None, list[str]]:
    """(GeoJSON, postal codes) from an uploaded file, by its extension."""
    name = filename.lower()
    if name.endswith((".geojson", ".json")):
        try:
            loaded = json.loads(content.decode("utf-8-sig"))
        except (UnicodeDecodeError, ValueError):
            raise InvalidInput("The file is not GeoJSON", field="file") from None
        if not isinstance(loaded, dict):
            raise InvalidInput("The file is not GeoJSON", field="file")
        return loaded, []
    if name.endswith(".xlsx"):
        try:
            book = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
        except Exception:  # openpyxl raises many kinds for a file that is not a workbook
            raise InvalidInput("The file is not an Excel workbook (.xlsx)", field="file") from None
        sheet = book.worksheets[0]
        codes = [
            str(row[0]).strip()
            for row in sheet.iter_rows(values_only=True)
            if row and row[0] is not None
        ]
        book.close()
        return None, [c for c in codes if any(ch.isdigit() for ch in c)]
    if name.endswith((".csv", ".txt")):
        try:
            text = content.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise InvalidInput("The file must be UTF-8 text", field="file") from None
        rows = csv.reader(io.StringIO(text))
        codes = [row[0].strip() for row in rows if row and row[0].strip()]
        return None, [c for c in codes if any(ch.isdigit() for ch in c)]
    raise InvalidInput("Upload .geojson, .json, .xlsx, .csv or .txt", field="file")


async def _sms_of(session: AsyncSession, order: Order, depot: Depot | None) -> list[Any]:
    """The order's SMS: with the customer since it was booked, and to its depot naming it."""
    found: dict[UUID, Any] = {}
    if order.contact_phone:
        for message in await gateway.sms_log(session, order.contact_phone):
            if message.created_at >= order.created_at:
                found[message.id] = message
    for phone in depot.sms_contacts if depot else []:
        for message in await gateway.sms_log(session, phone):
            if order.number in message.body or f" {order.seq}" in f" {message.body}":
                found[message.id] = message
    return sorted(found.values(), key=lambda m: m.created_at)


def _local_time(moment: datetime | None, timezone: str, fmt: str = "%Y-%m-%d %H:%M") -> str:
    if moment is None:
        return ""
    return moment.astimezone(ZoneInfo(timezone)).strftime(fmt)


def booking_link(prefill: BookingPrefill) -> str:
    """The booking form's address, prefilled: what the agent desktop links to."""
    params: list[tuple[str, str]] = [
        (name, getattr(prefill, name))
        for name in ("sender_name", "sender_phone", "customer_id", "language")
        if getattr(prefill, name)
    ]
    params += [
        ("address", f"{a.get('postal_code', '')}|{a.get('address', '')}")
        for a in prefill.known_addresses
    ]
    return "/pickup/orders/new" + (f"?{urlencode(params)}" if params else "")


__all__ = ["PickupApi", "PickupPages", "booking_link", "order_in_from_form"]
