"""Tables of the customers domain: end-customer profiles, their numbers and addresses, the
timeline of every contact, and bulk imports. All tenant-owned, under row-level security."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from sqlalchemy import Column, DateTime, LargeBinary, UniqueConstraint
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TEXT
from sqlmodel import Field

from depotline.db import TenantOwned, empty_list, utcnow


class Tier(StrEnum):
    """Service tiers. More may follow (e.g. gold); VIP callers jump the queue."""

    STANDARD = "standard"
    VIP = "vip"


class ContactKind(StrEnum):
    CALL = "call"
    SMS = "sms"
    ORDER = "order"
    COMPLAINT = "complaint"
    CALLBACK = "callback"


class ContactDirection(StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


class ImportStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class Customer(TenantOwned, table=True):
    """An end customer (shipper or consignee) of one tenant. A caller nobody knows yet gets a
    profile with no name; a profile merged into another keeps its id and points there."""

    __tablename__ = "customers"

    name: str | None = None
    tier: Tier = Field(default=Tier.STANDARD, sa_type=TEXT)
    tags: list[str] = Field(
        default_factory=empty_list, sa_column=Column(ARRAY(TEXT), nullable=False)
    )
    notes: str = ""
    language: str = "en"  # en, zh_Hans or zh_Hant: what SMS and callbacks use
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))
    updated_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))
    merged_into: UUID | None = None


class CustomerPhone(TenantOwned, table=True):
    """One number of a customer, in E.164. A number belongs to one customer per tenant: that
    unique constraint is what makes two calls from one new number give one customer."""

    __tablename__ = "customer_phones"
    __table_args__ = (UniqueConstraint("tenant_id", "e164"),)

    customer_id: UUID
    e164: str
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))


class CustomerAddress(TenantOwned, table=True):
    __tablename__ = "customer_addresses"

    customer_id: UUID
    label: str = ""  # home, office, warehouse ...
    line1: str
    line2: str = ""
    district: str = ""
    city: str = ""
    postal_code: str = ""
    country: str = "CN"  # ISO 3166 alpha-2
    lat: float | None = None
    lon: float | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))


class Contact(TenantOwned, table=True):
    """One entry of a customer's timeline. `ref` is the source's own id (the carrier's call id,
    an SMS id, an order number): a retried event finds its entry and records nothing new."""

    __tablename__ = "customer_contacts"
    __table_args__ = (UniqueConstraint("tenant_id", "kind", "ref"),)

    #: None only while a call's end has been seen and its start not yet (handled in any order).
    customer_id: UUID | None = None
    kind: ContactKind = Field(sa_type=TEXT)
    direction: ContactDirection = Field(sa_type=TEXT)
    ref: str
    summary: str = ""
    at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))


class CustomerImport(TenantOwned, table=True):
    """A bulk import of a CSV or XLSX file, processed in batches by the worker. `report` lists
    every rejected row: {"row", "field", "value", "reason"}."""

    __tablename__ = "customer_imports"

    file_name: str
    status: ImportStatus = Field(default=ImportStatus.QUEUED, sa_type=TEXT)
    default_region: str = "CN"  # for numbers written without +country code
    total: int = 0
    processed: int = 0
    accepted: int = 0
    rejected: int = 0
    created: int = 0  # accepted rows that made a new profile (the rest updated one)
    report: list[dict[str, Any]] = Field(
        default_factory=empty_list, sa_column=Column(JSONB, nullable=False)
    )
    error: str | None = None
    created_by: UUID | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))
    finished_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))


class CustomerImportFile(TenantOwned, table=True):
    """The uploaded file, kept apart so progress polls never load it, and deleted once the
    import is done: it holds personal data nobody needs afterwards. `id` is the import's id."""

    __tablename__ = "customer_import_files"

    content: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


__all__ = [
    "Contact",
    "ContactDirection",
    "ContactKind",
    "Customer",
    "CustomerAddress",
    "CustomerImport",
    "CustomerImportFile",
    "CustomerPhone",
    "ImportStatus",
    "Tier",
]
