"""Tables of the carrier gateway."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from sqlalchemy import Column, DateTime, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB, TEXT
from sqlmodel import Field, SQLModel

from depotline.db import TenantOwned, utcnow


class ProviderName(StrEnum):
    SIMULATOR = "simulator"
    TWILIO = "twilio"
    KANNEL = "kannel"


class CarrierAccount(TenantOwned, table=True):
    """A tenant's account with a carrier. Credentials are encrypted and never shown again."""

    __tablename__ = "carrier_accounts"

    provider: ProviderName = Field(sa_type=TEXT)
    label: str
    #: Non-secret settings: Twilio account SID, Kannel sendsms URL and username, ...
    settings: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False))
    credentials_encrypted: str = ""
    sender_id: str | None = None  # alphanumeric sender for SMS, where the carrier allows one
    sms_per_second: float = 10.0
    active: bool = True
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))


class PhoneNumber(TenantOwned, table=True):
    """A number belongs to exactly one tenant (or branch) and is served by one account."""

    __tablename__ = "phone_numbers"

    e164: str = Field(unique=True)
    account_id: UUID
    voice: bool = True
    sms: bool = True
    label: str = ""
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))


class SmsDirection(StrEnum):
    OUTBOUND = "outbound"
    INBOUND = "inbound"


class SmsMessage(TenantOwned, table=True):
    __tablename__ = "sms_messages"
    __table_args__ = (UniqueConstraint("tenant_id", "message_id"),)

    #: Depotline's id for the message: the same id is never sent twice.
    message_id: str
    direction: SmsDirection = Field(sa_type=TEXT)
    account_id: UUID | None = None
    provider: ProviderName = Field(sa_type=TEXT)
    from_number: str
    to_number: str
    body: str
    encoding: str  # GSM-7 or UCS-2
    segments: int
    #: pending -> sending -> queued/sent -> delivered/undelivered/failed; or opted_out.
    state: str = "pending"
    provider_message_id: str | None = Field(default=None, index=True)
    error_code: str | None = None
    error: str | None = None
    attempts: int = 0
    next_attempt_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))
    updated_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))


class OptOut(TenantOwned, table=True):
    __tablename__ = "sms_opt_outs"
    __table_args__ = (UniqueConstraint("tenant_id", "phone"),)

    phone: str
    keyword: str
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))


class UsageKind(StrEnum):
    CALL_SECONDS_INBOUND = "call_seconds_inbound"
    CALL_SECONDS_OUTBOUND = "call_seconds_outbound"
    SMS_SEGMENTS_OUTBOUND = "sms_segments_outbound"
    SMS_SEGMENTS_INBOUND = "sms_segments_inbound"


class UsageRecord(TenantOwned, table=True):
    """A billable fact. `source` (e.g. the message or call id) makes recording it idempotent."""

    __tablename__ = "usage_records"
    __table_args__ = (UniqueConstraint("tenant_id", "kind", "source"),)

    kind: UsageKind = Field(sa_type=TEXT)
    quantity: int
    source: str
    occurred_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))


class CarrierEventReceipt(SQLModel, table=True):
    """Every carrier webhook seen, by the provider's own event id: a retry is recognised and
    changes nothing. Platform-level: the tenant is not known when a webhook arrives."""

    __tablename__ = "carrier_event_receipts"

    provider: str = Field(primary_key=True)
    provider_event_id: str = Field(primary_key=True)
    received_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))
    kind: str
