"""What the customers domain hands out and takes in: the screen pop's caller card, search hits
and profiles for pages, and the JSON API's input and output."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from customers.models import Contact, Customer, CustomerAddress, CustomerImport


# -- the screen pop -------------------------------------------------------------------------------
@dataclass(frozen=True)
class AddressView:
    id: UUID
    label: str
    line1: str
    line2: str
    district: str
    city: str
    postal_code: str
    country: str

    @classmethod
    def of(cls, address: CustomerAddress) -> AddressView:
        return cls(
            id=address.id,
            label=address.label,
            line1=address.line1,
            line2=address.line2,
            district=address.district,
            city=address.city,
            postal_code=address.postal_code,
            country=address.country,
        )

    @property
    def one_line(self) -> str:
        parts = (self.line1, self.line2, self.district, self.city, self.postal_code)
        return ", ".join(part for part in parts if part)


@dataclass(frozen=True)
class ContactView:
    at: datetime
    kind: str
    direction: str
    summary: str

    @classmethod
    def of(cls, contact: Contact) -> ContactView:
        return cls(
            at=contact.at,
            kind=str(contact.kind),
            direction=str(contact.direction),
            summary=contact.summary,
        )


@dataclass(frozen=True)
class CallerCard:
    """Who is calling, for the agent's screen pop. A number nobody knows has customer_id None
    and only the number's region and carrier."""

    number: str  # E.164
    customer_id: UUID | None
    name: str | None
    tier: str | None
    tags: list[str] = field(default_factory=list)
    notes: str = ""
    phones: list[str] = field(default_factory=list)
    addresses: list[AddressView] = field(default_factory=list)
    recent: list[ContactView] = field(default_factory=list)
    region: str = ""  # e.g. "Beijing" / "北京市", "" when unknown
    carrier: str = ""  # e.g. "China Mobile", "" when unknown or ported

    @property
    def is_vip(self) -> bool:
        return self.tier == "vip"


# -- pages ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SearchHit:
    customer: Customer
    phones: list[str]
    address: AddressView | None


@dataclass(frozen=True)
class Profile:
    customer: Customer
    phones: list[str]
    addresses: list[AddressView]
    timeline: list[ContactView]


# -- JSON API -------------------------------------------------------------------------------------
class AddressIn(BaseModel):
    label: str = ""
    line1: str = ""
    line2: str = ""
    district: str = ""
    city: str = ""
    postal_code: str = ""
    country: str = "CN"
    lat: float | None = None
    lon: float | None = None


class CustomerIn(BaseModel):
    """A new profile. The service checks every field and names the one that is wrong."""

    name: str | None = None
    phones: list[str] = []
    tier: str = "standard"
    tags: list[str] = []
    notes: str = ""
    language: str = "en"
    addresses: list[AddressIn] = []


class CustomerPatch(BaseModel):
    """Only the fields sent change."""

    name: str | None = None
    tier: str | None = None
    tags: list[str] | None = None
    notes: str | None = None
    language: str | None = None


class AddressOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    label: str
    line1: str
    line2: str
    district: str
    city: str
    postal_code: str
    country: str


class CustomerOut(BaseModel):
    id: UUID
    name: str | None
    tier: str
    tags: list[str]
    notes: str
    language: str
    phones: list[str]
    addresses: list[AddressOut]
    created_at: datetime
    updated_at: datetime
    merged_into: UUID | None

    @classmethod
    def of(cls, customer: Customer, phones: list[str], addresses: list[AddressView]) -> CustomerOut:
        return cls(
            id=customer.id,
            name=customer.name,
            tier=str(customer.tier),
            tags=list(customer.tags),
            notes=customer.notes,
            language=customer.language,
            phones=phones,
            addresses=[AddressOut.model_validate(a) for a in addresses],
            created_at=customer.created_at,
            updated_at=customer.updated_at,
            merged_into=customer.merged_into,
        )


class HitOut(BaseModel):
    """A search result."""

    id: UUID
    name: str | None
    tier: str
    tags: list[str]
    phones: list[str]
    address: str  # the first address on one line

    @classmethod
    def of(cls, hit: SearchHit) -> HitOut:
        c = hit.customer
        return cls(
            id=c.id,
            name=c.name,
            tier=str(c.tier),
            tags=list(c.tags),
            phones=hit.phones,
            address=hit.address.one_line if hit.address else "",
        )


class MergeIn(BaseModel):
    duplicate: str = ""  # the other profile's id or one of its numbers


class ContactOut(BaseModel):
    at: datetime
    kind: str
    direction: str
    summary: str


class ImportOut(BaseModel):
    id: UUID
    file_name: str
    status: str
    total: int
    processed: int
    accepted: int
    rejected: int
    created: int
    percent: int
    error: str | None
    report: list[dict[str, Any]]
    created_at: datetime
    finished_at: datetime | None

    @classmethod
    def of(cls, run: CustomerImport) -> ImportOut:
        return cls(
            id=run.id,
            file_name=run.file_name,
            status=str(run.status),
            total=run.total,
            processed=run.processed,
            accepted=run.accepted,
            rejected=run.rejected,
            created=run.created,
            percent=percent(run),
            error=run.error,
            report=run.report,
            created_at=run.created_at,
            finished_at=run.finished_at,
        )


def percent(run: CustomerImport) -> int:
    if run.total <= 0:
        return 100 if run.status == "done" else 0
    return min(100, run.processed * 100 // run.total)
