"""Every query of pickup and delivery.

Lists show what row-level security lets the acting tenant see (an HQ sees its branches). The
decisions that belong to one tenant (dispatch, numbering, booking rules, duplicates) filter by
that tenant explicitly: an HQ's depots never take a branch's orders.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import ColumnElement, Date, Text, and_, cast, func, or_, text
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from pickup.models import (
    OPEN_STATUSES,
    Assignment,
    Depot,
    DepotKey,
    DepotUser,
    Order,
    OrderCounter,
    OrderEvent,
    OrderKind,
    OrderStatus,
    PickupSettings,
    Zone,
)


@dataclass(frozen=True)
class OrderFilter:
    status: str | None = None
    depot_id: UUID | None = None
    #: An order number, a phone number or part of an address.
    q: str | None = None
    #: Window start from / before (UTC).
    since: datetime | None = None
    until: datetime | None = None
    depot_ids: frozenset[UUID] | None = None  # a depot user sees their depots' orders only
    limit: int = 200


class PickupRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, *rows: object) -> None:
        self.session.add_all(rows)

    async def flush(self) -> None:
        await self.session.flush()

    async def lock(self, *key: object) -> None:
        """A transaction-long lock on a name: serialises decisions on one depot's capacity
        (counted, then taken) and bookings with one idempotency key."""
        name = ":".join(str(part) for part in key)
        await self.session.execute(
            text("select pg_advisory_xact_lock(hashtextextended(:k, 0))"), {"k": name}
        )

    # -- settings and numbering --------------------------------------------------------------
    async def settings(self, tenant_id: UUID) -> PickupSettings | None:
        query = select(PickupSettings).where(PickupSettings.tenant_id == tenant_id)
        return (await self.session.exec(query)).first()

    async def next_seq(self, tenant_id: UUID, year: int) -> int:
        """The next order number of the tenant's year. The row lock it takes lasts until commit,
        so numbers are never given twice and never skipped by a rollback... of someone else."""
        statement = (
            insert(OrderCounter)
            .values(tenant_id=tenant_id, id=func.gen_random_uuid(), year=year, last=1)
            .on_conflict_do_update(
                index_elements=["tenant_id", "year"],
                set_={"last": OrderCounter.__table__.c.last + 1},  # type: ignore[attr-defined]
            )
            .returning(OrderCounter.__table__.c.last)  # type: ignore[attr-defined]
        )
        return int((await self.session.execute(statement)).scalar_one())

    # -- orders ------------------------------------------------------------------------------
    async def get_order(self, order_id: UUID, *, lock: bool = False) -> Order | None:
        query = select(Order).where(Order.id == order_id)
        if lock:
            # The row as it is once locked, even if this session read it before (two SMS
            # answers racing: the second must see the first's change, not its own old copy).
            query = query.with_for_update().execution_options(populate_existing=True)
        return (await self.session.exec(query)).first()

    async def order_by_idempotency_key(self, tenant_id: UUID, key: str) -> Order | None:
        query = select(Order).where(Order.tenant_id == tenant_id, Order.idempotency_key == key)
        return (await self.session.exec(query)).first()

    async def order_by_number(self, number: str) -> Order | None:
        query = select(Order).where(func.upper(Order.number) == number.strip().upper())
        return (await self.session.exec(query)).first()

    async def order_by_seq(self, year: int | None, seq: int) -> Order | None:
        """By the digits of its number (a caller keys them in): the newest such order."""
        query = select(Order).where(Order.seq == seq)
        if year is not None:
            query = query.where(Order.year == year)
        query = query.order_by(col(Order.created_at).desc()).limit(1)
        return (await self.session.exec(query)).first()

    async def order_for_depot(self, depot_ids: Sequence[UUID], seq: int) -> Order | None:
        """The order with this sequence number now with one of these depots (a depot's reply)."""
        query = (
            select(Order)
            .where(Order.seq == seq, col(Order.depot_id).in_(list(depot_ids)))
            .order_by(col(Order.created_at).desc())
            .limit(1)
        )
        return (await self.session.exec(query)).first()

    async def open_lookalikes(
        self,
        tenant_id: UUID,
        *,
        phones: Sequence[str],
        customer_id: UUID | None,
        postal_code: str,
        address: str,
        window_start: datetime,
        window_end: datetime,
    ) -> Sequence[Order]:
        """Open orders of the same customer (phone or profile) at the same address whose window
        overlaps: a booking made twice."""
        who: list[ColumnElement[bool]] = [
            col(Order.contact_phone).in_(list(phones)),
            col(Order.sender_phone).in_(list(phones)),
        ]
        if customer_id is not None:
            who.append(col(Order.customer_id) == customer_id)
        same_address = func.lower(func.regexp_replace(Order.sender_address, r"\s+", "", "g"))
        same_receiver = func.lower(func.regexp_replace(Order.receiver_address, r"\s+", "", "g"))
        where = (
            or_(
                and_(col(Order.kind) != OrderKind.DELIVERY, same_address == address),
                and_(col(Order.kind) == OrderKind.DELIVERY, same_receiver == address),
            )
            if address
            else or_(
                col(Order.sender_postal_code) == postal_code,
                col(Order.receiver_postal_code) == postal_code,
            )
        )
        query = (
            select(Order)
            .where(
                Order.tenant_id == tenant_id,
                or_(*who),
                where,
                col(Order.status).in_([s.value for s in OPEN_STATUSES]),
                col(Order.window_start) < window_end,
                col(Order.window_end) > window_start,
            )
            .order_by(col(Order.created_at))
            .limit(5)
        )
        return (await self.session.exec(query)).all()

    async def orders(self, where: OrderFilter) -> Sequence[Order]:
        query = select(Order)
        if where.status:
            query = query.where(Order.status == where.status)
        if where.depot_id:
            query = query.where(Order.depot_id == where.depot_id)
        if where.depot_ids is not None:
            query = query.where(col(Order.depot_id).in_(list(where.depot_ids)))
        if where.since:
            query = query.where(col(Order.window_start) >= where.since)
        if where.until:
            query = query.where(col(Order.window_start) < where.until)
        if where.q:
            term = where.q.strip()
            digits = "".join(ch for ch in term if ch.isdigit() or ch == "+")
            like = f"%{_escape_like(term)}%"
            matches: list[Any] = [
                col(Order.number).ilike(like),
                col(Order.sender_address).ilike(like),
                col(Order.receiver_address).ilike(like),
                col(Order.sender_name).ilike(like),
                col(Order.receiver_name).ilike(like),
                Order.sender_postal_code == term,
                Order.receiver_postal_code == term,
            ]
            if len(digits.lstrip("+")) >= 5:  # part of a phone number
                phone_like = f"%{digits.lstrip('+')}%"
                matches += [
                    col(Order.sender_phone).like(phone_like),
                    col(Order.receiver_phone).like(phone_like),
                    col(Order.contact_phone).like(phone_like),
                ]
            query = query.where(or_(*matches))
        query = query.order_by(col(Order.created_at).desc()).limit(where.limit)
        return (await self.session.exec(query)).all()

    async def exceptions(self) -> Sequence[Order]:
        """Orders no depot took, and failed attempts waiting for a new appointment."""
        query = (
            select(Order)
            .where(col(Order.status).in_([OrderStatus.UNSERVICEABLE, OrderStatus.ATTEMPT_FAILED]))
            .order_by(col(Order.updated_at))
        )
        return (await self.session.exec(query)).all()

    async def count_unserviceable(self) -> int:
        query = (
            select(func.count()).select_from(Order).where(Order.status == OrderStatus.UNSERVICEABLE)
        )
        return int((await self.session.exec(query)).one())

    async def depot_load(
        self,
        tenant_id: UUID,
        depot_id: UUID,
        start: datetime,
        end: datetime,
        *,
        besides: UUID | None = None,
    ) -> int:
        """Orders with this depot whose window starts in [start, end): what capacity counts;
        `besides`: not counting that order (one whose window is moving)."""
        query = (
            select(func.count())
            .select_from(Order)
            .where(
                Order.tenant_id == tenant_id,
                Order.depot_id == depot_id,
                col(Order.window_start) >= start,
                col(Order.window_start) < end,
                col(Order.status).not_in([OrderStatus.CANCELLED, OrderStatus.UNSERVICEABLE]),
            )
        )
        if besides is not None:
            query = query.where(Order.id != besides)
        return int((await self.session.exec(query)).one())

    # -- timeline and assignments ------------------------------------------------------------
    async def timeline(self, order_id: UUID) -> Sequence[OrderEvent]:
        query = (
            select(OrderEvent)
            .where(OrderEvent.order_id == order_id)
            .order_by(col(OrderEvent.at), col(OrderEvent.id))
        )
        return (await self.session.exec(query)).all()

    async def assignments(self, order_id: UUID) -> Sequence[Assignment]:
        query = (
            select(Assignment)
            .where(Assignment.order_id == order_id)
            .order_by(col(Assignment.assigned_at))
        )
        return (await self.session.exec(query)).all()

    async def current_assignment(self, order_id: UUID, depot_id: UUID) -> Assignment | None:
        query = (
            select(Assignment)
            .where(
                Assignment.order_id == order_id,
                Assignment.depot_id == depot_id,
                col(Assignment.accepted).is_not(False),
            )
            .order_by(col(Assignment.assigned_at).desc())
            .limit(1)
            .with_for_update()
        )
        return (await self.session.exec(query)).first()

    async def get_assignment(self, assignment_id: UUID) -> Assignment | None:
        query = select(Assignment).where(Assignment.id == assignment_id)
        return (await self.session.exec(query)).first()

    async def rejected_depot_ids(self, order_id: UUID) -> set[UUID]:
        query = select(Assignment.depot_id).where(
            Assignment.order_id == order_id, col(Assignment.accepted).is_(False)
        )
        return set((await self.session.exec(query)).all())

    # -- depots and zones --------------------------------------------------------------------
    async def depots(self, tenant_id: UUID | None = None) -> Sequence[Depot]:
        query = select(Depot).order_by(col(Depot.name))
        if tenant_id is not None:
            query = query.where(Depot.tenant_id == tenant_id)
        return (await self.session.exec(query)).all()

    async def get_depot(self, depot_id: UUID) -> Depot | None:
        return (await self.session.exec(select(Depot).where(Depot.id == depot_id))).first()

    async def depot_by_name(self, tenant_id: UUID, name: str) -> Depot | None:
        query = select(Depot).where(Depot.tenant_id == tenant_id, Depot.name == name)
        return (await self.session.exec(query)).first()

    async def depots_with_contact(self, phone: str) -> Sequence[Depot]:
        query = select(Depot).where(col(Depot.sms_contacts).contains([phone]))
        return (await self.session.exec(query)).all()

    async def depot_ids_of_user(self, user_id: UUID) -> set[UUID]:
        query = select(DepotUser.depot_id).where(DepotUser.user_id == user_id)
        return set((await self.session.exec(query)).all())

    async def depot_users(self, depot_id: UUID) -> Sequence[DepotUser]:
        query = select(DepotUser).where(DepotUser.depot_id == depot_id)
        return (await self.session.exec(query)).all()

    async def depot_ids_of_key(self, api_key_id: UUID) -> set[UUID]:
        query = select(DepotKey.depot_id).where(DepotKey.api_key_id == api_key_id)
        return set((await self.session.exec(query)).all())

    async def depot_keys(self, depot_id: UUID) -> Sequence[DepotKey]:
        query = select(DepotKey).where(DepotKey.depot_id == depot_id)
        return (await self.session.exec(query)).all()

    async def depot_key(self, depot_id: UUID, api_key_id: UUID) -> DepotKey | None:
        query = select(DepotKey).where(
            DepotKey.depot_id == depot_id, DepotKey.api_key_id == api_key_id
        )
        return (await self.session.exec(query)).first()

    async def depot_user(self, depot_id: UUID, user_id: UUID) -> DepotUser | None:
        query = select(DepotUser).where(
            DepotUser.depot_id == depot_id, DepotUser.user_id == user_id
        )
        return (await self.session.exec(query)).first()

    async def zones(self, tenant_id: UUID | None = None, *, active: bool = False) -> Sequence[Zone]:
        query = select(Zone).order_by(col(Zone.priority).desc(), col(Zone.name))
        if tenant_id is not None:
            query = query.where(Zone.tenant_id == tenant_id)
        if active:
            query = query.where(col(Zone.active).is_(True))
        return (await self.session.exec(query)).all()

    async def get_zone(self, zone_id: UUID) -> Zone | None:
        return (await self.session.exec(select(Zone).where(Zone.id == zone_id))).first()

    async def zone_by_name(self, tenant_id: UUID, name: str) -> Zone | None:
        query = select(Zone).where(Zone.tenant_id == tenant_id, Zone.name == name)
        return (await self.session.exec(query)).first()

    # -- reports -----------------------------------------------------------------------------
    async def bookings_per_day(
        self, since: datetime, until: datetime, timezone: str
    ) -> Sequence[tuple[date, int]]:
        """Orders booked per local day of `timezone`."""
        day = cast(func.timezone(timezone, Order.created_at), Date).label("day")
        query = (
            select(day, func.count())
            .where(col(Order.created_at) >= since, col(Order.created_at) < until)
            .group_by(day)
            .order_by(day)
        )
        return [(row[0], int(row[1])) for row in (await self.session.exec(query)).all()]

    async def orders_per(
        self, column: str, since: datetime, until: datetime
    ) -> dict[UUID | None, dict[str, int]]:
        """For each depot (or zone): its orders booked in the period, by status, with
        "orders" (all of them) and "completed" (delivered, or picked up if pickup-only)."""
        key = col(Order.depot_id) if column == "depot" else col(Order.zone_id)
        query = (
            select(key, Order.status, Order.kind, func.count())
            .where(col(Order.created_at) >= since, col(Order.created_at) < until)
            .group_by(key, Order.status, Order.kind)
        )
        counts: dict[UUID | None, dict[str, int]] = {}
        for owner, status, kind, count in (await self.session.exec(query)).all():
            found = counts.setdefault(owner, {"orders": 0, "completed": 0})
            found["orders"] += int(count)
            found[str(status)] = found.get(str(status), 0) + int(count)
            if status == OrderStatus.DELIVERED or (
                status == OrderStatus.PICKED_UP and kind == OrderKind.PICKUP
            ):
                found["completed"] += int(count)
        return counts

    async def answers_per_depot(
        self, since: datetime, until: datetime
    ) -> dict[UUID, dict[str, int]]:
        """For each depot: offers made in the period, accepted, rejected, unanswered."""
        answer = func.coalesce(cast(Assignment.accepted, Text), "unanswered")
        query = (
            select(Assignment.depot_id, answer, func.count())
            .where(col(Assignment.assigned_at) >= since, col(Assignment.assigned_at) < until)
            .group_by(col(Assignment.depot_id), answer)
        )
        counts: dict[UUID, dict[str, int]] = {}
        names = {"true": "accepted", "false": "rejected", "unanswered": "unanswered"}
        for depot_id, outcome, count in (await self.session.exec(query)).all():
            counts.setdefault(depot_id, {})[names[str(outcome)]] = int(count)
        return counts

    async def failed_attempts_per_depot(
        self, since: datetime, until: datetime
    ) -> dict[UUID | None, int]:
        query = (
            select(OrderEvent.depot_id, func.count())
            .where(
                OrderEvent.to_status == OrderStatus.ATTEMPT_FAILED,
                col(OrderEvent.at) >= since,
                col(OrderEvent.at) < until,
            )
            .group_by(col(OrderEvent.depot_id))
        )
        return {depot: int(count) for depot, count in (await self.session.exec(query)).all()}


def _escape_like(term: str) -> str:
    return term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
