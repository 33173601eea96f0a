"""Business rules of tenancy: sign-in, memberships and invitations, hosted seats, API keys, SSO
settings and the audit log. No HTTP here: routes call these with a session and a principal."""

from __future__ import annotations

import base64
import csv
import hashlib
import hmac
import io
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from uuid import UUID

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.exc import IntegrityError
from sqlmodel.ext.asyncio.session import AsyncSession

from depotline import crypto, outbox
from depotline.auth import Principal, Seat
from depotline.db import utcnow
from depotline.errors import (
    Conflict,
    DomainError,
    Gone,
    InvalidInput,
    NotFound,
    NotPermitted,
    TooManyAttempts,
)
from depotline.oidc import OidcIdentity
from tenant.models import (
    ApiKey,
    AuditEntry,
    Invitation,
    Membership,
    Role,
    SeatAssignment,
    SeatLease,
    SeatSession,
    SsoConfig,
    Tenant,
    TenantKind,
    User,
)
from tenant.repository import TenantRepository

MAX_FAILED_LOGINS = 5
LOCKOUT = timedelta(minutes=15)
INVITATION_TTL = timedelta(days=7)
RESET_TTL = timedelta(hours=1)
API_KEY_SCOPES = frozenset({"read", "write"})
#: Who may sit on a client's hosted seat.
SEAT_ROLES = frozenset({Role.AGENT, Role.SUPERVISOR})
#: Outbox topic: a seat session ended (left, freed by a supervisor, signed out); the tenant is
#: the client, the payload names the user. Floors the agent worked there follow it.
SEAT_ENDED = "tenant.seat_ended"
SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

hasher = PasswordHasher()
# Checked against when the email is unknown, so both paths cost one argon2 verification.
_DUMMY_HASH = hasher.hash("not a real password")


# -- audit ------------------------------------------------------------------------------------
def audit(
    session: AsyncSession,
    actor: Principal | None,
    action: str,
    *,
    tenant_id: UUID | None = None,
    record_type: str | None = None,
    record_id: object = None,
    ip: str | None = None,
    **detail: Any,
) -> AuditEntry:
    entry = AuditEntry(
        tenant_id=tenant_id or (actor.acting_tenant_id if actor else None),  # type: ignore[arg-type]
        actor_user_id=actor.user_id if actor else None,
        actor_tenant_id=actor.home_tenant_id if actor else None,
        action=action,
        record_type=record_type,
        record_id=str(record_id) if record_id is not None else None,
        ip=ip,
        detail={key: str(value) for key, value in detail.items()},
    )
    session.add(entry)
    return entry


def record_client_data_read(
    session: AsyncSession, actor: Principal, record_type: str, record_id: object, ip: str | None
) -> None:
    """Every read of a client's customer data by someone from another tenant is on record."""
    if actor.home_tenant_id != actor.acting_tenant_id:
        audit(
            session,
            actor,
            "customer_data.read",
            record_type=record_type,
            record_id=record_id,
            ip=ip,
        )


AUDIT_CSV_COLUMNS = (
    "at",
    "tenant_id",
    "actor_user_id",
    "actor_tenant_id",
    "action",
    "record_type",
    "record_id",
    "ip",
    "detail",
)


