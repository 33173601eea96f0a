"""HTTP for tenancy: the JSON API under /api/v1 and the portal pages. Thin: services decide."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import datetime
from typing import Any
from uuid import UUID

from litestar import Controller, Request, Response, delete, get, patch, post, put
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, FromQuery, JSONBody
from sqlmodel.ext.asyncio.session import AsyncSession

from depotline.auth import (
    Principal,
    platform_only,
    principal_of,
    requires,
    scope_for,
    signed_in,
)
from depotline.config import Settings
from depotline.db import Database, tenant_scope, user_scope
from depotline.errors import NotFound
from tenant import service
from tenant.models import Role
from tenant.repository import TenantRepository
from tenant.schemas import (
    ApiKeyCreated,
    ApiKeyIn,
    ApiKeyOut,
    AssignmentIn,
    AssignmentOut,
    AuditOut,
    InvitationCreated,
    InvitationIn,
    InvitationOut,
    LeaseChange,
    LeaseIn,
    LeaseOut,
    MemberOut,
    RoleChange,
    SeatSessionOut,
    SeatSignIn,
    SsoIn,
    SsoOut,
    TenantIn,
    TenantOut,
)

ADMINS = (Role.TENANT_ADMIN,)
SUPERVISORS = (Role.TENANT_ADMIN, Role.SUPERVISOR)


# -- who is calling -----------------------------------------------------------------------------
async def resolve_principal(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal | None:
    """Installed by the assembly as the kernel's principal resolver."""
    db: Database = connection.app.state.db
    authorization = connection.headers.get("authorization", "")
    if authorization[:7].lower() == "bearer ":
        return await _api_key_principal(db, authorization[7:].strip())
    session = connection.scope.get("session")
    if (
        not isinstance(session, dict)
        or not session.get("user_id")
        or not session.get("home_tenant_id")
    ):
        return None
    user_id = UUID(session["user_id"])
    home = UUID(session["home_tenant_id"])
    acting = UUID(session.get("acting_tenant_id") or session["home_tenant_id"])
    with user_scope(user_id), tenant_scope(home):
        async with db.session() as db_session:
            user = await TenantRepository(db_session).get_user(user_id)
            if user is None:
                return None
            # The seats are read on every request: a seat a supervisor freed gives no access
            # from the very next request on.
            principal = await service.principal_for(
                db_session, user, home, acting, seat_required=True
            )
    if principal is not None and principal.acting_tenant_id != acting:
        _remember(session, principal)
    return principal


def _remember(session: dict[str, Any], principal: Principal) -> None:
    """The tenant a browser acts for (and its seat) in its session: written only when it
    changes, so the session store is not written on every request."""
    acting = str(principal.acting_tenant_id)
    seat = str(principal.seat_session_id) if principal.seat_session_id else None
    if (session.get("acting_tenant_id"), session.get("seat_session_id")) != (acting, seat):
        session["acting_tenant_id"], session["seat_session_id"] = acting, seat


async def _api_key_principal(db: Database, raw: str) -> Principal | None:
    parsed = service.parse_api_key(raw)
    if parsed is None:
        return None
    tenant_id, prefix, secret = parsed
    with tenant_scope(tenant_id):
        async with db.session() as db_session:
            key = await service.check_api_key(db_session, prefix, secret)
            tenant = await TenantRepository(db_session).get_tenant(tenant_id)
    if key is None or tenant is None or not tenant.active:
        return None
    return Principal(
        user_id=None,
        name=f"API key {key.name}",
        home_tenant_id=tenant_id,
        acting_tenant_id=tenant_id,
        acting_tenant_name=tenant.name,
        acting_tenant_kind=tenant.kind,
        role=key.role,
        via="api_key",
        scopes=frozenset(key.scopes),
        api_key_id=key.id,
    )


async def provide_session(db: NamedDependency[Database]) -> AsyncIterator[AsyncSession]:
    """One transaction per request, under the request's tenant scope."""
    async with db.session() as session:
        yield session


def provide_principal(request: Request[Any, Any, Any]) -> Principal:
    return principal_of(request)


def client_ip(request: Request[Any, Any, Any]) -> str | None:
    return request.client.host if request.client else None


def _raise_as_404_if_missing(value: Any, what: str) -> Any:
    if value is None:
        raise NotFound(f"No such {what}")
    return value


