"""The `depotline` command."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import click
import structlog

from depotline.config import Settings, SettingsError, load_settings
from depotline.observability import configure_logging

log = structlog.get_logger("depotline.cli")


def _settings(**overrides: object) -> Settings:
    try:
        return load_settings(**overrides)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="depotline")
def main() -> None:
    """Depotline: the logistics call-center platform.

    With DATABASE_URL and REDIS_URL unset, `run` starts an embedded PostgreSQL and Redis that keep
    their data under ./.data; the other commands expect those URLs to be set.
    """


@main.command()
@click.option("--host", default=None, help="Address to serve on (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port to serve on (default 8000).")
@click.option("--no-seed", is_flag=True, help="Do not load the demo data.")
def run(host: str | None, port: int | None, no_seed: bool) -> None:
    """Everything for development in one command: the embedded PostgreSQL and Redis (unless
    DATABASE_URL / REDIS_URL are set), migrations, demo data, the web app and a worker.
    Ctrl-C stops all of it."""
    settings = _settings()
    configure_logging(settings.log_level, settings.log_format)
    from depotline.embedded import EmbeddedPostgres, EmbeddedRedis

    postgres = EmbeddedPostgres(settings.data_dir)
    redis = EmbeddedRedis(settings.data_dir)
    env = dict(os.environ)
    try:
        if not settings.database_url:
            env["DATABASE_URL"] = postgres.start()
        if not settings.redis_url:
            env["REDIS_URL"] = redis.start()
        settings = _settings(database_url=env["DATABASE_URL"], redis_url=env["REDIS_URL"])
        _migrate(settings)
        if not no_seed:
            _seed(settings)
        if host:
            env["HOST"] = host
        if port:
            env["PORT"] = str(port)
        _supervise(env, settings)
    finally:
        redis.stop()
        postgres.stop()


def _supervise(env: dict[str, str], settings: Settings) -> None:
    """Run `serve` and `worker` as child processes until Ctrl-C (or SIGTERM) or one of them dies."""
    children = [
        subprocess.Popen([sys.executable, "-m", "depotline", role], env=env)
        for role in ("serve", "worker")
    ]
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    host = env.get("HOST", settings.host)
    port = env.get("PORT", str(settings.port))
    click.echo(f"\nDepotline is starting on http://{host}:{port}  (Ctrl-C stops everything)\n")
    while not stopping and all(child.poll() is None for child in children):
        time.sleep(0.2)
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGINT)
    deadline = time.monotonic() + 15
    for child in children:
        try:
            child.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
    log.info("stopped")


@main.command()
@click.option("--host", default=None, help="Address to serve on (default: HOST or 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default: PORT or 8000).")
def serve(host: str | None, port: int | None) -> None:
    """Serve the web app only (needs DATABASE_URL and REDIS_URL)."""
    import uvicorn

    settings = _settings()
    _require_servers(settings)
    uvicorn.run(
        "depotline.app:create_app",
        factory=True,
        host=host or settings.host,
        port=port or settings.port,
        log_config=None,
        access_log=False,
        proxy_headers=True,
    )


@main.command()
@click.option("--burst", is_flag=True, help="Run the queued jobs, then exit.")
def worker(burst: bool) -> None:
    """Run the arq worker only (needs DATABASE_URL and REDIS_URL)."""
    from depotline.app import create_worker

    settings = _settings()
    _require_servers(settings)
    create_worker(settings, burst=burst).run()


@main.command()
@click.option("--revision", default="head", show_default=True, help="Target revision.")
def migrate(revision: str) -> None:
    """Apply the database migrations (as the owner named by DATABASE_URL)."""
    settings = _settings()
    configure_logging(settings.log_level, settings.log_format)
    _require_servers(settings, redis=False)
    _migrate(settings, revision)


@main.command("downgrade")
@click.argument("revision")
def downgrade_command(revision: str) -> None:
    """Undo migrations down to REVISION ("base" undoes all)."""
    from depotline import migrations

    settings = _settings()
    configure_logging(settings.log_level, settings.log_format)
    _require_servers(settings, redis=False)
    migrations.downgrade(settings.owner_database_url, revision)


@main.command("seed-demo")
def seed_demo() -> None:
    """Load the demo tenants, users and data. Safe to run again: nothing is doubled."""
    settings = _settings()
    configure_logging(settings.log_level, settings.log_format)
    _require_servers(settings, redis=False)
    _seed(settings)


def _require_servers(settings: Settings, *, redis: bool = True) -> None:
    if not settings.database_url:
        raise click.ClickException("DATABASE_URL is not set (or use `depotline run`)")
    if redis and not settings.redis_url:
        raise click.ClickException("REDIS_URL is not set (or use `depotline run`)")


def _migrate(settings: Settings, revision: str = "head") -> None:
    from depotline import migrations

    with _step("migrations"):
        migrations.upgrade(settings.owner_database_url, revision)
        if settings.app_db_password is not None:
            asyncio.run(migrations.set_app_role_password(settings))


def _seed(settings: Settings) -> None:
    from depotline.demo import seed

    with _step("demo data"):
        for line in asyncio.run(seed(settings)):
            click.echo(line)


@contextmanager
def _step(name: str) -> Iterator[None]:
    started = time.monotonic()
    log.info(f"{name}: starting")
    yield
    log.info(f"{name}: done", seconds=round(time.monotonic() - started, 2))


def _add_domain_commands() -> None:
    """The domains' own subcommands (`depotline simulate` ...), as listed by the assembly."""
    from depotline.app import CLI_COMMANDS

    for command in CLI_COMMANDS:
        main.add_command(command)


_add_domain_commands()