def audit_csv(entries: Sequence[AuditEntry]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(AUDIT_CSV_COLUMNS)
    for entry in entries:
        writer.writerow(
            [
                entry.at.isoformat(),
                entry.tenant_id,
                entry.actor_user_id or "",
                entry.actor_tenant_id or "",
                entry.action,
                entry.record_type or "",
                entry.record_id or "",
                entry.ip or "",
                ";".join(f"{k}={v}" for k, v in sorted(entry.detail.items())),
            ]
        )
    return out.getvalue()


# -- tenants ----------------------------------------------------------------------------------
async def create_tenant(
    session: AsyncSession,
    actor: Principal,
    *,
    name: str,
    slug: str,
    kind: TenantKind,
    parent_id: UUID | None,
    timezone: str = "UTC",
) -> Tenant:
    """Platform admins create clients and operators; a client's admins add branches below it."""
    repo = TenantRepository(session)
    slug = slug.strip().lower()
    if not SLUG.match(slug):
        raise InvalidInput("Use 2-63 lower-case letters, digits and hyphens", field="slug")
    if not name.strip():
        raise InvalidInput("A name is required", field="name")
    visible = await repo.visible_tenant_ids()
    if parent_id is None or parent_id not in visible:
        raise NotFound("Parent tenant not found", field="parent_id")
    parent = await repo.get_tenant(parent_id)
    assert parent is not None
    if kind == TenantKind.PLATFORM:
        raise InvalidInput("There is only one platform tenant", field="kind")
    if parent.kind == TenantKind.PLATFORM and not actor.is_platform_admin:
        raise NotPermitted("Only platform admins add top-level tenants")
    if parent.kind == TenantKind.CLIENT and kind != TenantKind.CLIENT:
        raise InvalidInput("A branch of a client is a client", field="kind")
    if parent.kind == TenantKind.OPERATOR:
        raise InvalidInput("Operators have no branches", field="parent_id")
    if await repo.tenant_by_slug(slug):
        raise Conflict(f"The slug '{slug}' is taken", field="slug")
    tenant = Tenant(name=name.strip(), slug=slug, kind=kind, parent_id=parent_id, timezone=timezone)
    repo.add(tenant)
    await repo.flush()
    audit(
        session,
        actor,
        "tenant.create",
        record_type="tenant",
        record_id=tenant.id,
        name=name,
        kind=kind,
    )
    return tenant


@dataclass(frozen=True)
class TreeNode:
    tenant: Tenant
    depth: int


async def tenant_tree(session: AsyncSession) -> list[TreeNode]:
    """The acting tenant and everything below it, depth-first, for the branch tree page."""
    repo = TenantRepository(session)
    tenants = list(await repo.visible_tenants())
    ids = {tenant.id for tenant in tenants}
    children: dict[UUID | None, list[Tenant]] = {}
    for tenant in tenants:
        parent = tenant.parent_id if tenant.parent_id in ids else None
        children.setdefault(parent, []).append(tenant)
    nodes: list[TreeNode] = []

    def walk(parent: UUID | None, depth: int) -> None:
        for tenant in sorted(children.get(parent, []), key=lambda t: t.name):
            nodes.append(TreeNode(tenant, depth))
            walk(tenant.id, depth + 1)

    walk(None, 0)
    return nodes


# -- sign-in ----------------------------------------------------------------------------------
def hash_password(password: str) -> str:
    if len(password) < 10:
        raise InvalidInput("Passwords need at least 10 characters", field="password")
    return hasher.hash(password)


@dataclass(frozen=True)
class SignInOutcome:
    user: User | None
    refusal: DomainError | None = None


async def authenticate(session: AsyncSession, email: str, password: str) -> SignInOutcome:
    """Check a password. Five failures lock the account for 15 minutes. A refusal is returned,
    not raised, so the caller commits the failure count before telling the user."""
    repo = TenantRepository(session)
    user = await repo.user_by_email(email.strip())
    now = utcnow()
    if user is None or not user.active or user.password_hash is None:
        _verify(_DUMMY_HASH, password)
        return SignInOutcome(None, NotPermitted("Wrong email or password", field="email"))
    if user.locked_until and user.locked_until > now:
        minutes = max(1, int((user.locked_until - now).total_seconds() // 60))
        return SignInOutcome(
            None, TooManyAttempts(f"Too many failed sign-ins: locked for {minutes} more minutes")
        )
    if not _verify(user.password_hash, password):
        user.failed_logins += 1
        if user.failed_logins >= MAX_FAILED_LOGINS:
            user.locked_until = now + LOCKOUT
            user.failed_logins = 0
        session.add(user)
        return SignInOutcome(None, NotPermitted("Wrong email or password", field="email"))
    user.failed_logins = 0
    user.locked_until = None
    if hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hasher.hash(password)
    session.add(user)
    return SignInOutcome(user)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


async def principal_for(
    session: AsyncSession,
    user: User,
    home_tenant_id: UUID,
    acting_tenant_id: UUID | None = None,
    seat_session_id: UUID | None = None,
    *,
    seat_required: bool = False,
) -> Principal | None:
    """The principal of a signed-in user acting for a tenant, or None if no longer allowed.
    It carries every client seat the user holds now (an operator's agent may serve several).

    Runs under the user's own scope (to read their memberships) and the home tenant's (to read
    the seats its agents hold): the caller arranges both. `seat_required`: acting for a client
    needs an open seat of it; without one (freed by a supervisor) the user acts for another
    client they still serve, else for their home tenant."""
    repo = TenantRepository(session)
    membership = await repo.membership(home_tenant_id, user.id)
    if membership is None or not user.active:
        return None
    seats: tuple[Seat, ...] = ()
    if membership.role in SEAT_ROLES:
        seats = tuple(
            Seat(tenant_id=client.id, tenant_name=client.name, seat_session_id=seat.id)
            for seat, client in await repo.open_seats_of(user.id, home_tenant_id)
        )
    acting_id = acting_tenant_id or home_tenant_id
    held = {seat.tenant_id: seat.seat_session_id for seat in seats}
    if seat_required and acting_id != home_tenant_id and acting_id not in held:
        acting_id = seats[0].tenant_id if seats else home_tenant_id
    if acting_id != home_tenant_id:
        seat_session_id = held.get(acting_id, seat_session_id)
    acting = await repo.get_tenant(acting_id)
    if acting is None or not acting.active:
        return None
    # On a client's hosted seat everyone is an agent of that client, whatever their role at
    # home: an operator's supervisor must not manage the client's seats or other operators.
    role = membership.role if acting_id == home_tenant_id else Role.AGENT
    return Principal(
        user_id=user.id,
        name=user.name,
        email=user.email,
        home_tenant_id=home_tenant_id,
        acting_tenant_id=acting_id,
        acting_tenant_name=acting.name,
        acting_tenant_kind=acting.kind,
        role=role,
        via="session",
        seat_session_id=seat_session_id if acting_id != home_tenant_id else None,
        seats=seats,
    )


async def memberships_with_tenants(
    session: AsyncSession, user_id: UUID
) -> list[tuple[Membership, Tenant]]:
    repo = TenantRepository(session)
    memberships = await repo.memberships_of(user_id)
    tenants = await repo.tenants_by_ids([m.tenant_id for m in memberships])
    pairs = [(m, tenants[m.tenant_id]) for m in memberships if tenants[m.tenant_id].active]
    return sorted(pairs, key=lambda pair: pair[1].name)


# -- password reset: a signed, one-time link ----------------------------------------------------
def reset_token(user: User, secret: bytes, now: datetime | None = None) -> str:
    """Signed over the user id, the expiry and the current password hash: once the password
    changes, the link is dead, so it works once."""
    expires = int(((now or utcnow()) + RESET_TTL).timestamp())
    payload = f"{user.id}.{expires}"
    return f"{payload}.{_reset_signature(payload, user, secret)}"


def _reset_signature(payload: str, user: User, secret: bytes) -> str:
    message = f"{payload}.{user.password_hash or ''}".encode()
    digest = hmac.new(secret, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


async def check_reset_token(session: AsyncSession, token: str, secret: bytes) -> User:
    """The user a reset link is for; NotFound for a forged or used link, Gone for an old one."""
    try:
        user_part, expires_part, signature = token.split(".")
        user_id, expires = UUID(user_part), int(expires_part)
    except ValueError:
        raise NotFound("This reset link is not valid") from None
    user = await TenantRepository(session).get_user(user_id)
    if user is None or not hmac.compare_digest(
        signature, _reset_signature(f"{user_part}.{expires_part}", user, secret)
    ):
        raise NotFound("This reset link is not valid or was already used")
    if expires < utcnow().timestamp():
        raise Gone("This reset link has expired; ask for a new one")
    return user


async def reset_password(
    session: AsyncSession, token: str, new_password: str, secret: bytes
) -> User:
    user = await check_reset_token(session, token, secret)
    user.password_hash = hash_password(new_password)
    user.failed_logins = 0
    user.locked_until = None
    session.add(user)
    return user


# -- members and invitations ----------------------------------------------------------------
def _role(value: str, actor: Principal) -> Role:
    try:
        role = Role(value)
    except ValueError:
        names = ", ".join(r.value for r in Role if r != Role.PLATFORM_ADMIN)
        raise InvalidInput(f"Unknown role '{value}'; use one of: {names}", field="role") from None
    if role == Role.PLATFORM_ADMIN and not actor.is_platform_admin:
        raise InvalidInput("Only platform admins grant the platform admin role", field="role")
    return role


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def invite(
    session: AsyncSession, actor: Principal, email: str, role: str
) -> tuple[Invitation, str]:
    """Invite someone to the acting tenant. Returns the invitation and its one-time token."""
    email = email.strip().lower()
    if not EMAIL.match(email):
        raise InvalidInput("Not an email address", field="email")
    chosen = _role(role, actor)
    repo = TenantRepository(session)
    existing = await repo.user_by_email(email)
    if existing and await repo.membership(actor.acting_tenant_id, existing.id):
        raise Conflict(f"{email} is already a member", field="email")
    if await repo.pending_invitation(email, utcnow()):
        raise Conflict(f"{email} already has a pending invitation", field="email")
    token = secrets.token_urlsafe(24)
    invitation = Invitation(
        email=email,
        role=chosen,
        token_hash=_token_hash(token),
        invited_by=actor.user_id,  # type: ignore[arg-type]
        expires_at=utcnow() + INVITATION_TTL,
    )
    repo.add(invitation)
    audit(
        session,
        actor,
        "invitation.create",
        record_type="invitation",
        record_id=invitation.id,
        email=email,
        role=chosen,
    )
    return invitation, token


async def pending_invitation(session: AsyncSession, token: str) -> tuple[Invitation, Tenant]:
    """Runs in the invitation's tenant scope: an unknown token is simply not found."""
    repo = TenantRepository(session)
    invitation = await repo.invitation_by_token_hash(_token_hash(token))
    if invitation is None:
        raise NotFound("This invitation does not exist")
    if invitation.accepted_at is not None:
        raise Gone("This invitation was already used")
    if invitation.expires_at < utcnow():
        raise Gone("This invitation has expired; ask for a new one")
    tenant = await repo.get_tenant(invitation.tenant_id)
    assert tenant is not None
    return invitation, tenant


async def accept_invitation(
    session: AsyncSession, token: str, name: str, password: str | None
) -> tuple[User, Membership]:
    """Runs in the invitation's tenant scope. A new user sets a name and password; an existing
    user (by email) just gains the membership."""
    repo = TenantRepository(session)
    invitation, _ = await pending_invitation(session, token)
    user = await repo.user_by_email(invitation.email)
    if user is None:
        if not name.strip():
            raise InvalidInput("A name is required", field="name")
        user = User(
            email=invitation.email, name=name.strip(), password_hash=hash_password(password or "")
        )
        repo.add(user)
        await repo.flush()
    membership = Membership(tenant_id=invitation.tenant_id, user_id=user.id, role=invitation.role)
    invitation.accepted_at = utcnow()
    repo.add(membership, invitation)
    await repo.flush()
    audit(
        session,
        None,
        "invitation.accept",
        tenant_id=invitation.tenant_id,
        record_type="user",
        record_id=user.id,
    )
    return user, membership


async def change_role(
    session: AsyncSession, actor: Principal, user_id: UUID, role: str
) -> Membership:
    repo = TenantRepository(session)
    found = await repo.member(user_id, await repo.visible_tenant_ids())
    if found is None:
        raise NotFound("No such member")
    membership, _ = found
    if user_id == actor.user_id:
        raise InvalidInput("You cannot change your own role", field="role")
    membership.role = _role(role, actor)
    repo.add(membership)
    audit(session, actor, "member.role", record_type="user", record_id=user_id, role=role)
    return membership


async def remove_member(session: AsyncSession, actor: Principal, user_id: UUID) -> None:
    repo = TenantRepository(session)
    found = await repo.member(user_id, await repo.visible_tenant_ids())
    if found is None:
        raise NotFound("No such member")
    if user_id == actor.user_id:
        raise InvalidInput("You cannot remove yourself", field="user_id")
    await session.delete(found[0])
    audit(session, actor, "member.remove", record_type="user", record_id=user_id)


# -- hosted seats -----------------------------------------------------------------------------
async def create_lease(
    session: AsyncSession,
    actor: Principal,
    *,
    seats: int,
    starts_on: date,
    ends_on: date | None,
    operator_id: UUID | None,
) -> SeatLease:
    if actor.acting_tenant_kind != TenantKind.CLIENT:
        raise NotPermitted("Only logistics clients lease seats")
    if seats < 1:
        raise InvalidInput("Lease at least one seat", field="seats")
    if ends_on is not None and ends_on < starts_on:
        raise InvalidInput("The lease ends before it starts", field="ends_on")
    repo = TenantRepository(session)
    if operator_id is not None:
        operator = await repo.get_tenant(operator_id)
        if operator is None or operator.kind != TenantKind.OPERATOR:
            raise InvalidInput("No such operator", field="operator_id")
    if await repo.overlapping_leases(actor.acting_tenant_id, operator_id, starts_on, ends_on):
        raise Conflict(
            "A lease with this operator already covers part of that period", field="starts_on"
        )
    lease = SeatLease(seats=seats, starts_on=starts_on, ends_on=ends_on, operator_id=operator_id)
    repo.add(lease)
    await repo.flush()
    audit(
        session,
        actor,
        "seat_lease.create",
        record_type="seat_lease",
        record_id=lease.id,
        seats=seats,
        operator_id=operator_id,
    )
    return lease


async def change_lease_seats(
    session: AsyncSession, actor: Principal, lease_id: UUID, seats: int
) -> SeatLease:
    repo = TenantRepository(session)
    lease = await repo.get_lease(lease_id, lock=True)
    if lease is None or lease.tenant_id not in await repo.visible_tenant_ids():
        raise NotFound("No such lease")
    in_use = await repo.count_open_sessions(lease.id)
    if seats < in_use:
        raise Conflict(
            f"{in_use} seats are in use right now; free some before going down to {seats}",
            field="seats",
        )
    if seats < 0:
        raise InvalidInput("Seats cannot be negative", field="seats")
    before, lease.seats = lease.seats, seats
    repo.add(lease)
    audit(
        session,
        actor,
        "seat_lease.change",
        record_type="seat_lease",
        record_id=lease.id,
        before=before,
        after=seats,
    )
    return lease


async def assign_agent(
    session: AsyncSession, actor: Principal, client_id: UUID, user_id: UUID
) -> SeatAssignment:
    """An operator lets one of its agents work a client's seats (needs a lease with the client)."""
    if actor.acting_tenant_kind != TenantKind.OPERATOR:
        raise NotPermitted("Only operators assign agents to clients' seats")
    repo = TenantRepository(session)
    if await repo.membership(actor.acting_tenant_id, user_id) is None:
        raise InvalidInput("That user is not one of your agents", field="user_id")
    client = await repo.get_tenant(client_id)
    leases = (
        await repo.active_leases(client_id, actor.acting_tenant_id, utcnow().date())
        if client
        else []
    )
    if client is None or not leases:
        raise Conflict("You have no current seat lease with that client", field="client_id")
    if await repo.active_assignment(actor.acting_tenant_id, client_id, user_id):
        raise Conflict("That agent is already assigned to that client", field="user_id")
    assignment = SeatAssignment(client_id=client_id, user_id=user_id)
    repo.add(assignment)
    await repo.flush()
    audit(
        session,
        actor,
        "seat_assignment.create",
        record_type="seat_assignment",
        record_id=assignment.id,
        client_id=client_id,
        user_id=user_id,
    )
    return assignment


async def revoke_assignment(
    session: AsyncSession, actor: Principal, assignment_id: UUID
) -> SeatAssignment:
    repo = TenantRepository(session)
    assignment = await repo.get_assignment(assignment_id)
    if (
        assignment is None
        or assignment.tenant_id != actor.acting_tenant_id
        or assignment.revoked_at
    ):
        raise NotFound("No such assignment")
    assignment.revoked_at = utcnow()
    repo.add(assignment)
    audit(
        session,
        actor,
        "seat_assignment.revoke",
        record_type="seat_assignment",
        record_id=assignment.id,
    )
    return assignment


async def take_seat(session: AsyncSession, agent: Principal, client_id: UUID) -> SeatSession:
    """An operator's agent signs in to a seat of `client_id`. Runs under the client's scope.

    The client's current leases with the agent's operator are locked for the count, so two agents
    racing for the last seat cannot both get it."""
    repo = TenantRepository(session)
    operator_id = agent.home_tenant_id
    assert agent.user_id is not None
    if await repo.active_assignment(operator_id, client_id, agent.user_id) is None:
        raise NotFound("You are not assigned to that client")
    leases = await repo.active_leases(client_id, operator_id, utcnow().date(), lock=True)
    if not leases:
        raise Conflict("That client has no current seat lease with your operator")
    existing = await repo.open_seat_session_of(agent.user_id, client_id)
    if existing is not None:
        return existing
    holders: list[SeatSession] = []
    for lease in leases:
        open_sessions = await repo.open_seat_sessions([lease.id])
        if len(open_sessions) < lease.seats:
            seat = SeatSession(
                tenant_id=client_id,
                lease_id=lease.id,
                operator_id=operator_id,
                user_id=agent.user_id,
            )
            repo.add(seat)
            try:
                await repo.flush()
            except IntegrityError:
                raise Conflict("You already hold a seat of this client") from None
            audit(
                session,
                agent,
                "seat.take",
                tenant_id=client_id,
                record_type="seat_session",
                record_id=seat.id,
            )
            return seat
        holders.extend(open_sessions)
    limit = sum(lease.seats for lease in leases)
    names = ", ".join(await _names(repo, [h.user_id for h in holders]))
    client = await repo.get_tenant(client_id)
    client_name = client.name if client else "this client"
    if limit == 1:
        raise Conflict(f"The only seat of {client_name} is in use, held by: {names}")
    raise Conflict(f"All {limit} seats of {client_name} are in use, held by: {names}")


async def _names(repo: TenantRepository, user_ids: Sequence[UUID]) -> list[str]:
    names = []
    for user_id in user_ids:
        user = await repo.get_user(user_id)
        names.append(user.name if user else str(user_id))
    return names


async def leave_seat(
    session: AsyncSession, actor: Principal, seat_session_id: UUID, reason: str = "signed out"
) -> SeatSession:
    """End a seat session: the agent's own, or any visible one for a supervisor freeing it."""
    repo = TenantRepository(session)
    seat = await repo.get_seat_session(seat_session_id, lock=True)
    if seat is None:
        raise NotFound("No such seat session")
    if seat.ended_at is None:
        seat.ended_at = utcnow()
        seat.ended_by = actor.user_id
        seat.end_reason = reason
        repo.add(seat)
        audit(
            session,
            actor,
            "seat.free" if seat.user_id != actor.user_id else "seat.leave",
            tenant_id=seat.tenant_id,
            record_type="seat_session",
            record_id=seat.id,
            reason=reason,
        )
        outbox.publish(
            session,
            SEAT_ENDED,
            {"user_id": str(seat.user_id), "seat_session_id": str(seat.id)},
            tenant_id=seat.tenant_id,
        )
    return seat


async def holds_open_seat(session: AsyncSession, user_id: UUID, client_id: UUID) -> bool:
    """Whether the user holds an open seat of `client_id` now. Runs under the client's scope:
    other domains ask this before letting an operator's agent near the client's data."""
    return await TenantRepository(session).holds_open_seat(client_id, user_id)


async def clients_served(session: AsyncSession, user_id: UUID, operator_id: UUID) -> list[UUID]:
    """The clients whose seats the user holds for `operator_id` now. Runs under the
    operator's scope."""
    rows = await TenantRepository(session).open_seats_of(user_id, operator_id)
    return [client.id for _, client in rows]


# -- API keys ---------------------------------------------------------------------------------
API_KEY_PREFIX = "dlk"


async def create_api_key(
    session: AsyncSession, actor: Principal, name: str, role: str, scopes: Sequence[str]
) -> tuple[ApiKey, str]:
    """Returns the key record and the key itself, which is shown once and stored only hashed.
    The key names its tenant, so it can be checked under that tenant's scope."""
    if not name.strip():
        raise InvalidInput("Give the key a name", field="name")
    unknown = set(scopes) - API_KEY_SCOPES
    if unknown or not scopes:
        raise InvalidInput(
            f"Scopes are some of: {', '.join(sorted(API_KEY_SCOPES))}", field="scopes"
        )
    chosen = _role(role, actor)
    if chosen == Role.PLATFORM_ADMIN:
        raise InvalidInput("API keys cannot be platform admins", field="role")
    prefix = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    key = ApiKey(
        name=name.strip(),
        prefix=prefix,
        key_hash=hashlib.sha256(secret.encode()).hexdigest(),
        role=chosen,
        scopes=sorted(set(scopes)),
        created_by=actor.user_id,
    )
    TenantRepository(session).add(key)
    audit(
        session,
        actor,
        "api_key.create",
        record_type="api_key",
        record_id=key.id,
        name=name,
        role=chosen,
    )
    return key, f"{API_KEY_PREFIX}_{actor.acting_tenant_id.hex}_{prefix}_{secret}"


def parse_api_key(raw: str) -> tuple[UUID, str, str] | None:
    parts = raw.split("_", 3)
    if len(parts) != 4 or parts[0] != API_KEY_PREFIX:
        return None
    try:
        return UUID(hex=parts[1]), parts[2], parts[3]
    except ValueError:
        return None


async def check_api_key(session: AsyncSession, prefix: str, secret: str) -> ApiKey | None:
    """Runs under the tenant named by the key. Constant-time comparison of the hash."""
    key = await TenantRepository(session).api_key_by_prefix(prefix)
    if key is None or key.revoked_at is not None:
        return None
    given = hashlib.sha256(secret.encode()).hexdigest()
    if not hmac.compare_digest(given, key.key_hash):
        return None
    key.last_used_at = utcnow()
    session.add(key)
    return key


async def revoke_api_key(session: AsyncSession, actor: Principal, key_id: UUID) -> ApiKey:
    repo = TenantRepository(session)
    key = await repo.get_api_key(key_id)
    if key is None or key.tenant_id != actor.acting_tenant_id:
        raise NotFound("No such API key")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        repo.add(key)
        audit(session, actor, "api_key.revoke", record_type="api_key", record_id=key.id)
    return key


# -- SSO settings -----------------------------------------------------------------------------
async def save_sso(
    session: AsyncSession,
    actor: Principal,
    issuer: str,
    client_id: str,
    client_secret: str,
    secret: bytes,
) -> SsoConfig:
    if not issuer.startswith(("https://", "http://127.0.0.1", "http://localhost")):
        raise InvalidInput("The issuer must be an https:// URL", field="issuer")
    if not client_id.strip():
        raise InvalidInput("The client id is required", field="client_id")
    repo = TenantRepository(session)
    config = await repo.sso_config(actor.acting_tenant_id)
    if config is None:
        if not client_secret:
            raise InvalidInput("The client secret is required", field="client_secret")
        config = SsoConfig(issuer=issuer, client_id=client_id, client_secret_encrypted="")
    config.issuer, config.client_id, config.updated_at = (
        issuer.rstrip("/"),
        client_id.strip(),
        utcnow(),
    )
    if client_secret:  # blank keeps the stored secret: it is never shown again
        config.client_secret_encrypted = crypto.encrypt(secret, "sso", client_secret)
    repo.add(config)
    audit(
        session,
        actor,
        "sso.save",
        record_type="sso_config",
        record_id=actor.acting_tenant_id,
        issuer=issuer,
    )
    return config


async def sso_member(
    session: AsyncSession, tenant_id: UUID, identity: OidcIdentity, ip: str | None
) -> User:
    """The member an identity provider vouched for. Runs in the tenant's scope. Only a verified
    email of an existing member signs in: SSO does not create accounts behind the admins' back."""
    if not identity.email or not identity.email_verified:
        raise NotPermitted("Your identity provider did not confirm an email address")
    repo = TenantRepository(session)
    user = await repo.user_by_email(identity.email)
    if user is None or not user.active or await repo.membership(tenant_id, user.id) is None:
        raise NotPermitted(
            f"{identity.email} has no account here; ask your administrator for an invitation"
        )
    audit(
        session,
        None,
        "sso.sign_in",
        tenant_id=tenant_id,
        record_type="user",
        record_id=user.id,
        ip=ip,
        issuer=identity.issuer,
        subject=identity.subject,
    )
    return user


def sso_client_secret(config: SsoConfig, secret: bytes) -> str:
    return crypto.decrypt(secret, "sso", config.client_secret_encrypted)