# -- JSON API -----------------------------------------------------------------------------------
class TenantApi(Controller):
    path = "/api/v1"
    tags = ["tenants"]
    guards = [signed_in]
    dependencies = {
        "session": Provide(provide_session),
        "principal": Provide(provide_principal, sync_to_thread=False),
    }

    @get("/me", summary="Who am I, acting for which tenant")
    async def me(self, principal: NamedDependency[Principal]) -> dict[str, Any]:
        return {
            "user_id": principal.user_id,
            "name": principal.name,
            "role": principal.role,
            "tenant_id": principal.acting_tenant_id,
            "tenant_name": principal.acting_tenant_name,
            "home_tenant_id": principal.home_tenant_id,
            "via": principal.via,
            "seat_session_id": principal.seat_session_id,
        }

    @get("/tenants", summary="The acting tenant and its branches")
    async def tenants(self, session: NamedDependency[AsyncSession]) -> list[TenantOut]:
        return [
            TenantOut.model_validate(t) for t in await TenantRepository(session).visible_tenants()
        ]

    @get("/tenants/{tenant_id:uuid}")
    async def tenant(
        self, session: NamedDependency[AsyncSession], tenant_id: FromPath[UUID]
    ) -> TenantOut:
        repo = TenantRepository(session)
        if tenant_id not in await repo.visible_tenant_ids():
            raise NotFound("No such tenant")
        return TenantOut.model_validate(await repo.get_tenant(tenant_id))

    @post(
        "/tenants",
        guards=[requires(*ADMINS)],
        summary="Add a branch (or, for platform admins, a tenant)",
    )
    async def create_tenant(
        self,
        session: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
        data: JSONBody[TenantIn],
    ) -> TenantOut:
        tenant = await service.create_tenant(
            session,
            principal,
            name=data.name,
            slug=data.slug,
            kind=data.kind,
            parent_id=data.parent_id or principal.acting_tenant_id,
            timezone=data.timezone,
        )
        return TenantOut.model_validate(tenant)

    @get("/operators", summary="Outsourcing operators one can lease seats from")
    async def operators(self, session: NamedDependency[AsyncSession]) -> list[TenantOut]:
        return [TenantOut.model_validate(t) for t in await TenantRepository(session).operators()]

    @get("/users", summary="Members of the acting tenant and its branches")
    async def users(self, session: NamedDependency[AsyncSession]) -> list[MemberOut]:
        repo = TenantRepository(session)
        return [_member(m, u) for m, u in await repo.members(await repo.visible_tenant_ids())]

    @get("/users/{user_id:uuid}")
    async def user(
        self, session: NamedDependency[AsyncSession], user_id: FromPath[UUID]
    ) -> MemberOut:
        repo = TenantRepository(session)
        found = _raise_as_404_if_missing(
            await repo.member(user_id, await repo.visible_tenant_ids()), "user"
        )
        return _member(*found)

    @patch("/users/{user_id:uuid}", guards=[requires(*ADMINS)])
    async def change_role(
        self,
        session: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
        user_id: FromPath[UUID],
        data: JSONBody[RoleChange],
    ) -> dict[str, str]:
        membership = await service.change_role(session, principal, user_id, data.role)
        return {"role": membership.role}

    @delete("/users/{user_id:uuid}", guards=[requires(*ADMINS)], status_code=204)
    async def remove_member(
        self,
        session: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
        user_id: FromPath[UUID],
    ) -> None:
        await service.remove_member(session, principal, user_id)

    @get("/invitations", guards=[requires(*ADMINS)])
    async def invitations(self, session: NamedDependency[AsyncSession]) -> list[InvitationOut]:
        return [
            InvitationOut.model_validate(i) for i in await TenantRepository(session).invitations()
        ]

    @post("/invitations", guards=[requires(*ADMINS)])
    async def invite(
        self,
        request: Request[Any, Any, Any],
        session: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
        data: JSONBody[InvitationIn],
    ) -> InvitationCreated:
        invitation, token = await service.invite(session, principal, data.email, data.role)
        url = str(request.url_for("accept_invitation", tenant_id=invitation.tenant_id, token=token))
        return InvitationCreated(
            invitation=InvitationOut.model_validate(invitation), accept_url=url
        )

    @get("/seat-leases", summary="Seat leases: a client's own, or an operator's with its clients")
    async def leases(self, session: NamedDependency[AsyncSession]) -> list[LeaseOut]:
        return [
            LeaseOut.model_validate(lease) for lease in await TenantRepository(session).leases()
        ]

    @get("/seat-leases/{lease_id:uuid}")
    async def lease(
        self, session: NamedDependency[AsyncSession], lease_id: FromPath[UUID]
    ) -> LeaseOut:
        lease = await TenantRepository(session).get_lease(lease_id)
        return LeaseOut.model_validate(_raise_as_404_if_missing(lease, "lease"))

    @post("/seat-leases", guards=[requires(*ADMINS)])
    async def create_lease(
        self,
        session: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
        data: JSONBody[LeaseIn],
    ) -> LeaseOut:
        lease = await service.create_lease(
            session,
            principal,
            seats=data.seats,
            starts_on=data.starts_on,
            ends_on=data.ends_on,
            operator_id=data.operator_id,
        )
        return LeaseOut.model_validate(lease)

    @patch("/seat-leases/{lease_id:uuid}", guards=[requires(*ADMINS)])
    async def change_lease(
        self,
        session: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
        lease_id: FromPath[UUID],
        data: JSONBody[LeaseChange],
    ) -> LeaseOut:
        return LeaseOut.model_validate(
            await service.change_lease_seats(session, principal, lease_id, data.seats)
        )

    @get("/seat-assignments")
    async def assignments(self, session: NamedDependency[AsyncSession]) -> list[AssignmentOut]:
        return [
            AssignmentOut.model_validate(a) for a in await TenantRepository(session).assignments()
        ]

    @post("/seat-assignments", guards=[requires(*SUPERVISORS)])
    async def assign(
        self,
        session: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
        data: JSONBody[AssignmentIn],
    ) -> AssignmentOut:
        return AssignmentOut.model_validate(
            await service.assign_agent(session, principal, data.client_id, data.user_id)
        )

    @delete(
        "/seat-assignments/{assignment_id:uuid}", guards=[requires(*SUPERVISORS)], status_code=204
    )
    async def revoke(
        self,
        session: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
        assignment_id: FromPath[UUID],
    ) -> None:
        await service.revoke_assignment(session, principal, assignment_id)

    @get("/seat-sessions", summary="Seat usage: open seats, and closed ones since a time")
    async def seat_sessions(
        self,
        session: NamedDependency[AsyncSession],
        since: FromQuery[datetime | None] = None,
    ) -> list[SeatSessionOut]:
        rows = await TenantRepository(session).seat_sessions(since)
        return [SeatSessionOut.model_validate(s) for s in rows]

    @post("/seat-sessions/{seat_session_id:uuid}/free", guards=[requires(*SUPERVISORS)])
    async def free_seat(
        self,
        session: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
        seat_session_id: FromPath[UUID],
    ) -> SeatSessionOut:
        seat = await service.leave_seat(
            session, principal, seat_session_id, reason="freed by supervisor"
        )
        return SeatSessionOut.model_validate(seat)

    @get("/audit", guards=[requires(*ADMINS)])
    async def audit_log(
        self,
        session: NamedDependency[AsyncSession],
        action: FromQuery[str | None] = None,
        actor: FromQuery[UUID | None] = None,
        record: FromQuery[str | None] = None,
        since: FromQuery[datetime | None] = None,
        until: FromQuery[datetime | None] = None,
    ) -> list[AuditOut]:
        entries = await TenantRepository(session).audit_entries(
            action=action, actor_user_id=actor, record_id=record, since=since, until=until
        )
        return [AuditOut.model_validate(e) for e in entries]

    @get("/audit.csv", guards=[requires(*ADMINS)], media_type="text/csv")
    async def audit_csv(
        self, session: NamedDependency[AsyncSession], action: FromQuery[str | None] = None
    ) -> Response[str]:
        entries = await TenantRepository(session).audit_entries(action=action, limit=100_000)
        return Response(
            service.audit_csv(entries),
            media_type="text/csv",
            headers={"content-disposition": 'attachment; filename="audit-log.csv"'},
        )

    @get("/api-keys", guards=[requires(*ADMINS)])
    async def api_keys(self, session: NamedDependency[AsyncSession]) -> list[ApiKeyOut]:
        return [ApiKeyOut.model_validate(k) for k in await TenantRepository(session).api_keys()]

    @post("/api-keys", guards=[requires(*ADMINS)])
    async def create_api_key(
        self,
        session: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
        data: JSONBody[ApiKeyIn],
    ) -> ApiKeyCreated:
        key, raw = await service.create_api_key(
            session, principal, data.name, data.role, data.scopes
        )
        return ApiKeyCreated(api_key=ApiKeyOut.model_validate(key), key=raw)

    @delete("/api-keys/{key_id:uuid}", guards=[requires(*ADMINS)], status_code=204)
    async def revoke_api_key(
        self,
        session: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
        key_id: FromPath[UUID],
    ) -> None:
        await service.revoke_api_key(session, principal, key_id)

    @get("/sso", guards=[requires(*ADMINS)])
    async def sso(
        self, session: NamedDependency[AsyncSession], principal: NamedDependency[Principal]
    ) -> SsoOut:
        config = await TenantRepository(session).sso_config(principal.acting_tenant_id)
        return SsoOut.model_validate(_raise_as_404_if_missing(config, "SSO configuration"))

    @put("/sso", guards=[requires(*ADMINS)])
    async def save_sso(
        self,
        session: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
        settings: NamedDependency[Settings],
        data: JSONBody[SsoIn],
    ) -> SsoOut:
        config = await service.save_sso(
            session,
            principal,
            data.issuer,
            data.client_id,
            data.client_secret,
            settings.session_secret(),
        )
        return SsoOut.model_validate(config)


