"""Tables of pickup and delivery: booking rules, depots and their users, zones, orders, their
timeline and their depot assignments.

Times are stored in UTC; an order's time window is shown in the address's own time zone
(`Order.timezone`). Money is stored as NUMERIC, never as a float.
"""

from __future__ import annotations

from datetime import datetime, time
from decimal import Decimal
from enum import StrEnum
from typing import Any
from uuid import UUID

from sqlalchemy import Column, DateTime, Integer, Numeric, UniqueConstraint
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TEXT
from sqlmodel import Field

from depotline.db import TenantOwned, empty_list, utcnow


class OrderKind(StrEnum):
    PICKUP = "pickup"
    DELIVERY = "delivery"
    PICKUP_AND_DELIVERY = "pickup_and_delivery"


class Payment(StrEnum):
    PREPAID = "prepaid"
    CASH_ON_PICKUP = "cash_on_pickup"
    CASH_ON_DELIVERY = "cash_on_delivery"


class OrderStatus(StrEnum):
    BOOKED = "booked"  # waiting for dispatch
    DEPOT_ASSIGNED = "depot_assigned"  # offered to a depot; `depot_accepted_at` once it says yes
    DRIVER_ASSIGNED = "driver_assigned"
    EN_ROUTE = "en_route"  # the driver is on the way to the pickup address
    PICKED_UP = "picked_up"  # final for a pickup-only order
    OUT_FOR_DELIVERY = "out_for_delivery"
    DELIVERED = "delivered"
    ATTEMPT_FAILED = "attempt_failed"  # waits for a reschedule (or fails for good)
    RESCHEDULED = "rescheduled"
    FAILED = "failed"  # for good: after the tenant's maximum of attempts
    CANCEL_REQUESTED = "cancel_requested"  # a driver is on the way: the depot confirms
    CANCELLED = "cancelled"
    UNSERVICEABLE = "unserviceable"  # no depot can take it: on the exceptions list


class PickupSettings(TenantOwned, table=True):
    """A tenant's booking rules. Read with defaults when a tenant has not set any."""

    __tablename__ = "pickup_settings"
    __table_args__ = (UniqueConstraint("tenant_id"),)

    #: The zone addresses are in unless an order names its own (IANA name).
    timezone: str = "Asia/Shanghai"
    #: Order numbers read PREFIX-YYYY-NNNNNN.
    order_prefix: str = "DL"
    #: Same-day pickups must be booked before this local time.
    same_day_cutoff: time = time(16, 0)
    min_window_minutes: int = 60
    lead_time_minutes: int = 60
    #: Pickups and deliveries happen between these local times.
    day_starts: time = time(9, 0)
    day_ends: time = time(18, 0)
    #: How far ahead one may book.
    horizon_days: int = 30
    #: Failed attempts after which an order has failed for good.
    max_attempts: int = 3
    currency: str = "CNY"
    updated_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))


class Depot(TenantOwned, table=True):
    """A pickup and delivery station. Capacity counts orders whose window starts on a local day
    (daily) or in one slot of `slot_minutes` from local midnight (per slot); None: no limit."""

    __tablename__ = "pickup_depots"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    name: str
    code: str  # short, for SMS and lists
    address: str
    city: str = ""
    postal_code: str = ""
    timezone: str = "Asia/Shanghai"
    opens_at: time = time(8, 0)
    closes_at: time = time(20, 0)
    #: ISO weekdays (1 Monday .. 7 Sunday) the depot works.
    open_days: list[int] = Field(
        default_factory=lambda: [1, 2, 3, 4, 5, 6],
        sa_column=Column(ARRAY(Integer), nullable=False),
    )
    #: E.164 numbers that receive dispatch SMS and may answer them.
    sms_contacts: list[str] = Field(
        default_factory=empty_list, sa_column=Column(ARRAY(TEXT), nullable=False)
    )
    #: The language dispatch SMS to this depot are written in (en, zh_Hans, zh_Hant).
    language: str = "zh_Hans"
    daily_capacity: int | None = None
    slot_minutes: int = 120
    slot_capacity: int | None = None
    active: bool = True
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))


class DepotUser(TenantOwned, table=True):
    """A depot user (role depot_user) works for these depots only."""

    __tablename__ = "pickup_depot_users"
    __table_args__ = (UniqueConstraint("tenant_id", "depot_id", "user_id"),)

    depot_id: UUID
    user_id: UUID
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))


class DepotKey(TenantOwned, table=True):
    """An API key with the depot_user role works for these depots only (a depot's own system
    answering offers and reporting progress)."""

    __tablename__ = "pickup_depot_keys"
    __table_args__ = (UniqueConstraint("tenant_id", "depot_id", "api_key_id"),)

    depot_id: UUID
    api_key_id: UUID
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))


class Zone(TenantOwned, table=True):
    """The area a depot serves: postal codes (exact or by prefix) and/or a GeoJSON polygon.
    Where zones overlap, the higher priority wins."""

    __tablename__ = "pickup_zones"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    name: str
    depot_id: UUID
    priority: int = 0
    postal_codes: list[str] = Field(
        default_factory=empty_list, sa_column=Column(ARRAY(TEXT), nullable=False)
    )
    postal_prefixes: list[str] = Field(
        default_factory=empty_list, sa_column=Column(ARRAY(TEXT), nullable=False)
    )
    #: A GeoJSON Polygon or MultiPolygon geometry (longitude, latitude), or None.
    polygon: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONB, nullable=True))
    active: bool = True
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))


