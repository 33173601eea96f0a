"""Webhook and SMS throughput on this machine, in one run.

    .venv/bin/python bench/webhooks.py

Measures, against a fresh database of its own:

(a) signed Twilio voice webhooks (`POST /webhooks/twilio/voice`, each a new inbound call, signed
    with twilio's RequestValidator) answered per second by one `depotline serve` process
    (uvicorn, one worker) on 127.0.0.1;
(b) the same server's `/healthz` measured the same way in the same run, interleaved round by
    round with (a), and the ratio of the medians;
(c) SMS accepted for sending per second: `service.send_sms`, each call its own transaction.

Uses the embedded PostgreSQL and Redis in a temporary directory, or DATABASE_URL (an owner URL;
a database is created on that server and dropped afterwards) and REDIS_URL when set. Prints a
table, writes bench/results/webhooks.json and docs/benchmarks-webhooks.svg. Bounded: a fixed
number of requests per round, and no new round starts after BUDGET_SECONDS.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID
from xml.sax.saxutils import escape

import httpx
from support import (
    app_server,
    bench_settings,
    database,
    free_port,
    machine,
    process_env,
    servers,
    workspace,
)
from twilio.request_validator import RequestValidator  # type: ignore[import-untyped]

from depotline.auth import Principal
from depotline.config import Settings
from depotline.db import Database, tenant_scope
from depotline.observability import configure_logging
from telephony_gateway import service
from tenant import demo as tenant_demo
from tenant.repository import TenantRepository

ROOT = Path(__file__).resolve().parents[1]

RESULTS = ROOT / "bench" / "results" / "webhooks.json"
CHART = ROOT / "docs" / "benchmarks-webhooks.svg"

CONCURRENCY = 16
ROUNDS = 5
HEALTHZ_REQUESTS = 1000
VOICE_REQUESTS = 200
SMS_SENDS = 300
#: Warm-up requests before the measured rounds (connection pools, caches, first queries).
WARMUP = 50
#: After the first round, no HTTP round starts later than this many seconds into the run, and
#: no SMS round later than SMS_BUDGET_SECONDS: the whole run stays under two minutes.
BUDGET_SECONDS = 75.0
SMS_BUDGET_SECONDS = 100.0
RATIO_TARGET = 0.25

TENANT = "swiftfreight"
NUMBER = "+862088880001"
ACCOUNT_SID = "AC" + "b" * 32


# -- the machine --------------------------------------------------------------------------------
def _busy_jiffies() -> tuple[int, int] | None:
    """(busy, total) CPU time of the whole machine, from /proc/stat (Linux only)."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return None
    values = [int(v) for v in fields]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return sum(values) - idle, sum(values)


