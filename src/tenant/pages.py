"""The portal pages of the tenant domain: sign-in, tenant switcher, members and invitations,
seats, branches, API keys, SSO settings, audit log, and the platform console. Forms post here,
the services decide, and the page redirects back with a message."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date
from uuid import UUID

import structlog
from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Template

from depotline.auth import (
    Principal,
    new_csrf_token,
    platform_only,
    principal_of,
    requires,
    signed_in,
)
from depotline.config import Settings
from depotline.db import Database, tenant_scope, user_scope
from depotline.errors import DomainError, InvalidInput, NotFound, TooManyAttempts
from depotline.oidc import LoginState, OidcClientConfig, OidcError, begin_login, complete_login
from depotline.pages import Req, attempt, flash, form_of, refused, render
from tenant import service
from tenant.models import Role, TenantKind
from tenant.repository import TenantRepository
from tenant.routes import ADMINS, SUPERVISORS, client_ip, leave_seat_for, take_seat_for

log = structlog.get_logger(__name__)
LOGIN_WINDOW_SECONDS = 15 * 60
LOGIN_ATTEMPTS_PER_WINDOW = 20


#: What people read for roles and tenant kinds (translated through the catalogs).
LABELS = {
    "platform_admin": "Platform admin",
    "tenant_admin": "Tenant admin",
    "supervisor": "Supervisor",
    "agent": "Agent",
    "depot_user": "Depot user",
    "billing_admin": "Billing admin",
    "read_only": "Read-only",
    "platform": "Platform",
    "client": "Logistics client",
    "operator": "Outsourcing operator",
}


def label(identifier: object) -> str:
    """Template filter: the English label of a role or tenant kind, for gettext to translate."""
    value = str(getattr(identifier, "value", identifier))
    return LABELS.get(value, value)


# -- signing in --------------------------------------------------------------------------------
class AuthPages(Controller):
    path = "/auth"
    include_in_schema = False

    @get("/sign-in", name="sign_in")
    async def sign_in_form(self, request: Req, next: FromQuery[str] = "/") -> Template:
        return render(request, "tenant/sign_in.html", next=_safe_next(next))

    @post("/sign-in")
    async def sign_in(
        self, request: Req, db: NamedDependency[Database], settings: NamedDependency[Settings]
    ) -> Redirect | Template:
        form = await form_of(request)
        email, password = form.get("email", "").strip().lower(), form.get("password", "")
        next_path = _safe_next(form.get("next", "/"))
        try:
            await _throttle(request, email)
            async with db.session() as session:
                outcome = await service.authenticate(session, email, password)
            if outcome.refusal is not None:
                raise outcome.refusal
            user = outcome.user
            assert user is not None
        except DomainError as exc:
            log.info("sign-in refused", email=email, reason=exc.detail)
            status = 429 if isinstance(exc, TooManyAttempts) else 400
            return render(
                request,
                "tenant/sign_in.html",
                status,
                error=exc.detail,
                email=email,
                next=next_path,
            )
        request.session.clear()  # a new session id on sign-in: no session fixation
        request.session.update(user_id=str(user.id), csrf=new_csrf_token())
        with user_scope(user.id):
            async with db.session() as session:
                memberships = await service.memberships_with_tenants(session, user.id)
        if len(memberships) == 1:
            _enter(request, memberships[0][1].id)
            return Redirect(path=next_path)
        return Redirect(path=f"/auth/choose-tenant?next={next_path}")

    @get("/choose-tenant")
    async def choose_form(
        self, request: Req, db: NamedDependency[Database], next: FromQuery[str] = "/"
    ) -> Template | Redirect:
        user_id = _session_user(request)
        if user_id is None:
            return Redirect(path="/auth/sign-in")
        with user_scope(user_id):
            async with db.session() as session:
                memberships = await service.memberships_with_tenants(session, user_id)
        return render(
            request, "tenant/choose_tenant.html", memberships=memberships, next=_safe_next(next)
        )

    @post("/choose-tenant")
    async def choose(self, request: Req, db: NamedDependency[Database]) -> Redirect:
        user_id = _session_user(request)
        if user_id is None:
            return Redirect(path="/auth/sign-in")
        form = await form_of(request)
        with user_scope(user_id):
            async with db.session() as session:
                memberships = await service.memberships_with_tenants(session, user_id)
        wanted = form.get("tenant_id", "")
        if wanted not in {str(t.id) for _, t in memberships}:
            flash(request, "You are not a member of that tenant", "error")
            return Redirect(path="/auth/choose-tenant")
        if isinstance(request.scope.get("user"), Principal):
            await leave_seat_for(request, db)  # every seat: the seats were the old tenant's
        _enter(request, UUID(wanted))
        return Redirect(path=_safe_next(form.get("next", "/")))

    @post("/sign-out")
    async def sign_out(self, request: Req, db: NamedDependency[Database]) -> Redirect:
        if isinstance(request.scope.get("user"), Principal):
            await leave_seat_for(request, db)  # seat usage ends exactly when the agent leaves
        request.clear_session()
        return Redirect(path="/auth/sign-in")

    @get("/forgot")
    async def forgot_form(self, request: Req) -> Template:
        return render(request, "tenant/forgot.html")

    @post("/forgot")
    async def forgot(
        self, request: Req, db: NamedDependency[Database], settings: NamedDependency[Settings]
    ) -> Template:
        email = (await form_of(request)).get("email", "").strip().lower()
        async with db.session() as session:
            user = await TenantRepository(session).user_by_email(email)
        if user is not None and user.active:
            token = service.reset_token(user, settings.session_secret())
            link = str(request.base_url).rstrip("/") + f"/auth/reset/{token}"
            # Mail delivery arrives with the notifications module; until then the link is logged.
            log.info("password reset link", email=email, link=link)
        # The same answer whether or not the address exists.
        return render(request, "tenant/forgot.html", sent=True)

    @get("/reset/{token:str}")
    async def reset_form(
        self,
        request: Req,
        token: FromPath[str],
        db: NamedDependency[Database],
        settings: NamedDependency[Settings],
    ) -> Template:
        async with db.session() as session:
            await service.check_reset_token(session, token, settings.session_secret())
        return render(request, "tenant/reset.html", token=token)

    @post("/reset/{token:str}")
    async def reset(
        self,
        request: Req,
        token: FromPath[str],
        db: NamedDependency[Database],
        settings: NamedDependency[Settings],
    ) -> Template | Redirect:
        password = (await form_of(request)).get("password", "")
        try:
            async with db.session() as session:
                await service.reset_password(session, token, password, settings.session_secret())
        except NotFound:
            raise
        except DomainError as exc:
            return render(request, "tenant/reset.html", exc.status, token=token, error=exc.detail)
        flash(request, "Password changed. Sign in with the new one.")
        return Redirect(path="/auth/sign-in")


class SsoPages(Controller):
    """Per-tenant single sign-on: OpenID Connect, authorization code with PKCE."""

    path = "/auth/sso"
    include_in_schema = False

    @get("/")
    async def begin(
        self,
        request: Req,
        db: NamedDependency[Database],
        settings: NamedDependency[Settings],
        tenant: FromQuery[str] = "",
    ) -> Redirect | Template:
        async with db.session() as session:
            found = await TenantRepository(session).tenant_by_slug(tenant.strip().lower())
        config = None
        if found is not None:
            with tenant_scope(found.id):
                async with db.session() as session:
                    config = await TenantRepository(session).sso_config(found.id)
        if found is None or config is None or not config.enabled:
            return render(
                request,
                "tenant/sign_in.html",
                404,
                error="No single sign-on is set up for that company code",
                next="/",
            )
        client = OidcClientConfig(
            config.issuer,
            config.client_id,
            service.sso_client_secret(config, settings.session_secret()),
        )
        try:
            url, state = await begin_login(client, _callback_url(request))
        except OidcError as exc:
            return render(
                request, "tenant/sign_in.html", 502, error=f"Single sign-on failed: {exc}", next="/"
            )
        request.session["sso"] = {"tenant_id": str(found.id), "login": state.to_dict()}
        return Redirect(path=url)

    @get("/callback")
    async def callback(
        self, request: Req, db: NamedDependency[Database], settings: NamedDependency[Settings]
    ) -> Redirect | Template:
        pending = request.session.pop("sso", None) if request.session else None
        if not pending:
            return render(
                request,
                "tenant/sign_in.html",
                400,
                error="The single sign-on attempt expired; start again",
                next="/",
            )
        tenant_id = UUID(pending["tenant_id"])
        with tenant_scope(tenant_id):
            async with db.session() as session:
                config = await TenantRepository(session).sso_config(tenant_id)
        if config is None:
            return render(
                request,
                "tenant/sign_in.html",
                400,
                error="Single sign-on is no longer set up",
                next="/",
            )
        client = OidcClientConfig(
            config.issuer,
            config.client_id,
            service.sso_client_secret(config, settings.session_secret()),
        )
        try:
            identity = await complete_login(
                client, LoginState.from_dict(pending["login"]), dict(request.query_params)
            )
        except OidcError as exc:
            return render(
                request, "tenant/sign_in.html", 400, error=f"Single sign-on failed: {exc}", next="/"
            )
        try:
            with tenant_scope(tenant_id):
                async with db.session() as session:
                    user = await service.sso_member(
                        session, tenant_id, identity, client_ip(request)
                    )
        except DomainError as exc:
            return render(request, "tenant/sign_in.html", exc.status, error=exc.detail, next="/")
        request.session.clear()
        request.session.update(user_id=str(user.id), csrf=new_csrf_token())
        _enter(request, tenant_id)
        return Redirect(path="/")


def _callback_url(request: Req) -> str:
    return str(request.base_url).rstrip("/") + "/auth/sso/callback"


class InvitationPages(Controller):
    path = "/invitations"
    include_in_schema = False

    @get("/{tenant_id:uuid}/{token:str}", name="accept_invitation")
    async def accept_form(
        self,
        request: Req,
        tenant_id: FromPath[UUID],
        token: FromPath[str],
        db: NamedDependency[Database],
    ) -> Template:
        with tenant_scope(tenant_id):
            async with db.session() as session:
                invitation, tenant = await service.pending_invitation(session, token)
        return render(
            request,
            "tenant/accept.html",
            tenant_id=tenant_id,
            token=token,
            invitation=invitation,
            tenant=tenant,
        )

    @post("/{tenant_id:uuid}/{token:str}")
    async def accept(
        self,
        request: Req,
        tenant_id: FromPath[UUID],
        token: FromPath[str],
        db: NamedDependency[Database],
    ) -> Template | Redirect:
        form = await form_of(request)
        try:
            with tenant_scope(tenant_id):
                async with db.session() as session:
                    await service.accept_invitation(
                        session, token, form.get("name", ""), form.get("password")
                    )
        except DomainError as exc:
            return render(
                request,
                "tenant/accept.html",
                exc.status,
                tenant_id=tenant_id,
                token=token,
                error=exc.detail,
            )
        flash(request, "Welcome aboard. Sign in to continue.")
        return Redirect(path="/auth/sign-in")


def _enter(request: Req, tenant_id: UUID) -> None:
    request.session.update(
        home_tenant_id=str(tenant_id), acting_tenant_id=str(tenant_id), seat_session_id=None
    )


def _session_user(request: Req) -> UUID | None:
    raw = request.session.get("user_id") if request.session else None
    return UUID(raw) if raw else None


def _safe_next(path: str) -> str:
    return path if path.startswith("/") and not path.startswith("//") else "/"


async def _throttle(request: Req, email: str) -> None:
    """At most 20 sign-in attempts per address and client IP per 15 minutes (on top of the
    per-account lockout), counted in Redis so every replica shares the count."""
    redis = request.app.state.redis
    key = f"signin:{request.client.host if request.client else '-'}:{email}"
    count = await redis.incr(key)
    if count == 1:
        await redis.expire(key, LOGIN_WINDOW_SECONDS)
    if count > LOGIN_ATTEMPTS_PER_WINDOW:
        raise TooManyAttempts("Too many sign-in attempts; wait 15 minutes and try again")


# -- management pages -------------------------------------------------------------------------
class AdminPages(Controller):
    path = "/admin"
    include_in_schema = False
    guards = [signed_in]

    @get("/users", guards=[requires(*ADMINS)])
    async def users(self, request: Req, db: NamedDependency[Database]) -> Template:
        async with db.session() as session:
            repo = TenantRepository(session)
            members = await repo.members(await repo.visible_tenant_ids())
            invitations = await repo.invitations()
        roles = [r for r in Role if r != Role.PLATFORM_ADMIN]
        return render(
            request, "tenant/users.html", members=members, invitations=invitations, roles=roles
        )

    @post("/users/invite", guards=[requires(*ADMINS)])
    async def invite(self, request: Req, db: NamedDependency[Database]) -> Redirect | Template:
        form = await form_of(request)
        principal = principal_of(request)
        try:
            async with db.session() as session:
                invitation, token = await service.invite(
                    session, principal, form.get("email", ""), form.get("role", "")
                )
        except DomainError as exc:
            refused(request, exc)
            return Redirect(path="/admin/users")
        link = str(
            request.url_for("accept_invitation", tenant_id=invitation.tenant_id, token=token)
        )
        flash(
            request,
            f"Invitation created for {invitation.email}. Send them this link (shown once): {link}",
        )
        return Redirect(path="/admin/users")

    @post("/users/{user_id:uuid}/role", guards=[requires(*ADMINS)])
    async def change_role(
        self, request: Req, user_id: FromPath[UUID], db: NamedDependency[Database]
    ) -> Redirect:
        role = (await form_of(request)).get("role", "")

        async def action() -> None:
            async with db.session() as session:
                await service.change_role(session, principal_of(request), user_id, role)

        return await attempt(request, action, "Role changed", "/admin/users")

    @get("/seats")
    async def seats(self, request: Req, db: NamedDependency[Database]) -> Template:
        principal = principal_of(request)
        async with db.session() as session:
            repo = TenantRepository(session)
            leases = await repo.leases()
            assignments = await repo.assignments()
            open_seats = await repo.open_seat_sessions()
            members = await repo.members([principal.acting_tenant_id])
            operators = await repo.operators()
            ids = {x for lease in leases for x in (lease.tenant_id, lease.operator_id) if x}
            ids |= {a.client_id for a in assignments} | {s.tenant_id for s in open_seats}
            tenants = await repo.tenants_by_ids(list(ids))
            users = {
                uid: await repo.get_user(uid)
                for uid in {a.user_id for a in assignments} | {s.user_id for s in open_seats}
            }
        in_use = {
            lease.id: sum(1 for s in open_seats if s.lease_id == lease.id) for lease in leases
        }
        return render(
            request,
            "tenant/seats.html",
            leases=leases,
            assignments=assignments,
            open_seats=open_seats,
            members=members,
            operators=operators,
            tenants=tenants,
            users=users,
            in_use=in_use,
            today=date.today(),
            is_client=principal.acting_tenant_kind == TenantKind.CLIENT,
            is_operator=principal.acting_tenant_kind == TenantKind.OPERATOR,
            can_manage=principal.role in (*ADMINS, *SUPERVISORS) or principal.is_platform_admin,
        )

    @post("/seats/leases", guards=[requires(*ADMINS)])
    async def create_lease(self, request: Req, db: NamedDependency[Database]) -> Redirect:
        form = await form_of(request)

        async def action() -> None:
            try:
                seats = int(form.get("seats", "0"))
                starts_on = date.fromisoformat(form.get("starts_on", ""))
                ends_on = date.fromisoformat(form["ends_on"]) if form.get("ends_on") else None
            except ValueError:
                raise InvalidInput("Seats must be a number and dates YYYY-MM-DD") from None
            operator = UUID(form["operator_id"]) if form.get("operator_id") else None
            async with db.session() as session:
                await service.create_lease(
                    session,
                    principal_of(request),
                    seats=seats,
                    starts_on=starts_on,
                    ends_on=ends_on,
                    operator_id=operator,
                )

        return await attempt(request, action, "Seats leased", "/admin/seats")

    @post("/seats/assignments", guards=[requires(*SUPERVISORS)])
    async def assign(self, request: Req, db: NamedDependency[Database]) -> Redirect:
        form = await form_of(request)

        async def action() -> None:
            try:
                client_id, user_id = UUID(form.get("client_id", "")), UUID(form.get("user_id", ""))
            except ValueError:
                raise InvalidInput("Choose a client and an agent") from None
            async with db.session() as session:
                await service.assign_agent(session, principal_of(request), client_id, user_id)

        return await attempt(request, action, "Agent assigned", "/admin/seats")

    @post("/seats/{seat_session_id:uuid}/free", guards=[requires(*SUPERVISORS)])
    async def free(
        self, request: Req, seat_session_id: FromPath[UUID], db: NamedDependency[Database]
    ) -> Redirect:
        async def action() -> None:
            async with db.session() as session:
                await service.leave_seat(
                    session, principal_of(request), seat_session_id, "freed by supervisor"
                )

        return await attempt(request, action, "Seat freed", "/admin/seats")

    @get("/branches")
    async def branches(self, request: Req, db: NamedDependency[Database]) -> Template:
        async with db.session() as session:
            tree = await service.tenant_tree(session)
        return render(request, "tenant/branches.html", tree=tree)

    @post("/branches", guards=[requires(*ADMINS)])
    async def add_branch(self, request: Req, db: NamedDependency[Database]) -> Redirect:
        return await attempt(request, tenant_from_form(request, db), "Added", "/admin/branches")

    @get("/api-keys", guards=[requires(*ADMINS)])
    async def api_keys(self, request: Req, db: NamedDependency[Database]) -> Template:
        async with db.session() as session:
            keys = await TenantRepository(session).api_keys()
        roles = [r for r in Role if r != Role.PLATFORM_ADMIN]
        return render(
            request,
            "tenant/api_keys.html",
            keys=keys,
            roles=roles,
            new_key=request.session.pop("new_key", None),
        )

    @post("/api-keys", guards=[requires(*ADMINS)])
    async def create_api_key(self, request: Req, db: NamedDependency[Database]) -> Redirect:
        form = await request.form()
        scopes = [str(s) for s in form.getall("scopes")] if hasattr(form, "getall") else []
        try:
            async with db.session() as session:
                _, raw = await service.create_api_key(
                    session,
                    principal_of(request),
                    str(form.get("name", "")),
                    str(form.get("role", "read_only")),
                    scopes,
                )
        except DomainError as exc:
            refused(request, exc)
        else:
            request.session["new_key"] = raw  # shown on the next page view, once
        return Redirect(path="/admin/api-keys")

    @post("/api-keys/{key_id:uuid}/revoke", guards=[requires(*ADMINS)])
    async def revoke_api_key(
        self, request: Req, key_id: FromPath[UUID], db: NamedDependency[Database]
    ) -> Redirect:
        async def action() -> None:
            async with db.session() as session:
                await service.revoke_api_key(session, principal_of(request), key_id)

        return await attempt(request, action, "Key revoked", "/admin/api-keys")

    @get("/sso", guards=[requires(*ADMINS)])
    async def sso(self, request: Req, db: NamedDependency[Database]) -> Template:
        async with db.session() as session:
            config = await TenantRepository(session).sso_config(
                principal_of(request).acting_tenant_id
            )
        return render(request, "tenant/sso.html", config=config)

    @post("/sso", guards=[requires(*ADMINS)])
    async def save_sso(
        self, request: Req, db: NamedDependency[Database], settings: NamedDependency[Settings]
    ) -> Redirect:
        form = await form_of(request)

        async def action() -> None:
            async with db.session() as session:
                await service.save_sso(
                    session,
                    principal_of(request),
                    form.get("issuer", ""),
                    form.get("client_id", ""),
                    form.get("client_secret", ""),
                    settings.session_secret(),
                )

        return await attempt(request, action, "Single sign-on saved", "/admin/sso")

    @get("/audit", guards=[requires(*ADMINS)])
    async def audit(
        self,
        request: Req,
        db: NamedDependency[Database],
        action: FromQuery[str | None] = None,
        record: FromQuery[str | None] = None,
    ) -> Template:
        async with db.session() as session:
            entries = await TenantRepository(session).audit_entries(
                action=action or None, record_id=record or None
            )
        return render(
            request, "tenant/audit.html", entries=entries, action=action or "", record=record or ""
        )


class SeatPages(Controller):
    """An agent's seat picker: which clients may I serve now, and the seat I hold."""

    path = "/seats"
    include_in_schema = False
    guards = [signed_in]

    @get("/")
    async def picker(self, request: Req, db: NamedDependency[Database]) -> Template:
        principal = principal_of(request)
        with tenant_scope(principal.home_tenant_id):
            async with db.session() as session:
                repo = TenantRepository(session)
                mine = [a for a in await repo.assignments() if a.user_id == principal.user_id]
                clients = await repo.tenants_by_ids([a.client_id for a in mine])
        free = [c for c in clients.values() if c.id not in principal.serving]
        return render(
            request,
            "tenant/seat_picker.html",
            clients=sorted(free, key=lambda c: c.name),
            seats=principal.seats,
        )

    @post("/take")
    async def take(self, request: Req, db: NamedDependency[Database]) -> Redirect:
        form = await form_of(request)

        async def action() -> None:
            try:
                client_id = UUID(form.get("client_id", ""))
            except ValueError:
                raise InvalidInput("Choose a client") from None
            await take_seat_for(request, db, client_id)

        return await attempt(request, action, "You are on a seat", "/seats/")

    @post("/leave")
    async def leave(self, request: Req, db: NamedDependency[Database]) -> Redirect:
        """Leave one client's seat (client_id), or every seat held."""
        raw = (await form_of(request)).get("client_id")
        try:
            client_id = UUID(raw) if raw else None
        except ValueError:
            raise NotFound("No such seat") from None
        await leave_seat_for(request, db, client_id)
        flash(request, "Seat released")
        return Redirect(path="/seats/")