class Order(TenantOwned, table=True):
    __tablename__ = "pickup_orders"
    __table_args__ = (
        UniqueConstraint("tenant_id", "number"),
        UniqueConstraint("tenant_id", "year", "seq"),
    )

    number: str  # PREFIX-YYYY-NNNNNN, per tenant
    year: int
    seq: int  # NNNNNN: what a depot quotes in an SMS reply ("Y 123")
    confirmation_code: str  # given to the caller
    #: The public tracking page's key (secrets.token_urlsafe): unguessable, unique platform-wide.
    tracking_token: str = Field(unique=True)
    kind: OrderKind = Field(sa_type=TEXT)
    status: OrderStatus = Field(default=OrderStatus.BOOKED, sa_type=TEXT)

    customer_id: UUID | None = None  # a customer profile, when the customers domain knows one
    sender_name: str = ""
    sender_phone: str | None = None  # E.164
    sender_address: str = ""
    sender_city: str = ""
    sender_postal_code: str = ""
    sender_lat: float | None = None
    sender_lon: float | None = None
    receiver_name: str = ""
    receiver_phone: str | None = None
    receiver_address: str = ""
    receiver_city: str = ""
    receiver_postal_code: str = ""
    receiver_lat: float | None = None
    receiver_lon: float | None = None

    #: The customer who booked: duplicates are found by it, updates go to it.
    contact_phone: str | None = None
    #: The customer's language for SMS and the tracking page (en, zh_Hans, zh_Hant).
    language: str = "zh_Hans"
    notify_sms: bool = True

    #: The window of the first visit (pickup, or delivery for delivery-only orders), in UTC;
    #: agreed and shown in `timezone`, the address's own.
    window_start: datetime = Field(sa_type=DateTime(timezone=True))
    window_end: datetime = Field(sa_type=DateTime(timezone=True))
    timezone: str

    parcels: list[dict[str, Any]] = Field(
        default_factory=empty_list, sa_column=Column(JSONB, nullable=False)
    )
    parcel_count: int = 0
    weight_kg: float = 0.0
    declared_value: Decimal = Field(
        default=Decimal("0"), sa_column=Column(Numeric(12, 2), nullable=False)
    )
    notes: str = ""
    payment: Payment = Field(default=Payment.PREPAID, sa_type=TEXT)
    cash_amount: Decimal | None = Field(default=None, sa_column=Column(Numeric(12, 2)))

    depot_id: UUID | None = None
    zone_id: UUID | None = None
    depot_accepted_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    driver_name: str | None = None
    #: Set once the parcel is with the driver: a later delivery attempt is the delivery phase.
    picked_up_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    attempts: int = 0  # failed attempts so far
    #: Why the order is on the exceptions list (unserviceable), in words.
    exception_reason: str | None = None
    #: The status a cancel request interrupted.
    status_before_cancel: str | None = None

    idempotency_key: str | None = None
    request_hash: str | None = None
    created_by: str = ""
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))
    #: When dispatch last decided (a depot, or unserviceable).
    dispatched_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    updated_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))

    @property
    def service_postal_code(self) -> str:
        """The address the first visit goes to decides the zone."""
        if self.kind == OrderKind.DELIVERY:
            return self.receiver_postal_code
        return self.sender_postal_code

    @property
    def service_point(self) -> tuple[float, float] | None:
        """(longitude, latitude) of the first visit's address, if known."""
        lat, lon = (
            (self.receiver_lat, self.receiver_lon)
            if self.kind == OrderKind.DELIVERY
            else (self.sender_lat, self.sender_lon)
        )
        return (lon, lat) if lat is not None and lon is not None else None

    @property
    def service_address(self) -> str:
        if self.kind == OrderKind.DELIVERY:
            return self.receiver_address
        return self.sender_address


class OrderEvent(TenantOwned, table=True):
    """The order's timeline: every status change and every answer, with who or what made it.
    Append-only (the app role may insert and read)."""

    __tablename__ = "pickup_order_events"

    order_id: UUID
    at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))
    #: status | accepted | rejected | cancel_refused | note
    action: str = "status"
    from_status: str | None = None
    to_status: str | None = None
    reason: str | None = None
    #: user | api_key | depot | sms | ivr | system
    actor_kind: str
    actor_name: str
    actor_user_id: UUID | None = None
    depot_id: UUID | None = None
    attempt: int | None = None
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False))


class Assignment(TenantOwned, table=True):
    """One offer of an order to a depot and the depot's answer: the acceptance rate's facts."""

    __tablename__ = "pickup_assignments"

    order_id: UUID
    depot_id: UUID
    zone_id: UUID | None = None
    assigned_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))
    #: None while the depot has not answered; True accepted; False rejected.
    accepted: bool | None = None
    answered_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    reason: str | None = None
    answered_by: str | None = None


class OrderCounter(TenantOwned, table=True):
    """The last order number given out, per tenant and year."""

    __tablename__ = "pickup_order_counters"
    __table_args__ = (UniqueConstraint("tenant_id", "year"),)

    year: int
    last: int = 0


OPEN_STATUSES = frozenset(
    {
        OrderStatus.BOOKED,
        OrderStatus.DEPOT_ASSIGNED,
        OrderStatus.DRIVER_ASSIGNED,
        OrderStatus.EN_ROUTE,
        OrderStatus.OUT_FOR_DELIVERY,
        OrderStatus.ATTEMPT_FAILED,
        OrderStatus.RESCHEDULED,
        OrderStatus.CANCEL_REQUESTED,
        OrderStatus.UNSERVICEABLE,
    }
)
"""Statuses of orders still in progress (picked up is open only for pickup-and-delivery)."""