def _process_cpu(pid: int) -> float | None:
    """User plus system CPU seconds a process has used (Linux only)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Round:
    requests: int
    seconds: float
    per_second: float
    errors: int
    server_cpu_ms_per_request: float | None
    machine_busy: float | None
    p50_ms: float
    p95_ms: float


@dataclass
class Series:
    name: str
    rounds: list[Round] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(r.per_second for r in self.rounds) if self.rounds else 0.0

    def summary(self) -> dict[str, Any]:
        cpu = [r.server_cpu_ms_per_request for r in self.rounds if r.server_cpu_ms_per_request]
        return {
            "median_per_second": round(self.median, 1),
            "min_per_second": round(min(r.per_second for r in self.rounds), 1),
            "max_per_second": round(max(r.per_second for r in self.rounds), 1),
            "median_p50_ms": round(statistics.median(r.p50_ms for r in self.rounds), 2),
            "median_p95_ms": round(statistics.median(r.p95_ms for r in self.rounds), 2),
            "median_server_cpu_ms_per_request": round(statistics.median(cpu), 3) if cpu else None,
            "errors": sum(r.errors for r in self.rounds),
            "rounds": [asdict(r) for r in self.rounds],
        }


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else 0.0


async def measure(
    total: int, one: Callable[[int], Awaitable[bool]], server_pid: int | None = None
) -> Round:
    """`total` calls of `one(i)` by CONCURRENCY workers; each returns True on success."""
    latencies: list[float] = []
    errors = 0
    counter = iter(range(total))

    async def worker() -> None:
        nonlocal errors
        for i in counter:
            began = time.perf_counter()
            try:
                ok = await one(i)
            except httpx.HTTPError:
                ok = False
            latencies.append(time.perf_counter() - began)
            if not ok:
                errors += 1

    cpu_before = _process_cpu(server_pid) if server_pid else None
    machine_before = _busy_jiffies()
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    elapsed = time.perf_counter() - started
    cpu_after = _process_cpu(server_pid) if server_pid else None
    machine_after = _busy_jiffies()
    server_cpu = (
        (cpu_after - cpu_before) * 1000 / total
        if cpu_before is not None and cpu_after is not None
        else None
    )
    busy = None
    if machine_before and machine_after and machine_after[1] > machine_before[1]:
        busy = (machine_after[0] - machine_before[0]) / (machine_after[1] - machine_before[1])
    return Round(
        requests=total,
        seconds=round(elapsed, 3),
        per_second=round(total / elapsed, 1),
        errors=errors,
        server_cpu_ms_per_request=round(server_cpu, 3) if server_cpu is not None else None,
        machine_busy=round(busy, 3) if busy is not None else None,
        p50_ms=round(_percentile(latencies, 0.5) * 1000, 2),
        p95_ms=round(_percentile(latencies, 0.95) * 1000, 2),
    )


# -- the tenant ---------------------------------------------------------------------------------
async def prepare_tenant(settings: Settings, auth_token: str) -> tuple[UUID, UUID]:
    """The demo tenants, and SwiftFreight with a Twilio account and a number on it."""
    db = Database(settings.app_url, pool_size=2)
    try:
        await tenant_demo.seed(db)
        async with db.session() as session:
            tenant = await TenantRepository(session).tenant_by_slug(TENANT)
        assert tenant is not None
        actor = Principal(
            user_id=None,
            name="bench",
            home_tenant_id=tenant.id,
            acting_tenant_id=tenant.id,
            acting_tenant_name=tenant.name,
            acting_tenant_kind=str(tenant.kind),
            role="tenant_admin",
            via="api_key",
        )
        with tenant_scope(tenant.id):
            async with db.session() as session:
                account = await service.create_account(
                    session,
                    actor,
                    provider="twilio",
                    label="Bench Twilio",
                    settings={"account_sid": ACCOUNT_SID, "api_base": "http://127.0.0.1:9"},
                    credentials={"auth_token": auth_token},
                    sender_id=None,
                    sms_per_second=1000,
                    secret=settings.session_secret(),
                )
                await session.flush()
                await service.add_number(session, actor, number=NUMBER, account_id=account.id)
        return tenant.id, account.id
    finally:
        await db.dispose()


# -- the measurements ---------------------------------------------------------------------------
def voice_requests(base: str, auth_token: str, count: int) -> list[tuple[dict[str, str], str]]:
    """Signed voice webhooks as Twilio sends them for new inbound calls: (form, signature).
    Signed before the clock starts, so the client's signing is not measured."""
    url = f"{base}/webhooks/twilio/voice"
    validator = RequestValidator(auth_token)
    requests = []
    for _ in range(count):
        caller = f"+86139{secrets.randbelow(10**8):08d}"
        form = {
            "AccountSid": ACCOUNT_SID,
            "ApiVersion": "2010-04-01",
            "CallSid": "CA" + secrets.token_hex(16),
            "CallStatus": "ringing",
            "Called": NUMBER,
            "CalledCountry": "CN",
            "Caller": caller,
            "CallerCountry": "CN",
            "Direction": "inbound",
            "From": caller,
            "FromCountry": "CN",
            "To": NUMBER,
            "ToCountry": "CN",
        }
        requests.append((form, validator.compute_signature(url, form)))
    return requests


async def http_series(
    base: str, auth_token: str, server_pid: int, deadline: float
) -> tuple[Series, Series]:
    healthz, voice = Series("healthz"), Series("voice webhook")
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:

        async def get_healthz(_: int) -> bool:
            response = await client.get("/healthz")
            return response.status_code == 200

        def post_voice(
            signed: list[tuple[dict[str, str], str]],
        ) -> Callable[[int], Awaitable[bool]]:
            async def one(i: int) -> bool:
                form, signature = signed[i]
                response = await client.post(
                    "/webhooks/twilio/voice",
                    data=form,
                    headers={"X-Twilio-Signature": signature},
                )
                return response.status_code == 200 and "<Gather" in response.text

            return one

        warm = voice_requests(base, auth_token, WARMUP)
        await measure(WARMUP, get_healthz)
        warmed = await measure(WARMUP, post_voice(warm))
        if warmed.errors:
            raise RuntimeError(f"{warmed.errors} of {WARMUP} warm-up voice webhooks failed")
        for number in range(ROUNDS):
            if number and time.monotonic() > deadline:
                print(f"  (time budget reached after {number} rounds)")
                break
            signed = voice_requests(base, auth_token, VOICE_REQUESTS)
            healthz.rounds.append(await measure(HEALTHZ_REQUESTS, get_healthz, server_pid))
            voice.rounds.append(await measure(VOICE_REQUESTS, post_voice(signed), server_pid))
            print(
                f"  round {number + 1}: healthz {healthz.rounds[-1].per_second:7.1f}/s   "
                f"voice webhook {voice.rounds[-1].per_second:6.1f}/s"
            )
    return healthz, voice


