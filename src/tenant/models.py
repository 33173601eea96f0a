"""Tables of the tenant domain.

`tenants` and `users` are platform tables (a user may belong to several tenants); everything else
is tenant-owned and under row-level security. The platform tenant is the root of the tenant tree,
so a platform admin acting for it sees every tenant, an HQ sees its branches, a branch only itself.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy import Column, DateTime, UniqueConstraint
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TEXT
from sqlmodel import Field, SQLModel

from depotline.db import TenantOwned, empty_list, utcnow


class TenantKind(StrEnum):
    PLATFORM = "platform"
    CLIENT = "client"  # a logistics company: HQ or branch
    OPERATOR = "operator"  # an outsourcing call-center company


class Role(StrEnum):
    PLATFORM_ADMIN = "platform_admin"
    TENANT_ADMIN = "tenant_admin"
    SUPERVISOR = "supervisor"
    AGENT = "agent"
    DEPOT_USER = "depot_user"
    BILLING_ADMIN = "billing_admin"
    READ_ONLY = "read_only"


class Tenant(SQLModel, table=True):
    __tablename__ = "tenants"

    id: UUID = Field(default_factory=uuid4, primary_key=True)
    kind: TenantKind = Field(sa_type=TEXT)
    name: str
    slug: str = Field(unique=True)
    parent_id: UUID | None = Field(default=None, foreign_key="tenants.id", index=True)
    timezone: str = "UTC"
    active: bool = True
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))


class User(SQLModel, table=True):
    __tablename__ = "users"

    id: UUID = Field(default_factory=uuid4, primary_key=True)
    email: str = Field(unique=True)  # stored lower-case
    name: str
    password_hash: str | None = None
    locale: str = "en"
    active: bool = True
    failed_logins: int = 0
    locked_until: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))


class Membership(TenantOwned, table=True):
    __tablename__ = "memberships"
    __table_args__ = (UniqueConstraint("tenant_id", "user_id"),)

    user_id: UUID = Field(foreign_key="users.id", index=True)
    role: Role = Field(sa_type=TEXT)
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))


class Invitation(TenantOwned, table=True):
    __tablename__ = "invitations"

    email: str
    role: Role = Field(sa_type=TEXT)
    token_hash: str = Field(unique=True)
    invited_by: UUID = Field(foreign_key="users.id")
    expires_at: datetime = Field(sa_type=DateTime(timezone=True))
    accepted_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))


class SeatLease(TenantOwned, table=True):
    """A client leases N hosted seats, optionally from a named operator, for a period."""

    __tablename__ = "seat_leases"

    operator_id: UUID | None = Field(default=None, foreign_key="tenants.id", index=True)
    seats: int
    starts_on: date
    ends_on: date | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))


class SeatAssignment(TenantOwned, table=True):
    """The operator (tenant_id) lets one of its agents work the client's (client_id) seats.
    Visible to both parties; only the operator writes it."""

    __tablename__ = "seat_assignments"

    client_id: UUID = Field(foreign_key="tenants.id", index=True)
    user_id: UUID = Field(foreign_key="users.id", index=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))
    revoked_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))


class SeatSession(TenantOwned, table=True):
    """Who held a seat of the client (tenant_id), for which operator, from when to when.
    Billing and operator settlement are computed from these rows."""

    __tablename__ = "seat_sessions"

    lease_id: UUID
    operator_id: UUID | None = Field(default=None, foreign_key="tenants.id", index=True)
    user_id: UUID = Field(foreign_key="users.id", index=True)
    started_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))
    ended_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    ended_by: UUID | None = None
    end_reason: str | None = None


class AuditEntry(TenantOwned, table=True):
    """Append-only: the app role may insert and read, never update or delete."""

    __tablename__ = "audit_log"

    at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True), index=True)
    actor_user_id: UUID | None = None
    actor_tenant_id: UUID | None = None
    action: str
    record_type: str | None = None
    record_id: str | None = None
    ip: str | None = None
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False))


class ApiKey(TenantOwned, table=True):
    __tablename__ = "api_keys"

    name: str
    prefix: str = Field(unique=True)  # shown in lists; the secret part is only ever hashed
    key_hash: str
    role: Role = Field(sa_type=TEXT)
    scopes: list[str] = Field(
        default_factory=empty_list, sa_column=Column(ARRAY(TEXT), nullable=False)
    )
    created_by: UUID | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))
    last_used_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    revoked_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))


class SsoConfig(TenantOwned, table=True):
    __tablename__ = "sso_configs"

    issuer: str
    client_id: str
    client_secret_encrypted: str  # Fernet, keyed from SECRET_KEY; never shown again
    enabled: bool = True
    updated_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))


__all__ = [
    "ApiKey",
    "AuditEntry",
    "Invitation",
    "Membership",
    "Role",
    "SeatAssignment",
    "SeatLease",
    "SeatSession",
    "SsoConfig",
    "Tenant",
    "TenantKind",
    "User",
]
