"""What the benchmarks share: a working directory, servers and a database of their own (created,
migrated, dropped at the end), `depotline serve` in a child process, and the machine's line in
the results."""

from __future__ import annotations

import asyncio
import os
import platform
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import httpx

from depotline import migrations
from depotline.config import Settings, async_url
from depotline.embedded import EmbeddedPostgres, EmbeddedRedis
from depotline.migrations import create_database, drop_database

ROOT = Path(__file__).resolve().parents[1]


@contextmanager
def workspace() -> Iterator[Path]:
    """A temporary directory for the embedded servers and the logs, removed at the end."""
    workdir = Path(tempfile.mkdtemp(prefix="depotline-bench-"))
    try:
        yield workdir
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@contextmanager
def server(workdir: Path) -> Iterator[tuple[str, bool]]:
    """(owner URL of a server to create the database on, embedded?): DATABASE_URL's server, or
    an embedded one under `workdir`."""
    database_url = os.environ.get("DATABASE_URL")
    postgres = EmbeddedPostgres(workdir)
    try:
        yield (async_url(database_url) if database_url else postgres.start()), not database_url
    finally:
        postgres.stop()


@contextmanager
def servers(workdir: Path) -> Iterator[tuple[str, str, bool]]:
    """`server()` and Redis: (owner URL, Redis URL, embedded?)."""
    database_url, redis_url = os.environ.get("DATABASE_URL"), os.environ.get("REDIS_URL")
    postgres, redis = EmbeddedPostgres(workdir), EmbeddedRedis(workdir)
    try:
        owner = async_url(database_url) if database_url else postgres.start()
        yield owner, redis_url or redis.start(), not database_url
    finally:
        redis.stop()
        postgres.stop()


@contextmanager
def database(owner: str) -> Iterator[str]:
    """A database of the benchmark's own on the `owner` server, migrated: its owner URL.
    Dropped at the end."""
    owner_url = asyncio.run(create_database(owner, "depotline_bench_"))
    try:
        migrations.upgrade(owner_url)
        yield owner_url
    finally:
        asyncio.run(drop_database(owner, owner_url))


def bench_settings(
    owner_url: str, workdir: Path, *, redis_url: str | None = None, public_url: str | None = None
) -> Settings:
    """Depotline's settings on the benchmark's own database (and Redis, when one is used)."""
    extra: dict[str, Any] = {"redis_url": redis_url} if redis_url else {}
    if public_url:
        extra["public_url"] = public_url
    return Settings(
        environment="development",
        database_url=owner_url,
        app_database_url=None,
        data_dir=workdir,
        secret_key=secrets.token_hex(24),
        **extra,
    )