class PlatformApi(Controller):
    """The platform console. To anyone but a platform admin it does not exist (404)."""

    path = "/api/v1/platform"
    tags = ["platform"]
    guards = [platform_only]
    dependencies = {
        "session": Provide(provide_session),
        "principal": Provide(provide_principal, sync_to_thread=False),
    }

    @get("/tenants")
    async def tenants(self, session: NamedDependency[AsyncSession]) -> list[TenantOut]:
        return [
            TenantOut.model_validate(t) for t in await TenantRepository(session).visible_tenants()
        ]


class SeatApi(Controller):
    """An operator's agent signs in to and out of a client's hosted seat."""

    path = "/api/v1/seats"
    tags = ["seats"]
    guards = [signed_in]

    @post("/sign-in", summary="Take a seat of a client (the seat limit applies)")
    async def sign_in(
        self,
        request: Request[Any, Any, Any],
        db: NamedDependency[Database],
        data: JSONBody[SeatSignIn],
    ) -> SeatSessionOut:
        seat = await take_seat_for(request, db, data.client_id)
        return SeatSessionOut.model_validate(seat)

    @post("/sign-out", summary="Give a client's seat back (client_id), or every seat held")
    async def sign_out(
        self,
        request: Request[Any, Any, Any],
        db: NamedDependency[Database],
        client_id: FromQuery[UUID | None] = None,
    ) -> dict[str, bool]:
        return {"released": await leave_seat_for(request, db, client_id)}