async def sms_series(settings: Settings, tenant_id: UUID, deadline: float) -> Series:
    series = Series("sms accepted")
    db = Database(settings.app_url, pool_size=CONCURRENCY // 2)
    run = uuid.uuid4().hex[:8]
    try:

        def send(prefix: str) -> Callable[[int], Awaitable[bool]]:
            async def one(i: int) -> bool:
                with tenant_scope(tenant_id):
                    async with db.session() as session:
                        sms = await service.send_sms(
                            session,
                            to=f"+86139{i:08d}",
                            body="您的包裹 SF1234567890 已到达网点，请留意派送。",
                            message_id=f"bench-{run}-{prefix}-{i}",
                        )
                return sms.state == "pending"

            return one

        await measure(WARMUP, send("warm"))
        for number in range(ROUNDS):
            if number and time.monotonic() > deadline:
                print(f"  (time budget reached after {number} rounds)")
                break
            series.rounds.append(await measure(SMS_SENDS, send(str(number)), os.getpid()))
            print(f"  round {number + 1}: sms accepted {series.rounds[-1].per_second:6.1f}/s")
    finally:
        await db.dispose()
    return series


# -- output -------------------------------------------------------------------------------------
def table(rows: list[tuple[str, Series, str]]) -> str:
    lines = [
        f"{'what':<28} {'median/s':>9} {'min/s':>8} {'max/s':>8} {'p50 ms':>7} {'p95 ms':>7}"
        f" {'app CPU ms':>10}  rounds",
    ]
    for label, series, _ in rows:
        s = series.summary()
        cpu = s["median_server_cpu_ms_per_request"]
        lines.append(
            f"{label:<28} {s['median_per_second']:>9.1f} {s['min_per_second']:>8.1f}"
            f" {s['max_per_second']:>8.1f} {s['median_p50_ms']:>7.1f} {s['median_p95_ms']:>7.1f}"
            f" {(f'{cpu:.2f}' if cpu is not None else '-'):>10}  {len(series.rounds)}"
        )
    return "\n".join(lines)


def _panel(
    rows: list[tuple[str, float, list[float], str]], top: int, title: str, unit: str
) -> tuple[list[str], int]:
    """One horizontal bar chart: (label, median, single rounds, colour) per bar; the median is
    the bar, each round a tick on it. Returns the SVG elements and where the next panel starts."""
    width, left, right, bar, gap = 720, 230, 110, 30, 14
    peak = max([median for _, median, _, _ in rows] + [v for _, _, vs, _ in rows for v in vs])
    scale = (width - left - right) / (peak or 1.0)
    parts = [f'<text x="16" y="{top}" font-size="14" font-weight="600">{escape(title)}</text>']
    y = top + 12
    for label, median, values, colour in rows:
        length = median * scale
        label_x = left + max([length, *(v * scale for v in values)]) + 8
        parts += [
            f'<text x="{left - 10}" y="{y + bar / 2 + 5}" text-anchor="end">{escape(label)}</text>',
            f'<rect x="{left}" y="{y}" width="{length:.1f}" height="{bar}" fill="{colour}"/>',
            f'<text x="{label_x:.1f}" y="{y + bar / 2 + 5}" font-weight="600">'
            f"{median:,.{0 if median >= 10 else 1}f} {unit}</text>",
        ]
        for value in values:
            x = left + value * scale
            parts.append(
                f'<line x1="{x:.1f}" y1="{y + 3}" x2="{x:.1f}" y2="{y + bar - 3}" '
                'stroke="#222" stroke-width="1.5" opacity="0.6"/>'
            )
        y += bar + gap
    return parts, y + 24


def svg_chart(rows: list[tuple[str, Series, str]], ratio: float, note: str) -> str:
    """Two panels from one run: requests a second (higher is better) and CPU time of the
    process running the app code per request (lower is better; less sensitive to noise)."""
    width = 720
    throughput = [
        (label, series.median, [r.per_second for r in series.rounds], colour)
        for label, series, colour in rows
    ]
    cpu = [
        (
            label,
            statistics.median(values),
            values,
            colour,
        )
        for label, series, colour in rows
        if (values := [r.server_cpu_ms_per_request or 0.0 for r in series.rounds])
    ]
    first, next_top = _panel(
        throughput, 70, "Requests a second (median of rounds; ticks: rounds)", "/s"
    )
    second, end = _panel(cpu, next_top, "CPU of the app process per request, ms", "ms")
    height = end + 10
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="system-ui, sans-serif" font-size="13">',
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
        '<text x="16" y="24" font-size="16" font-weight="600">Depotline: webhooks and SMS, '
        "one run of bench/webhooks.py</text>",
        f'<text x="16" y="44" fill="#555">{escape(note)}</text>',
        *first,
        *second,
        f'<text x="16" y="{end - 6}" fill="#333">voice webhook / healthz = {ratio:.2f} '
        f"(target &#8805; {RATIO_TARGET})</text>",
        "</svg>",
    ]
    return "\n".join(parts) + "\n"


