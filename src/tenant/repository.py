"""Every query of the tenant domain. Tenant-owned tables are also guarded by row-level security;
the platform tables (`tenants`, `users`) are scoped here, by the callers' visible tenants."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from uuid import UUID

from sqlalchemy import func, or_, text
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from tenant.models import (
    ApiKey,
    AuditEntry,
    Invitation,
    Membership,
    SeatAssignment,
    SeatLease,
    SeatSession,
    SsoConfig,
    Tenant,
    User,
)


class TenantRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # -- tenants ---------------------------------------------------------------------------
    async def get_tenant(self, tenant_id: UUID) -> Tenant | None:
        return await self.session.get(Tenant, tenant_id)

    async def tenant_by_slug(self, slug: str) -> Tenant | None:
        return (await self.session.exec(select(Tenant).where(Tenant.slug == slug))).first()

    async def visible_tenant_ids(self) -> list[UUID]:
        """The scoped tenant and its descendants, as row-level security computes them."""
        ids = (await self.session.execute(text("select depotline_visible_tenants()"))).scalar()
        return list(ids or [])

    async def visible_tenants(self) -> Sequence[Tenant]:
        ids = await self.visible_tenant_ids()
        query = select(Tenant).where(col(Tenant.id).in_(ids)).order_by(col(Tenant.name))
        return (await self.session.exec(query)).all()

    async def tenants_by_ids(self, ids: Sequence[UUID]) -> dict[UUID, Tenant]:
        if not ids:
            return {}
        rows = await self.session.exec(select(Tenant).where(col(Tenant.id).in_(list(ids))))
        return {tenant.id: tenant for tenant in rows}

    async def operators(self) -> Sequence[Tenant]:
        """Operators are listed publicly to clients choosing whom to lease seats from."""
        query = select(Tenant).where(Tenant.kind == "operator", col(Tenant.active).is_(True))
        return (await self.session.exec(query.order_by(col(Tenant.name)))).all()

    # -- users and memberships ---------------------------------------------------------------
    async def user_by_email(self, email: str) -> User | None:
        return (await self.session.exec(select(User).where(User.email == email.lower()))).first()

    async def get_user(self, user_id: UUID) -> User | None:
        return await self.session.get(User, user_id)

    async def users_by_ids(self, ids: Sequence[UUID]) -> dict[UUID, User]:
        if not ids:
            return {}
        rows = await self.session.exec(select(User).where(col(User.id).in_(list(ids))))
        return {user.id: user for user in rows}

    async def memberships_of(self, user_id: UUID) -> Sequence[Membership]:
        """All the user's memberships: visible under the user's own scope."""
        query = select(Membership).where(Membership.user_id == user_id)
        return (await self.session.exec(query)).all()

    async def membership(self, tenant_id: UUID, user_id: UUID) -> Membership | None:
        query = select(Membership).where(
            Membership.tenant_id == tenant_id, Membership.user_id == user_id
        )
        return (await self.session.exec(query)).first()

    async def members(self, tenant_ids: Sequence[UUID]) -> Sequence[tuple[Membership, User]]:
        query = (
            select(Membership, User)
            .join(User, col(User.id) == col(Membership.user_id))
            .where(col(Membership.tenant_id).in_(list(tenant_ids)))
            .order_by(col(User.name))
        )
        return (await self.session.exec(query)).all()

    async def member(
        self, user_id: UUID, tenant_ids: Sequence[UUID]
    ) -> tuple[Membership, User] | None:
        query = (
            select(Membership, User)
            .join(User, col(User.id) == col(Membership.user_id))
            .where(Membership.user_id == user_id, col(Membership.tenant_id).in_(list(tenant_ids)))
        )
        return (await self.session.exec(query)).first()

    # -- invitations -------------------------------------------------------------------------
    async def invitation_by_token_hash(self, token_hash: str) -> Invitation | None:
        query = select(Invitation).where(Invitation.token_hash == token_hash)
        return (await self.session.exec(query)).first()

    async def pending_invitation(self, email: str, now: datetime) -> Invitation | None:
        query = select(Invitation).where(
            Invitation.email == email,
            col(Invitation.accepted_at).is_(None),
            Invitation.expires_at > now,
        )
        return (await self.session.exec(query)).first()

    async def invitations(self) -> Sequence[Invitation]:
        query = select(Invitation).order_by(col(Invitation.created_at).desc()).limit(200)
        return (await self.session.exec(query)).all()

    # -- seats -------------------------------------------------------------------------------
    async def leases(self) -> Sequence[SeatLease]:
        query = select(SeatLease).order_by(col(SeatLease.starts_on).desc())
        return (await self.session.exec(query)).all()

    async def get_lease(self, lease_id: UUID, *, lock: bool = False) -> SeatLease | None:
        query = select(SeatLease).where(SeatLease.id == lease_id)
        if lock:
            query = query.with_for_update()
        return (await self.session.exec(query)).first()

    async def overlapping_leases(
        self, client_id: UUID, operator_id: UUID | None, starts_on: date, ends_on: date | None
    ) -> Sequence[SeatLease]:
        same_operator = (
            col(SeatLease.operator_id).is_(None)
            if operator_id is None
            else SeatLease.operator_id == operator_id
        )
        query = select(SeatLease).where(
            SeatLease.tenant_id == client_id,
            same_operator,
            or_(col(SeatLease.ends_on).is_(None), col(SeatLease.ends_on) >= starts_on),
        )
        if ends_on is not None:
            query = query.where(SeatLease.starts_on <= ends_on)
        return (await self.session.exec(query)).all()

    async def active_leases(
        self, client_id: UUID, operator_id: UUID | None, today: date, *, lock: bool = False
    ) -> Sequence[SeatLease]:
        same_operator = (
            col(SeatLease.operator_id).is_(None)
            if operator_id is None
            else SeatLease.operator_id == operator_id
        )
        query = select(SeatLease).where(
            SeatLease.tenant_id == client_id,
            same_operator,
            SeatLease.starts_on <= today,
            or_(col(SeatLease.ends_on).is_(None), col(SeatLease.ends_on) >= today),
        )
        if lock:
            query = query.order_by(col(SeatLease.id)).with_for_update()
        return (await self.session.exec(query)).all()

    async def assignments(self) -> Sequence[SeatAssignment]:
        query = select(SeatAssignment).where(col(SeatAssignment.revoked_at).is_(None))
        return (await self.session.exec(query.order_by(col(SeatAssignment.created_at)))).all()

    async def get_assignment(self, assignment_id: UUID) -> SeatAssignment | None:
        query = select(SeatAssignment).where(SeatAssignment.id == assignment_id)
        return (await self.session.exec(query)).first()

    async def active_assignment(
        self, operator_id: UUID, client_id: UUID, user_id: UUID
    ) -> SeatAssignment | None:
        query = select(SeatAssignment).where(
            SeatAssignment.tenant_id == operator_id,
            SeatAssignment.client_id == client_id,
            SeatAssignment.user_id == user_id,
            col(SeatAssignment.revoked_at).is_(None),
        )
        return (await self.session.exec(query)).first()

    async def open_seat_sessions(
        self, lease_ids: Sequence[UUID] | None = None
    ) -> Sequence[SeatSession]:
        query = select(SeatSession).where(col(SeatSession.ended_at).is_(None))
        if lease_ids is not None:
            query = query.where(col(SeatSession.lease_id).in_(list(lease_ids)))
        return (await self.session.exec(query.order_by(col(SeatSession.started_at)))).all()

    async def seat_sessions(self, since: datetime | None = None) -> Sequence[SeatSession]:
        query = select(SeatSession)
        if since is not None:
            query = query.where(
                or_(col(SeatSession.ended_at).is_(None), col(SeatSession.ended_at) >= since)
            )
        return (
            await self.session.exec(query.order_by(col(SeatSession.started_at).desc()).limit(500))
        ).all()

    async def get_seat_session(self, session_id: UUID, *, lock: bool = False) -> SeatSession | None:
        query = select(SeatSession).where(SeatSession.id == session_id)
        if lock:
            query = query.with_for_update()
        return (await self.session.exec(query)).first()

    async def open_seats_of(
        self, user_id: UUID, operator_id: UUID
    ) -> Sequence[tuple[SeatSession, Tenant]]:
        """The seats the user holds for `operator_id` now, with their clients, by client name:
        visible under the operator's scope (or, one client's only, under that client's)."""
        query = (
            select(SeatSession, Tenant)
            .join(Tenant, col(Tenant.id) == col(SeatSession.tenant_id))
            .where(
                SeatSession.user_id == user_id,
                SeatSession.operator_id == operator_id,
                col(SeatSession.ended_at).is_(None),
                col(Tenant.active).is_(True),
            )
            .order_by(col(Tenant.name))
        )
        return (await self.session.exec(query)).all()

    async def holds_open_seat(self, client_id: UUID, user_id: UUID) -> bool:
        """`depotline_holds_seat` (migration 0011): the one definition, shared with routing."""
        held = await self.session.execute(
            text("select depotline_holds_seat(:client, :user)"),
            {"client": client_id, "user": user_id},
        )
        return bool(held.scalar())

    async def open_seat_session_of(
        self, user_id: UUID, client_id: UUID | None = None
    ) -> SeatSession | None:
        query = select(SeatSession).where(
            SeatSession.user_id == user_id, col(SeatSession.ended_at).is_(None)
        )
        if client_id is not None:
            query = query.where(SeatSession.tenant_id == client_id)
        return (await self.session.exec(query)).first()

    # -- audit -------------------------------------------------------------------------------
    async def audit_entries(
        self,
        *,
        action: str | None = None,
        actor_user_id: UUID | None = None,
        record_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 200,
    ) -> Sequence[AuditEntry]:
        query = select(AuditEntry)
        if action:
            query = query.where(col(AuditEntry.action).startswith(action))
        if actor_user_id:
            query = query.where(AuditEntry.actor_user_id == actor_user_id)
        if record_id:
            query = query.where(AuditEntry.record_id == record_id)
        if since:
            query = query.where(AuditEntry.at >= since)
        if until:
            query = query.where(AuditEntry.at < until)
        query = query.order_by(col(AuditEntry.at).desc()).limit(limit)
        return (await self.session.exec(query)).all()

    # -- API keys and SSO --------------------------------------------------------------------
    async def api_keys(self) -> Sequence[ApiKey]:
        query = select(ApiKey).order_by(col(ApiKey.created_at).desc())
        return (await self.session.exec(query)).all()

    async def api_key_by_prefix(self, prefix: str) -> ApiKey | None:
        return (await self.session.exec(select(ApiKey).where(ApiKey.prefix == prefix))).first()

    async def get_api_key(self, key_id: UUID) -> ApiKey | None:
        return (await self.session.exec(select(ApiKey).where(ApiKey.id == key_id))).first()

    async def sso_config(self, tenant_id: UUID) -> SsoConfig | None:
        query = select(SsoConfig).where(SsoConfig.tenant_id == tenant_id)
        return (await self.session.exec(query)).first()

    async def count_open_sessions(self, lease_id: UUID) -> int:
        query = (
            select(func.count())
            .select_from(SeatSession)
            .where(SeatSession.lease_id == lease_id, col(SeatSession.ended_at).is_(None))
        )
        return int((await self.session.exec(query)).one())

    def add(self, *rows: object) -> None:
        self.session.add_all(rows)

    async def flush(self) -> None:
        await self.session.flush()
