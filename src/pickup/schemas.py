"""What the pickup API takes in and gives out, and the booking form's prefill."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, time
from decimal import Decimal
from typing import Annotated, Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from pickup.models import OrderKind, OrderStatus, Payment

Text = Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)]
Short = Annotated[str, StringConstraints(strip_whitespace=True, max_length=120)]
LANGUAGES = ("en", "zh_Hans", "zh_Hant")


class PartyIn(BaseModel):
    """A sender or receiver: who, how to reach them, and where."""

    model_config = ConfigDict(extra="forbid")

    name: Short = ""
    phone: Short | None = None
    address: Text = ""
    city: Short = ""
    postal_code: Annotated[str, StringConstraints(strip_whitespace=True, max_length=16)] = ""
    lat: Annotated[float, Field(ge=-90, le=90)] | None = None
    lon: Annotated[float, Field(ge=-180, le=180)] | None = None


class ParcelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    count: Annotated[int, Field(ge=1, le=999)] = 1
    weight_kg: Annotated[float, Field(gt=0, le=10_000)]
    length_cm: Annotated[int, Field(ge=1, le=1000)] | None = None
    width_cm: Annotated[int, Field(ge=1, le=1000)] | None = None
    height_cm: Annotated[int, Field(ge=1, le=1000)] | None = None
    declared_value: Annotated[Decimal, Field(ge=0, le=10_000_000, decimal_places=2)] = Decimal(0)


class OrderIn(BaseModel):
    """A booking. Window times without a zone are the address's local time (`timezone`, or the
    tenant's); with a zone they are converted."""

    model_config = ConfigDict(extra="forbid")

    kind: OrderKind = OrderKind.PICKUP
    sender: PartyIn = Field(default_factory=PartyIn)
    receiver: PartyIn = Field(default_factory=PartyIn)
    window_start: datetime
    window_end: datetime
    timezone: Short | None = None
    parcels: Annotated[list[ParcelIn], Field(min_length=1, max_length=50)]
    notes: Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)] = ""
    payment: Payment = Payment.PREPAID
    cash_amount: Annotated[Decimal, Field(ge=0, le=10_000_000, decimal_places=2)] | None = None
    customer_id: UUID | None = None
    #: The customer who booked (defaults to the sender, or the receiver of a delivery).
    contact_phone: Short | None = None
    language: str = "zh_Hans"
    notify_sms: bool = True
    #: Book even though an open order looks the same (the agent or client has checked).
    deliberate: bool = False


class OrderEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    at: datetime
    action: str
    from_status: str | None
    to_status: str | None
    reason: str | None
    actor_kind: str
    actor_name: str
    attempt: int | None


class OrderOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    number: str
    confirmation_code: str
    kind: OrderKind
    status: OrderStatus
    customer_id: UUID | None
    sender_name: str
    sender_phone: str | None
    sender_address: str
    sender_city: str
    sender_postal_code: str
    receiver_name: str
    receiver_phone: str | None
    receiver_address: str
    receiver_city: str
    receiver_postal_code: str
    contact_phone: str | None
    language: str
    window_start: datetime
    window_end: datetime
    timezone: str
    parcels: list[dict[str, Any]]
    parcel_count: int
    weight_kg: float
    declared_value: Decimal
    notes: str
    payment: Payment
    cash_amount: Decimal | None
    depot_id: UUID | None
    zone_id: UUID | None
    depot_accepted_at: datetime | None
    driver_name: str | None
    attempts: int
    exception_reason: str | None
    created_at: datetime
    dispatched_at: datetime | None
    timeline: list[OrderEventOut] = []


class ReasonIn(BaseModel):
    reason: Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)] = ""


class StatusIn(BaseModel):
    """A depot's (or staff's, on its behalf) report of how the order is going."""

    status: OrderStatus | None = None  # required: None is refused naming the field
    reason: Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)] = ""
    driver_name: Short | None = None


class RescheduleIn(BaseModel):
    window_start: datetime
    window_end: datetime
    reason: Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)] = ""


class AssignIn(BaseModel):
    depot_id: UUID


class DepotIn(BaseModel):
    name: Short
    code: Annotated[str, StringConstraints(strip_whitespace=True, max_length=12)] = ""
    address: Text = ""
    city: Short = ""
    postal_code: Short = ""
    timezone: Short = "Asia/Shanghai"
    opens_at: time = time(8, 0)
    closes_at: time = time(20, 0)
    open_days: list[int] = [1, 2, 3, 4, 5, 6]
    sms_contacts: list[Short] = []
    language: str = "zh_Hans"
    daily_capacity: Annotated[int, Field(ge=0)] | None = None
    slot_minutes: Annotated[int, Field(ge=15, le=1440)] = 120
    slot_capacity: Annotated[int, Field(ge=0)] | None = None
    active: bool = True


class DepotOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    name: str
    code: str
    address: str
    city: str
    postal_code: str
    timezone: str
    opens_at: time
    closes_at: time
    open_days: list[int]
    sms_contacts: list[str]
    language: str
    daily_capacity: int | None
    slot_minutes: int
    slot_capacity: int | None
    active: bool


class ZoneIn(BaseModel):
    """Postal codes are exact ("510630") or prefixes ("510xxx", "510*"); `geojson` is a Polygon
    or MultiPolygon geometry, a Feature or a FeatureCollection of them."""

    name: Short
    depot_id: UUID
    priority: int = 0
    postal_codes: list[Short] = []
    geojson: dict[str, Any] | None = None


class ZoneOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    name: str
    depot_id: UUID
    priority: int
    postal_codes: list[str]
    postal_prefixes: list[str]
    polygon: dict[str, Any] | None
    active: bool


class SettingsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    timezone: Short = "Asia/Shanghai"
    order_prefix: Annotated[str, StringConstraints(pattern=r"^[A-Z]{1,6}$")] = "DL"
    same_day_cutoff: time = time(16, 0)
    min_window_minutes: Annotated[int, Field(ge=15, le=720)] = 60
    lead_time_minutes: Annotated[int, Field(ge=0, le=2880)] = 60
    day_starts: time = time(9, 0)
    day_ends: time = time(18, 0)
    horizon_days: Annotated[int, Field(ge=1, le=365)] = 30
    max_attempts: Annotated[int, Field(ge=1, le=10)] = 3
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] = "CNY"


class BookingPrefill(BaseModel):
    """What the booking form starts with: from query parameters or a context object (the agent
    desktop passes the caller's name, number and known addresses)."""

    sender_name: str = ""
    sender_phone: str = ""
    customer_id: str = ""
    language: str = ""
    #: Addresses the customer used before: {"label", "address", "city", "postal_code",
    #: "lat", "lon"}; the agent picks one instead of typing it again.
    known_addresses: list[dict[str, Any]] = []

    @classmethod
    def from_query(cls, params: Mapping[str, str], addresses: list[str]) -> BookingPrefill:
        """`?sender_name=&sender_phone=&customer_id=&language=&address=<postal>|<address>...`"""
        known = []
        for raw in addresses:
            postal, _, line = raw.partition("|")
            if not line:
                postal, line = "", raw
            known.append({"label": line.strip(), "address": line.strip(), "postal_code": postal})
        return cls(
            sender_name=params.get("sender_name", ""),
            sender_phone=params.get("sender_phone", ""),
            customer_id=params.get("customer_id", ""),
            language=params.get("language", ""),
            known_addresses=known,
        )