# -- the run ------------------------------------------------------------------------------------
def main() -> int:
    began = time.monotonic()
    deadline = began + BUDGET_SECONDS
    auth_token = secrets.token_hex(16)
    load_before = os.getloadavg()
    configure_logging("WARNING", "console")
    print(f"Depotline webhook benchmark ({os.cpu_count()} CPUs, load {load_before[0]:.2f})")
    with (
        workspace() as workdir,
        servers(workdir) as (owner, redis_url, embedded),
        database(owner) as owner_url,
    ):
        settings = bench_settings(owner_url, workdir, redis_url=redis_url)
        tenant_id, _ = asyncio.run(prepare_tenant(settings, auth_token))
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        setup = time.monotonic() - began
        print(f"  set up in {setup:.1f} s; measuring (concurrency {CONCURRENCY})")
        env = process_env(settings, base)
        with app_server(env, port, workdir / "server.log") as process:
            healthz, voice = asyncio.run(http_series(base, auth_token, process.pid, deadline))
        sms = asyncio.run(sms_series(settings, tenant_id, began + SMS_BUDGET_SECONDS))

    ratio = voice.median / healthz.median if healthz.median else 0.0
    per_round = [
        v.per_second / h.per_second for h, v in zip(healthz.rounds, voice.rounds, strict=True)
    ]
    rows = [
        ("GET /healthz", healthz, "#9aa5b1"),
        ("POST /webhooks/twilio/voice", voice, "#2f6fde"),
        ("service.send_sms", sms, "#1f9d6b"),
    ]
    print()
    print(table(rows))
    print(
        f"\nvoice webhook / healthz: {ratio:.2f} (target >= {RATIO_TARGET}; "
        f"per round {', '.join(f'{r:.2f}' for r in per_round)})"
    )
    results = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": ".venv/bin/python bench/webhooks.py",
        "machine": machine(load_before),
        "setup": {
            "servers": "embedded PostgreSQL and Redis" if embedded else "DATABASE_URL / REDIS_URL",
            "app": "depotline serve: uvicorn, 1 worker, 127.0.0.1",
            "client": f"httpx.AsyncClient, {CONCURRENCY} concurrent requests, keep-alive",
            "rounds": ROUNDS,
            "warmup_requests": WARMUP,
            "healthz_requests_per_round": HEALTHZ_REQUESTS,
            "voice_requests_per_round": VOICE_REQUESTS,
            "sms_sends_per_round": SMS_SENDS,
        },
        "healthz": healthz.summary(),
        "voice_webhook": voice.summary(),
        "sms_accepted": sms.summary(),
        "ratio_voice_to_healthz": round(ratio, 3),
        "ratio_per_round": [round(r, 3) for r in per_round],
        "ratio_target": RATIO_TARGET,
        "ratio_meets_target": ratio >= RATIO_TARGET,
        "seconds": round(time.monotonic() - began, 1),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    temporary = RESULTS.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(results, indent=2) + "\n")
    temporary.replace(RESULTS)
    note = (
        f"{os.cpu_count()} CPUs shared with PostgreSQL and the client; "
        f"concurrency {CONCURRENCY}; {results['generated_at']}"
    )
    CHART.write_text(svg_chart(rows, ratio, note))
    print(
        f"wrote {RESULTS.relative_to(ROOT)} and {CHART.relative_to(ROOT)} in {results['seconds']} s"
    )
    errors = healthz.summary()["errors"] + voice.summary()["errors"] + sms.summary()["errors"]
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
