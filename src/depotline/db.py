"""Engine, sessions, the tenant scope and the base model mixins.

Tenant isolation is enforced twice. Repositories scope every query by tenant, and PostgreSQL
row-level security catches anything that slips past: each transaction sets
`app.tenant_id` from the `current_tenant` context variable with `set_config(..., true)`, and the
policies call `depotline_current_tenant()`, which raises when no scope is set. A query on a
tenant-owned table without a scope therefore fails instead of returning every tenant's rows.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy import DateTime, event, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session, SessionTransaction
from sqlmodel import Field, SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

current_tenant: ContextVar[UUID | None] = ContextVar("current_tenant", default=None)
#: The signed-in user, if any: lets a user read their own memberships before choosing a tenant.
current_user_id: ContextVar[UUID | None] = ContextVar("current_user_id", default=None)


class NoTenantScopeError(RuntimeError):
    """A tenant-owned row was created or queried with no tenant scope set."""


def require_tenant() -> UUID:
    tenant_id = current_tenant.get()
    if tenant_id is None:
        raise NoTenantScopeError("no tenant scope is set for this operation")
    return tenant_id


@contextmanager
def tenant_scope(tenant_id: UUID) -> Iterator[UUID]:
    """Run the enclosed block (and every transaction begun in it) as `tenant_id`."""
    token = current_tenant.set(tenant_id)
    try:
        yield tenant_id
    finally:
        current_tenant.reset(token)


@contextmanager
def user_scope(user_id: UUID) -> Iterator[UUID]:
    token = current_user_id.set(user_id)
    try:
        yield user_id
    finally:
        current_user_id.reset(token)


def utcnow() -> datetime:
    return datetime.now(UTC)


def empty_list() -> list[Any]:
    """`default_factory` of list columns. Not the builtin `list`: pydantic reads a default
    factory's signature each time a model is built, and for `list` that is a failed parse of
    ~45 µs, paid for every row an insert creates (a call on every inbound webhook)."""
    return []


class TenantOwned(SQLModel):
    """Mixin for every table that belongs to a tenant.

    `tenant_id` leads the primary key so the schema can be distributed by tenant later (Citus) and
    every tenant's rows sit together in the index. It defaults to the current scope and refuses to
    be created without one.
    """

    tenant_id: UUID = Field(default_factory=require_tenant, primary_key=True)
    id: UUID = Field(default_factory=uuid4, primary_key=True)


class Timestamped(SQLModel):
    created_at: datetime = Field(
        default_factory=utcnow, sa_type=DateTime(timezone=True), nullable=False
    )


#: The scope the session's transaction last set (savepoints skip setting it again).
_APPLIED_SCOPE = "depotline.applied_scope"


@event.listens_for(Session, "after_begin")
def _apply_tenant_scope(
    session: Session, transaction: SessionTransaction, connection: Connection
) -> None:
    # Transaction-local (the `true`), so a pooled connection never carries a scope over.
    tenant_id = current_tenant.get()
    user_id = current_user_id.get()
    if transaction.nested and session.info.get(_APPLIED_SCOPE) == (tenant_id, user_id):
        return  # a savepoint: the enclosing transaction holds this scope already
    session.info[_APPLIED_SCOPE] = (tenant_id, user_id)
    if tenant_id is None and user_id is None:
        # Nothing to set: unset and '' mean the same to the policies, and no setting outlives
        # its transaction. (A webhook's transaction sets its scope itself once it knows it.)
        return
    connection.execute(
        text(
            "select set_config('app.tenant_id', :tenant, true), "
            "set_config('app.user_id', :user, true)"
        ),
        {"tenant": str(tenant_id) if tenant_id else "", "user": str(user_id) if user_id else ""},
    )


@event.listens_for(Session, "after_transaction_end")
def _forget_savepoint_scope(session: Session, transaction: SessionTransaction) -> None:
    # A savepoint rolled back takes its set_config with it: the next one sets the scope again.
    if transaction.nested:
        session.info.pop(_APPLIED_SCOPE, None)


#: Connections older than this are replaced when next checked out.
POOL_RECYCLE_SECONDS = 1800


class Database:
    """One engine and its session factory. The app and the worker each own one."""

    def __init__(self, url: str, *, pool_size: int = 10, echo: bool = False) -> None:
        # No pre-ping (a round trip before every transaction): connections are recycled
        # before servers and proxies drop idle ones, and one that died anyway fails its
        # transaction once and is discarded (with every other connection of its pool).
        self.engine: AsyncEngine = create_async_engine(
            url,
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_recycle=POOL_RECYCLE_SECONDS,
            echo=echo,
        )
        self.sessions = async_sessionmaker(self.engine, class_=AsyncSession, expire_on_commit=False)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session whose transaction commits on success and rolls back on error."""
        async with self.sessions() as session, session.begin():
            yield session

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("select 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()