async def take_seat_for(request: Request[Any, Any, Any], db: Database, client_id: UUID) -> Any:
    """Take a seat of `client_id` as well as any held already (an agent may serve several
    clients at once); the browser then acts for that client."""
    principal = principal_of(request)
    if principal.via != "session" or principal.role not in (Role.AGENT, Role.SUPERVISOR):
        raise NotFound("No seat of that client for you")
    with tenant_scope(client_id):
        async with db.session() as session:
            seat = await service.take_seat(session, _home_principal(principal), client_id)
    request.session["home_tenant_id"] = str(principal.home_tenant_id)
    request.session["acting_tenant_id"] = str(client_id)
    request.session["seat_session_id"] = str(seat.id)
    await _refresh_principal(request)
    return seat


async def leave_seat_for(
    request: Request[Any, Any, Any], db: Database, client_id: UUID | None = None
) -> bool:
    """Give back the seat of `client_id`, or every seat held when None (signing out, changing
    home tenant). The browser then acts for a client still served, else for the home tenant."""
    principal = principal_of(request)
    leaving = [s for s in principal.seats if client_id is None or s.tenant_id == client_id]
    if not leaving:
        return False
    for seat in leaving:
        with scope_for(principal, seat.tenant_id) as on_seat:
            async with db.session() as session:
                await service.leave_seat(session, on_seat, seat.seat_session_id)
    await _refresh_principal(request)
    return True


async def _refresh_principal(request: Request[Any, Any, Any]) -> None:
    """The rest of the request sees the seats as they are now (and the session remembers
    which tenant the browser acts for)."""
    principal = await resolve_principal(request)
    request.scope["user"] = request.scope["auth"] = principal


def _home_principal(principal: NamedDependency[Principal]) -> Principal:
    """The principal acting for its home tenant: how an agent asks a client for a seat."""
    return replace(principal, acting_tenant_id=principal.home_tenant_id, seat_session_id=None)


def _member(membership: Any, user: Any) -> MemberOut:
    return MemberOut(
        user_id=user.id,
        tenant_id=membership.tenant_id,
        email=user.email,
        name=user.name,
        role=membership.role,
    )