class PlatformPages(Controller):
    path = "/platform"
    include_in_schema = False
    guards = [platform_only]

    @get("/tenants")
    async def tenants(self, request: Req, db: NamedDependency[Database]) -> Template:
        async with db.session() as session:
            tree = await service.tenant_tree(session)
        return render(request, "tenant/platform_tenants.html", tree=tree)

    @post("/tenants")
    async def create(self, request: Req, db: NamedDependency[Database]) -> Redirect:
        return await attempt(
            request, tenant_from_form(request, db), "Tenant created", "/platform/tenants"
        )


def tenant_from_form(request: Req, db: Database) -> Callable[[], Awaitable[None]]:
    """The action of the 'add a branch' and 'add a tenant' forms (the service checks who may)."""

    async def action() -> None:
        form = await form_of(request)
        principal = principal_of(request)
        try:
            kind = TenantKind(form.get("kind") or TenantKind.CLIENT)
        except ValueError:
            raise InvalidInput("Choose client or operator", field="kind") from None
        parent = UUID(form["parent_id"]) if form.get("parent_id") else principal.acting_tenant_id
        async with db.session() as session:
            await service.create_tenant(
                session,
                principal,
                name=form.get("name", ""),
                slug=form.get("slug", ""),
                kind=kind,
                parent_id=parent,
            )

    return action
