"""A tenant with a simulator account and a number, and a way to run the worker until idle."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest
from arq.connections import ArqRedis

from depotline import outbox
from depotline.app import create_worker
from depotline.config import Settings
from depotline.db import Database, tenant_scope
from depotline.jobs import create_job_pool
from telephony_gateway import service
from telephony_gateway.models import CarrierAccount, PhoneNumber
from tests.tenant.conftest import Demo
from tests.tenant.conftest import world as world
from tests.tenant.test_seats import principal

NUMBER = "+862088880001"
CALLER = "+8613800138000"


@dataclass
class Line:
    world: Demo
    account: CarrierAccount
    number: PhoneNumber


@pytest.fixture
async def line(db: Database, world: Demo, settings: Settings) -> Line:
    admin = await principal(db, "admin@swiftfreight.test", world.tenants["swiftfreight"])
    with tenant_scope(admin.acting_tenant_id):
        async with db.session() as session:
            account = await service.create_account(
                session,
                admin,
                provider="simulator",
                label="Simulated network",
                settings={},
                credentials={},
                sender_id=None,
                sms_per_second=50,
                secret=settings.session_secret(),
            )
            await session.flush()
            number = await service.add_number(
                session, admin, number=NUMBER, account_id=account.id, label="Hotline"
            )
    return Line(world, account, number)


@pytest.fixture
async def jobs(settings: Settings, clean_redis: None) -> AsyncIterator[ArqRedis]:
    pool = await create_job_pool(settings.required_redis_url)
    yield pool
    await pool.aclose()


Drain = Callable[[], Awaitable[None]]


def drain_with(settings: Settings, db: Database, jobs: ArqRedis) -> Drain:
    """Relay the outbox and run a burst worker (with `settings`) until nothing due is left."""

    async def run() -> None:
        for _ in range(10):
            handed = await outbox.relay(db, jobs.enqueue_job)
            worker = create_worker(settings, burst=True)
            try:
                await worker.main()
            finally:
                await worker.close()
            if handed == 0:
                return
            await asyncio.sleep(0)

    return run


@pytest.fixture
def drain(settings: Settings, db: Database, jobs: ArqRedis) -> Drain:
    return drain_with(settings, db, jobs)
