"""API input and output of the tenant domain."""

from __future__ import annotations

from datetime import date, datetime
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from tenant.models import Role, TenantKind


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class TenantIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    slug: str = Field(min_length=2, max_length=63)
    kind: TenantKind
    parent_id: UUID | None = None
    timezone: str = "UTC"


class TenantOut(Out):
    id: UUID
    name: str
    slug: str
    kind: TenantKind
    parent_id: UUID | None
    timezone: str
    active: bool


class MemberOut(BaseModel):
    user_id: UUID
    tenant_id: UUID
    email: str
    name: str
    role: Role


class RoleChange(BaseModel):
    role: str


class InvitationIn(BaseModel):
    email: str = Field(max_length=320)
    role: str


class InvitationOut(Out):
    id: UUID
    email: str
    role: Role
    expires_at: datetime
    accepted_at: datetime | None


class InvitationCreated(BaseModel):
    invitation: InvitationOut
    accept_url: str  # shown once: the token is stored only hashed


class LeaseIn(BaseModel):
    seats: int = Field(ge=1, le=10_000)
    starts_on: date
    ends_on: date | None = None
    operator_id: UUID | None = None


class LeaseChange(BaseModel):
    seats: int = Field(ge=0, le=10_000)


class LeaseOut(Out):
    id: UUID
    tenant_id: UUID
    operator_id: UUID | None
    seats: int
    starts_on: date
    ends_on: date | None


class AssignmentIn(BaseModel):
    client_id: UUID
    user_id: UUID


class AssignmentOut(Out):
    id: UUID
    tenant_id: UUID
    client_id: UUID
    user_id: UUID
    created_at: datetime
    revoked_at: datetime | None


class SeatSignIn(BaseModel):
    client_id: UUID


class SeatSessionOut(Out):
    id: UUID
    tenant_id: UUID
    lease_id: UUID
    operator_id: UUID | None
    user_id: UUID
    started_at: datetime
    ended_at: datetime | None
    end_reason: str | None


class AuditOut(Out):
    id: UUID
    tenant_id: UUID
    at: datetime
    actor_user_id: UUID | None
    actor_tenant_id: UUID | None
    action: str
    record_type: str | None
    record_id: str | None
    ip: str | None
    detail: dict[str, str]


class ApiKeyIn(BaseModel):
    name: str = Field(max_length=100)
    role: str = "read_only"
    scopes: list[str] = Field(default_factory=lambda: ["read"])


class ApiKeyOut(Out):
    id: UUID
    name: str
    prefix: str
    role: Role
    scopes: list[str]
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreated(BaseModel):
    api_key: ApiKeyOut
    key: str  # shown once


class SsoIn(BaseModel):
    issuer: str = Field(max_length=500)
    client_id: str = Field(max_length=200)
    client_secret: str = Field(default="", max_length=500)


class SsoOut(Out):
    issuer: str
    client_id: str
    enabled: bool
    updated_at: datetime
