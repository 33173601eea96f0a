"""The web app kernel: health, readiness, problem details, OpenAPI, metrics, request ids."""

from __future__ import annotations

from litestar import Litestar, get
from litestar.testing import AsyncTestClient

from depotline import __version__
from depotline.config import Settings


async def test_healthz_reports_alive_and_version(client: AsyncTestClient[Litestar]) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "version": __version__}


async def test_readyz_is_200_when_postgres_and_redis_answer(
    client: AsyncTestClient[Litestar],
) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"] == {"postgres": "ok", "redis": "ok"}


async def test_unknown_route_is_problem_json(client: AsyncTestClient[Litestar]) -> None:
    response = await client.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == 404
    assert body["title"] == "Not Found"
    assert body["instance"] == "/api/v1/nothing-here"
    assert body["request_id"] == response.headers["x-request-id"]


async def test_browser_gets_an_html_error_page(client: AsyncTestClient[Litestar]) -> None:
    response = await client.get("/no-such-page", headers={"accept": "text/html"})
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "404" in response.text and "Not Found" in response.text


async def test_crash_is_500_problem_without_stack_trace(settings: Settings) -> None:
    from depotline.app import create_app

    @get("/api/v1/boom", sync_to_thread=False)
    def boom() -> None:
        raise RuntimeError("secret internal detail in /srv/depotline/thing.py")

    app = create_app(settings)
    app.register(boom)
    async with AsyncTestClient(app=app) as client:
        response = await client.get("/api/v1/boom")
    assert response.status_code == 500
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "secret internal detail" not in response.text
    assert "Traceback" not in response.text
    assert response.json()["request_id"]


async def test_validation_error_names_the_field(settings: Settings) -> None:
    from depotline.app import create_app

    @get("/api/v1/echo", sync_to_thread=False)
    def echo(count: int) -> dict[str, int]:
        return {"count": count}

    app = create_app(settings)
    app.register(echo)
    async with AsyncTestClient(app=app) as client:
        response = await client.get("/api/v1/echo", params={"count": "many"})
    assert response.status_code == 400
    body = response.json()
    assert body["errors"][0]["field"] == "count"
    assert "count" in body["detail"]


async def test_request_id_is_echoed_or_generated(client: AsyncTestClient[Litestar]) -> None:
    given = await client.get("/healthz", headers={"x-request-id": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    generated = await client.get("/healthz", headers={"x-request-id": "bad id\nwith newline"})
    assert generated.headers["x-request-id"] not in ("", "bad id\nwith newline")
    assert len(generated.headers["x-request-id"]) == 32


async def test_openapi_schema_is_served_without_cdn(client: AsyncTestClient[Litestar]) -> None:
    schema = await client.get("/schema/openapi.json")
    assert schema.status_code == 200
    assert schema.json()["info"]["title"] == "Depotline"
    assert "/readyz" in schema.json()["paths"]
    page = await client.get("/schema")
    assert page.status_code == 200
    assert "/vendor/swagger-ui/swagger-ui-bundle.js" in page.text
    assert "https://" not in page.text and "http://" not in page.text
    asset = await client.get("/vendor/swagger-ui/swagger-ui-bundle.js")
    assert asset.status_code == 200


async def test_metrics_count_requests(client: AsyncTestClient[Litestar]) -> None:
    await client.get("/healthz")
    metrics = await client.get("/metrics")
    assert metrics.status_code == 200
    assert "depotline_requests_total" in metrics.text
    assert 'path="/healthz"' in metrics.text


async def test_landing_page_shows_version_and_api_link(client: AsyncTestClient[Litestar]) -> None:
    response = await client.get("/")
    assert response.status_code == 200
    assert f'data-testid="version">{__version__}<' in response.text
    assert 'href="/schema"' in response.text
    assert '<html lang="en">' in response.text


async def test_landing_page_speaks_chinese(client: AsyncTestClient[Litestar]) -> None:
    simplified = await client.get("/", headers={"accept-language": "zh-CN,zh;q=0.9,en;q=0.5"})
    assert '<html lang="zh-Hans">' in simplified.text
    assert "首页" in simplified.text
    traditional = await client.get("/", params={"lang": "zh-TW"})
    assert '<html lang="zh-Hant">' in traditional.text
    assert "首頁" in traditional.text and "登入" in traditional.text


async def test_language_choice_is_remembered(client: AsyncTestClient[Litestar]) -> None:
    switch = await client.get("/lang/zh_Hant", params={"next": "/"}, follow_redirects=False)
    assert switch.status_code in (302, 303)
    assert switch.headers["location"] == "/"
    page = await client.get("/")
    assert '<html lang="zh-Hant">' in page.text
    evil = await client.get("/lang/en", params={"next": "//evil.example/"}, follow_redirects=False)
    assert evil.headers["location"] == "/"
