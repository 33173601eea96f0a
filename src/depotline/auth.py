"""Who is calling: the principal, resolved once per request, the guards and the CSRF check.

The principal comes from a server-side session (cookie, for people) or an API key (Bearer, for
integrations). How a session or key turns into a principal is the tenant domain's business; the
assembly installs that resolver. The middleware then sets the tenant scope for the whole request,
so every database transaction in it runs under row-level security for the acting tenant.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, Literal
from uuid import UUID

from litestar.connection import ASGIConnection, Request
from litestar.enums import ScopeType
from litestar.exceptions import NotAuthorizedException, NotFoundException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.types import ASGIApp, Receive, Scope, Send

from depotline.db import current_tenant, current_user_id, tenant_scope
from depotline.errors import NotFound

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_FIELD = "_csrf"
CSRF_HEADER = "x-csrf-token"


@dataclass(frozen=True)
class Seat:
    """An open seat on a client's floor. An operator's agent may hold seats of several clients
    at once and take their calls on one desk."""

    tenant_id: UUID
    tenant_name: str
    seat_session_id: UUID


@dataclass(frozen=True)
class Principal:
    user_id: UUID | None
    name: str
    home_tenant_id: UUID  # where the membership (or API key) lives
    acting_tenant_id: UUID  # the tenant whose data this request may touch
    acting_tenant_name: str
    acting_tenant_kind: str
    role: str
    via: Literal["session", "api_key"]
    scopes: frozenset[str] = field(default_factory=frozenset)
    seat_session_id: UUID | None = None
    email: str | None = None
    #: The API key a request came with (via == "api_key"): domains may scope a key further.
    api_key_id: UUID | None = None
    #: Every client whose seat this user holds now (checked on each request), the acting one too.
    seats: tuple[Seat, ...] = ()

    @property
    def is_platform_admin(self) -> bool:
        return self.role == "platform_admin"

    @property
    def is_outsourced(self) -> bool:
        """Acting for a client through a hosted seat, not as a member of that client."""
        return self.seat_session_id is not None and self.acting_tenant_id != self.home_tenant_id

    @property
    def serving(self) -> frozenset[UUID]:
        """The clients whose data this user may read now: those whose seat they hold."""
        return frozenset(seat.tenant_id for seat in self.seats)


def acting_for(principal: Principal, tenant_id: UUID) -> Principal:
    """The principal as it acts for `tenant_id`: its acting tenant, or a client whose seat it
    holds (where it is that client's agent, whatever its role at home). Any other tenant does
    not exist for it: NotFound, never a hint that the record is there."""
    if tenant_id == principal.acting_tenant_id:
        return principal
    for seat in principal.seats:
        if seat.tenant_id == tenant_id:
            return replace(
                principal,
                acting_tenant_id=tenant_id,
                acting_tenant_name=seat.tenant_name,
                acting_tenant_kind="client",
                role="agent",
                seat_session_id=seat.seat_session_id,
            )
    raise NotFound("Not found")


@contextmanager
def scope_for(principal: Principal, tenant_id: UUID) -> Iterator[Principal]:
    """Run the block (and every transaction begun in it) under `tenant_id`, for a request whose
    record lives in a tenant other than the acting one (a call offered from another client's
    floor). The one way in: refused exactly as `acting_for` refuses."""
    acting = acting_for(principal, tenant_id)
    with tenant_scope(tenant_id):
        yield acting


Resolver = Callable[[ASGIConnection[Any, Any, Any, Any]], Awaitable[Principal | None]]


def authentication_middleware(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in (ScopeType.HTTP, ScopeType.WEBSOCKET):
            await app(scope, receive, send)
            return
        resolver: Resolver = scope["app"].state.resolve_principal
        principal = await resolver(ASGIConnection(scope, receive))
        scope["user"] = principal
        scope["auth"] = principal
        if principal is None:
            await app(scope, receive, send)
            return
        tenant_token = current_tenant.set(principal.acting_tenant_id)
        user_token = current_user_id.set(principal.user_id)
        try:
            await app(scope, receive, send)
        finally:
            current_user_id.reset(user_token)
            current_tenant.reset(tenant_token)

    return middleware


def principal_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    principal = connection.scope.get("user")
    if not isinstance(principal, Principal):
        raise NotAuthorizedException("Sign in first")
    return principal


def signed_in(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    principal_of(connection)


def requires(*roles: str) -> Callable[[ASGIConnection[Any, Any, Any, Any], BaseRouteHandler], None]:
    """Guard: the caller's role in the acting tenant is one of `roles` (platform admins pass)."""
    allowed = frozenset(roles)

    def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        principal = principal_of(connection)
        if principal.role not in allowed and not principal.is_platform_admin:
            raise PermissionDeniedException(
                f"This needs one of the roles: {', '.join(sorted(allowed))}"
            )

    return guard


def platform_only(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Guard for the platform console: to everyone else it does not exist."""
    principal = principal_of(connection)
    if not principal.is_platform_admin:
        raise NotFoundException()


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


async def check_request(request: Request[Any, Any, Any]) -> None:
    """before_request hook for state-changing requests. An API key needs the `write` scope.
    A request carried by a session cookie must echo the session's CSRF token (form field or
    header); API keys are not sent by browsers on their own, so they need none."""
    if request.method in SAFE_METHODS:
        return
    principal = request.scope.get("user")
    if isinstance(principal, Principal) and principal.via == "api_key":
        if "write" not in principal.scopes:
            raise PermissionDeniedException("This API key may only read (it lacks the write scope)")
        return
    if "session" not in request.scope or not request.session:
        return  # no cookie session: nothing a forged cross-site request could ride on
    expected = request.session.get("csrf")
    given = request.headers.get(CSRF_HEADER)
    if given is None and request.content_type[0] in (
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ):
        given = (await request.form()).get(CSRF_FIELD)
    if not expected or not isinstance(given, str) or not hmac.compare_digest(expected, given):
        raise PermissionDeniedException(
            "The form expired or came from another site; reload and retry"
        )