def process_env(settings: Settings, public_url: str) -> dict[str, str]:
    """The environment of a `depotline serve` or `worker` process on the benchmark's database."""
    assert settings.secret_key is not None
    return {
        **{k: v for k, v in os.environ.items() if k != "APP_DATABASE_URL"},
        "DATABASE_URL": settings.database_url or "",
        "REDIS_URL": settings.required_redis_url,
        "SECRET_KEY": settings.secret_key.get_secret_value(),
        "DATA_DIR": str(settings.data_dir),
        "PUBLIC_URL": public_url,
        "LOG_LEVEL": "WARNING",
        "LOG_FORMAT": "json",
        "ENVIRONMENT": "development",
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def app_server(
    env: dict[str, str], port: int, log: Path, *, start_seconds: float = 40
) -> Iterator[subprocess.Popen[bytes]]:
    """`depotline serve` (uvicorn, one worker) on 127.0.0.1:port, until the block ends. On a
    busy machine importing the app alone can take 20 s: `start_seconds` is the patience."""
    process = subprocess.Popen(
        [sys.executable, "-m", "depotline", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + start_seconds
        while True:
            if process.poll() is not None:
                raise RuntimeError("the server exited:\n" + log.read_text()[-3000:])
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the server was not ready in time:\n" + log.read_text()[-3000:])
            time.sleep(0.2)
        yield process
    finally:
        stop(process)


def stop(process: subprocess.Popen[bytes]) -> None:
    """Ctrl-C for a child `depotline` process; killed if it does not end in 15 s."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def machine(load_before: tuple[float, float, float]) -> dict[str, Any]:
    """The machine a run was measured on, and how busy it was before and after."""
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }


# -- charts -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Bar:
    """One measurement on a latency chart: its p50 and p99 in ms, and its p99 target if any."""

    label: str
    p50: float
    p99: float
    target_ms: float | None
    colour: str


def _tick_step(peak: float) -> float:
    """1, 2 or 5 times a power of ten: about eight ticks up to `peak`."""
    step = 1.0
    while peak / step > 10:
        for factor in (2.0, 2.5, 2.0):
            step *= factor
            if peak / step <= 10:
                break
    return step


def latency_chart(title: str, note: str, bars: list[Bar]) -> str:
    """p50 (light) and p99 (dark) per measurement, on one linear axis, with each target, as
    SVG (no scripts, no fonts to fetch)."""
    width, left, right, bar, gap, top = 760, 300, 90, 14, 16, 78
    peak = max([b.p99 for b in bars] + [b.target_ms or 0.0 for b in bars]) * 1.05
    scale = (width - left - right) / (peak or 1.0)
    parts: list[str] = []
    y = top
    for row in bars:
        parts.append(
            f'<text x="{left - 10}" y="{y + bar + 5}" text-anchor="end">{escape(row.label)}</text>'
        )
        target_x = row.target_ms * scale if row.target_ms is not None else 0.0
        for value, shade, name in ((row.p50, 0.45, "p50"), (row.p99, 1.0, "p99")):
            length = max(value * scale, 1.0)
            # The value to the right of the bar, and clear of the target line.
            label_x = left + (length if length > target_x else target_x) + 6
            parts += [
                f'<rect x="{left}" y="{y}" width="{length:.1f}" height="{bar}" '
                f'fill="{row.colour}" opacity="{shade}"/>',
                f'<text x="{label_x:.1f}" y="{y + bar - 3}" font-size="11">'
                f"{name} {value:.1f} ms</text>",
            ]
            y += bar + 2
        if row.target_ms is not None:
            x = left + row.target_ms * scale
            parts.append(
                f'<line x1="{x:.1f}" y1="{y - 2 * (bar + 2) - 3}" x2="{x:.1f}" y2="{y + 1}" '
                'stroke="#c0392b" stroke-width="2" stroke-dasharray="4 2"/>'
            )
        y += gap
    axis_y = y + 4
    ticks = []
    step = _tick_step(peak)
    value = 0.0
    while value <= peak:
        x = left + value * scale
        ticks.append(
            f'<line x1="{x:.1f}" y1="{axis_y}" x2="{x:.1f}" y2="{axis_y + 4}" stroke="#555"/>'
            f'<text x="{x:.1f}" y="{axis_y + 16}" text-anchor="middle" font-size="11">'
            f"{value:g}</text>"
        )
        value += step
    height = axis_y + 50
    return (
        "\n".join(
            [
                f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
                f'viewBox="0 0 {width} {height}" font-family="system-ui, sans-serif" '
                'font-size="13">',
                f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
                f'<text x="16" y="24" font-size="16" font-weight="600">{escape(title)}</text>',
                f'<text x="16" y="44" fill="#555">{escape(note)}</text>',
                '<text x="16" y="62" fill="#555">light: p50, dark: p99; dashed red: the p99 '
                "target</text>",
                *parts,
                f'<line x1="{left}" y1="{axis_y}" x2="{width - right}" y2="{axis_y}" '
                'stroke="#555"/>',
                *ticks,
                f'<text x="{left + (width - left - right) / 2:.0f}" y="{axis_y + 34}" '
                'text-anchor="middle" fill="#333">milliseconds</text>',
                "</svg>",
            ]
        )
        + "\n"
    )
