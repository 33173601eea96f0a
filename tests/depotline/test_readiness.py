"""/readyz follows the real state of Redis and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from litestar.testing import AsyncTestClient

from depotline.app import create_app
from depotline.config import Settings
from depotline.embedded import EmbeddedRedis


async def test_readyz_turns_503_when_redis_stops_and_200_when_it_returns(
    settings: Settings, tmp_path: Path
) -> None:
    redis = EmbeddedRedis(tmp_path)
    url = redis.start()
    app = create_app(settings.model_copy(update={"redis_url": url}))
    try:
        async with AsyncTestClient(app=app) as client:
            assert (await client.get("/readyz")).status_code == 200

            redis.stop()
            down = await client.get("/readyz")
            assert down.status_code == 503
            body = down.json()
            assert body["checks"]["postgres"] == "ok"
            assert body["checks"]["redis"].startswith("down")
            assert body["detail"] == "not ready: redis down"

            redis.start()
            back = await client.get("/readyz")
            assert back.status_code == 200
            assert back.json()["status"] == "ready"
    finally:
        redis.stop()


async def test_readyz_names_postgres_when_the_database_is_unreachable(
    settings: Settings, redis_url: str
) -> None:
    broken = settings.model_copy(
        update={"app_database_url": "postgresql://nobody@127.0.0.1:1/nowhere"}
    )
    async with AsyncTestClient(app=create_app(broken)) as client:
        response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["postgres"].startswith("down")
    assert response.json()["checks"]["redis"] == "ok"
