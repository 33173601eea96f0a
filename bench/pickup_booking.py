"""Pickup booking and dispatch on this machine, in one run.

    .venv/bin/python bench/pickup_booking.py

Against a fresh database of its own, with SwiftFreight's depots and zones (three depots, postal
prefix zones and a polygon, no capacity limits) and a tenant API key, measures:

(a) bookings accepted per second: `POST /api/v1/pickup/orders` (each with an Idempotency-Key,
    a new customer and address, so no booking is a duplicate) answered 201 by one
    `depotline serve` process, CONCURRENCY requests in flight, as fast as it goes. No worker
    runs in this phase, so what is measured is the booking alone (rules, duplicate check, the
    order number, the order, its timeline line and its outbox events in one transaction).
(b) time from booking to dispatch decision at steady RATES of bookings a second (open loop: a
    booking is sent every 1/rate s whatever the answers) for PACED_SECONDS each, with a
    `depotline worker` running (dispatch, and every other handler the assembly subscribes):
    `dispatched_at - created_at` of every order, both stamped by Depotline, p50/p95/p99, and
    to the first SMS to its depot handed to the gateway (its `sms_messages` row: the target);
    the API's answer time at that rate; and how long after the last booking every event the
    rate caused (carrier sends, delivery reports, timelines) had been handled, which says
    whether the worker kept up or ran a backlog. (a)'s events are marked handled before the
    worker starts: (b) begins with an empty queue.

Uses the embedded PostgreSQL and Redis in a temporary directory, or DATABASE_URL (an owner URL;
a database is created on that server and dropped afterwards) and REDIS_URL when set. Prints a
table and writes bench/results/pickup.json. Bounded: fixed numbers of bookings, and the wait for
dispatch stops after DISPATCH_WAIT_SECONDS.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from pathlib import Path
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import NullPool
from support import (
    Bar,
    app_server,
    bench_settings,
    database,
    free_port,
    latency_chart,
    machine,
    process_env,
    servers,
    stop,
    workspace,
)

from depotline.auth import Principal
from depotline.config import Settings
from depotline.db import Database, tenant_scope
from depotline.observability import configure_logging
from pickup import service
from pickup.demo import SCIENCE_PARK
from pickup.schemas import DepotIn, SettingsIn, ZoneIn
from telephony_gateway import demo as gateway_demo
from tenant import demo as tenant_demo
from tenant import service as tenancy
from tenant.repository import TenantRepository

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "pickup.json"
CHART = ROOT / "bench" / "results" / "pickup.svg"
TARGET_MS = 2000.0  # booking -> depot SMS handed to the gateway, p99 at 50/s

CONCURRENCY = 16
WARMUP = 30
ROUNDS = 3
BOOKINGS_PER_ROUND = 300
RATES = (20.0, 50.0)  # bookings a second in (b): a moderate load, then the one asked for
PACED_SECONDS = 20
DISPATCH_WAIT_SECONDS = 120.0
BACKLOG_WAIT_SECONDS = 300.0
SHANGHAI = ZoneInfo("Asia/Shanghai")
#: Where the bench's customers live: Guangzhou North, Guangzhou South, Shenzhen, the park.
POSTAL = ["510410", "510800", "510300", "510220", "518057", "518000"]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else 0.0


def ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


@asynccontextmanager
async def owner_connection(owner_url: str) -> AsyncIterator[AsyncConnection]:
    """A connection of the database's owner (outside any tenant scope), closed at the end;
    committed there when the block made changes."""
    engine = create_async_engine(owner_url, poolclass=NullPool)
    try:
        async with engine.begin() as connection:
            yield connection
    finally:
        await engine.dispose()


# -- the tenant ---------------------------------------------------------------------------------
async def prepare(settings: Settings) -> tuple[UUID, str]:
    """The demo tenants, SwiftFreight's depots and zones, and an API key that may book."""
    db = Database(settings.app_url, pool_size=2)
    try:
        await tenant_demo.seed(db)
        await gateway_demo.seed(db)  # the simulated carrier account and SMS number
        async with db.session() as session:
            tenant = await TenantRepository(session).tenant_by_slug("swiftfreight")
            admin_user = await TenantRepository(session).user_by_email("admin@swiftfreight.test")
        assert tenant is not None and admin_user is not None
        admin = Principal(
            user_id=admin_user.id,
            name="bench",
            home_tenant_id=tenant.id,
            acting_tenant_id=tenant.id,
            acting_tenant_name=tenant.name,
            acting_tenant_kind=str(tenant.kind),
            role="tenant_admin",
            via="session",
        )
        with tenant_scope(tenant.id):
            async with db.session() as session:
                await service.save_rules(session, SettingsIn(order_prefix="SF"))
                # The simulated carrier takes what the API sends: the carrier's rate is not
                # what is measured.
                connection = await session.connection()
                await connection.execute(text("update carrier_accounts set sms_per_second = 1000"))
                depots = {}
                for n, (name, code) in enumerate(
                    (("Guangzhou North", "GZN"), ("Guangzhou South", "GZS"), ("Shenzhen", "SZ"))
                ):
                    depots[name] = await service.save_depot(
                        session,
                        DepotIn(
                            name=name,
                            code=code,
                            address=f"{name} depot",
                            sms_contacts=[f"+861380000{n}101"],
                            open_days=[1, 2, 3, 4, 5, 6, 7],
                        ),
                    )
                for name, depot, priority, codes, polygon in (
                    ("Baiyun and Huadu", "Guangzhou North", 10, ["5104xx", "5108xx"], None),
                    ("Guangzhou", "Guangzhou South", 0, ["510xxx"], None),
                    ("Shenzhen", "Shenzhen", 0, ["518xxx"], None),
                    ("Science Park", "Shenzhen", 20, [], SCIENCE_PARK),
                ):
                    await service.save_zone(
                        session,
                        ZoneIn(
                            name=name,
                            depot_id=depots[depot].id,
                            priority=priority,
                            postal_codes=codes,
                            geojson=polygon,
                        ),
                    )
                _, raw = await tenancy.create_api_key(
                    session, admin, "bench", "tenant_admin", ["read", "write"]
                )
        return tenant.id, raw
    finally:
        await db.dispose()


def booking(n: int, day: date) -> dict[str, Any]:
    """A distinct, valid pickup: its own customer and address (never a duplicate)."""
    postal = POSTAL[n % len(POSTAL)]
    start = datetime.combine(day, clock(9 + n % 7))
    sender: dict[str, Any] = {
        "name": f"Bench customer {n}",
        "phone": f"+86139{n:08d}",
        "address": f"Bench road {n}",
        "postal_code": postal,
    }
    if n % 10 == 0:  # some are placed on the map, inside the park polygon
        sender.update(lat=22.54, lon=113.95)
    return {
        "sender": sender,
        "window_start": start.isoformat(),
        "window_end": (start + timedelta(hours=2)).isoformat(),
        "parcels": [{"count": 1 + n % 3, "weight_kg": 1.5}],
        "notes": "bench",
    }


# -- processes ----------------------------------------------------------------------------------
@contextmanager
def worker_process(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`depotline worker` (the outbox relay and the jobs) until the block ends."""
    process = subprocess.Popen(
        [sys.executable, "-m", "depotline", "worker"],
        env=env,
        cwd=ROOT,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 120
        while not asyncio.run(listening(env["DATABASE_URL"])):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the worker did not start:\n" + log.read_text()[-3000:])
            time.sleep(0.5)
        yield process
    finally:
        stop(process)


async def listening(owner_url: str) -> bool:
    """The worker is ready once its outbox consumer LISTENs for commits."""
    async with owner_connection(owner_url) as connection:
        found = await connection.scalar(
            text("select count(*) from pg_stat_activity where query ilike 'listen%outbox%'")
        )
        return bool(found)


# -- (a) throughput -----------------------------------------------------------------------------
@dataclass
class Round:
    bookings: int
    seconds: float
    per_second: float
    errors: int
    p50_ms: float
    p99_ms: float


async def throughput(base: str, key: str, day: date, first: int) -> tuple[list[Round], int]:
    headers = {"authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    rounds: list[Round] = []
    counter = first
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:

        async def run(total: int) -> Round:
            nonlocal counter
            numbers = iter(range(counter, counter + total))
            counter += total
            latencies: list[float] = []
            errors = 0

            async def worker() -> None:
                nonlocal errors
                for n in numbers:
                    began = time.perf_counter()
                    try:
                        response = await client.post(
                            "/api/v1/pickup/orders",
                            json=booking(n, day),
                            headers={**headers, "Idempotency-Key": f"bench-{n}"},
                        )
                        ok = response.status_code == 201
                    except httpx.HTTPError:
                        ok = False
                    latencies.append(time.perf_counter() - began)
                    errors += 0 if ok else 1

            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
            elapsed = time.perf_counter() - started
            return Round(
                bookings=total,
                seconds=round(elapsed, 2),
                per_second=round(total / elapsed, 1),
                errors=errors,
                p50_ms=ms(percentile(latencies, 0.5)),
                p99_ms=ms(percentile(latencies, 0.99)),
            )

        await run(WARMUP)
        for _ in range(ROUNDS):
            rounds.append(await run(BOOKINGS_PER_ROUND))
    return rounds, counter


# -- (b) booking to dispatch at a steady rate -----------------------------------------------------
async def paced(
    base: str, key: str, day: date, first: int, rate: float
) -> tuple[list[float], int, float]:
    """Bookings sent every 1/rate s: their answer times, errors, and the rate achieved."""
    headers = {"authorization": f"Bearer {key}"}
    total = int(rate * PACED_SECONDS)
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:

        async def one(n: int) -> None:
            nonlocal errors
            began = time.perf_counter()
            try:
                response = await client.post(
                    "/api/v1/pickup/orders",
                    json=booking(n, day),
                    headers={**headers, "Idempotency-Key": f"bench-{n}"},
                )
                errors += 0 if response.status_code == 201 else 1
            except httpx.HTTPError:
                errors += 1
            latencies.append(time.perf_counter() - began)

        started = time.perf_counter()
        tasks = []
        for i in range(total):
            await asyncio.sleep(max(0.0, started + i / rate - time.perf_counter()))
            tasks.append(asyncio.create_task(one(first + i)))
        sent = time.perf_counter() - started
        await asyncio.gather(*tasks)
    return latencies, errors, round(total / sent, 1)


async def events_since(owner_url: str, since: datetime) -> dict[str, int]:
    """Outbox events published since `since`, by topic: what the worker had to handle."""
    async with owner_connection(owner_url) as connection:
        rows = await connection.execute(
            text(
                "select topic, count(*) from outbox_events where created_at >= :since "
                "group by topic order by topic"
            ),
            {"since": since},
        )
        return {str(topic): int(count) for topic, count in rows.all()}


async def backlog_cleared(owner_url: str, since: datetime, sent: float) -> float | None:
    """Seconds from the last booking of a rate until every event it caused that is due has
    been handled (bookkeeping and carrier sends included): how far behind the worker ran.
    None when not cleared within BACKLOG_WAIT_SECONDS."""
    while time.monotonic() - sent < BACKLOG_WAIT_SECONDS:
        async with owner_connection(owner_url) as connection:
            left = await connection.scalar(
                text(
                    "select count(*) from outbox_events where created_at >= :since "
                    "and processed_at is null and available_at <= now()"
                ),
                {"since": since},
            )
        if not left:
            return round(time.monotonic() - sent, 1)
        await asyncio.sleep(0.5)
    return None


async def dispatch_delays(
    settings: Settings, tenant_id: UUID, since: datetime
) -> tuple[list[float], list[float], int, dict[str, int]]:
    """For every order booked since `since`: seconds from booking to the dispatch decision and
    from booking to the first SMS to its depot handed to the gateway, waiting (bounded) until
    every order has both; and how many did not, and the orders' states."""
    db = Database(settings.app_url, pool_size=2)
    try:
        deadline = time.monotonic() + DISPATCH_WAIT_SECONDS
        while True:
            with tenant_scope(tenant_id):
                async with db.session() as session:
                    connection = await session.connection()
                    rows = (
                        await connection.execute(
                            text(
                                "select extract(epoch from o.dispatched_at - o.created_at), "
                                "  extract(epoch from ("
                                "    select min(m.created_at) from sms_messages m"
                                "    where m.message_id like 'pickup:' || o.id || ':offer:%'"
                                "  ) - o.created_at), o.status "
                                "from pickup_orders o where o.created_at >= :since"
                            ),
                            {"since": since},
                        )
                    ).all()
            waiting = sum(1 for decided, sms, _ in rows if decided is None or sms is None)
            if waiting == 0 or time.monotonic() > deadline:
                break
            await asyncio.sleep(1)
        outcomes: dict[str, int] = {}
        for _, _, status in rows:
            outcomes[status] = outcomes.get(status, 0) + 1
        decided = [float(d) for d, _, _ in rows if d is not None]
        to_sms = [float(m) for _, m, _ in rows if m is not None]
        return decided, to_sms, waiting, outcomes
    finally:
        await db.dispose()


def summary(
    latencies: list[float],
    errors: int,
    achieved: float,
    delays: list[float],
    to_sms: list[float],
    undecided: int,
    outcomes: dict[str, int],
) -> dict[str, Any]:
    return {
        "bookings": len(latencies),
        "achieved_per_second": achieved,
        "errors": errors,
        "answer_p50_ms": ms(percentile(latencies, 0.5)),
        "answer_p99_ms": ms(percentile(latencies, 0.99)),
        "booking_to_dispatch_p50_ms": ms(percentile(delays, 0.5)),
        "booking_to_dispatch_p95_ms": ms(percentile(delays, 0.95)),
        "booking_to_dispatch_p99_ms": ms(percentile(delays, 0.99)),
        "booking_to_dispatch_max_ms": ms(max(delays, default=0.0)),
        "booking_to_depot_sms_p50_ms": ms(percentile(to_sms, 0.5)),
        "booking_to_depot_sms_p95_ms": ms(percentile(to_sms, 0.95)),
        "booking_to_depot_sms_p99_ms": ms(percentile(to_sms, 0.99)),
        "booking_to_depot_sms_max_ms": ms(max(to_sms, default=0.0)),
        "undecided_after_wait": undecided,
        "outcomes": outcomes,
    }


async def forget_backlog(owner_url: str) -> None:
    """(a) measured bookings alone: mark their events handled so (b) starts with an empty
    queue (their orders stay booked, outside (b)'s window)."""
    async with owner_connection(owner_url) as connection:
        await connection.execute(
            text("update outbox_events set processed_at = now() where processed_at is null")
        )


def chart(at_rate: dict[str, dict[str, Any]], results: dict[str, Any]) -> str:
    bars = []
    for rate, found in at_rate.items():
        bars += [
            Bar(
                f"{rate}/s: API answer",
                found["answer_p50_ms"],
                found["answer_p99_ms"],
                None,
                "#7f8c8d",
            ),
            Bar(
                f"{rate}/s: booking -> dispatch",
                found["booking_to_dispatch_p50_ms"],
                found["booking_to_dispatch_p99_ms"],
                None,
                "#2e86c1",
            ),
            Bar(
                f"{rate}/s: booking -> depot SMS",
                found["booking_to_depot_sms_p50_ms"],
                found["booking_to_depot_sms_p99_ms"],
                TARGET_MS if rate == "50" else None,
                "#1e8449",
            ),
        ]
    load = results["machine"]["load_average_before"][0]
    note = f"{results['generated_at']}, {results['machine']['cpus']} CPUs, load {load} before"
    return latency_chart("Depotline pickup booking, one run of bench/pickup_booking.py", note, bars)


def main() -> int:
    began = time.monotonic()
    load_before = os.getloadavg()
    configure_logging("WARNING", "console")
    print(f"Depotline pickup benchmark ({os.cpu_count()} CPUs, load {load_before[0]:.2f})")
    day = (datetime.now(UTC).astimezone(SHANGHAI) + timedelta(days=1)).date()
    at_rate: dict[str, dict[str, Any]] = {}
    with (
        workspace() as workdir,
        servers(workdir) as (owner, redis_url, embedded),
        database(owner) as owner_url,
    ):
        settings = bench_settings(owner_url, workdir, redis_url=redis_url)
        tenant_id, key = asyncio.run(prepare(settings))
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = process_env(settings, base)
        print(f"  set up in {time.monotonic() - began:.1f} s")
        with app_server(env, port, workdir / "server.log"):
            rounds, next_n = asyncio.run(throughput(base, key, day, 0))
            print("  (a) done; starting the worker for (b)")
            asyncio.run(forget_backlog(owner_url))
            with worker_process(env, workdir / "worker.log"):
                for rate in RATES:
                    since = datetime.now(UTC)
                    latencies, errors, achieved = asyncio.run(paced(base, key, day, next_n, rate))
                    sent = time.monotonic()
                    next_n += len(latencies)
                    delays, to_sms, undecided, outcomes = asyncio.run(
                        dispatch_delays(settings, tenant_id, since)
                    )
                    at_rate[f"{rate:g}"] = summary(
                        latencies, errors, achieved, delays, to_sms, undecided, outcomes
                    )
                    at_rate[f"{rate:g}"]["backlog_cleared_after_s"] = asyncio.run(
                        backlog_cleared(owner_url, since, sent)
                    )
                    at_rate[f"{rate:g}"]["outbox_events"] = asyncio.run(
                        events_since(owner_url, since)
                    )
                    print(f"  (b) {rate:g}/s done")

    median = statistics.median(r.per_second for r in rounds)
    results: dict[str, Any] = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": ".venv/bin/python bench/pickup_booking.py",
        "machine": machine(load_before),
        "setup": {
            "servers": "embedded PostgreSQL and Redis" if embedded else "DATABASE_URL / REDIS_URL",
            "app": "depotline serve: uvicorn, 1 worker, 127.0.0.1",
            "worker": "depotline worker (outbox relay every second), phase (b) only",
            "client": f"httpx.AsyncClient, {CONCURRENCY} concurrent requests in (a)",
            "rounds": ROUNDS,
            "bookings_per_round": BOOKINGS_PER_ROUND,
            "warmup_bookings": WARMUP,
            "paced_rates_per_second": list(RATES),
            "paced_seconds": PACED_SECONDS,
        },
        "bookings_accepted": {
            "median_per_second": median,
            "min_per_second": min(r.per_second for r in rounds),
            "max_per_second": max(r.per_second for r in rounds),
            "errors": sum(r.errors for r in rounds),
            "rounds": [r.__dict__ for r in rounds],
        },
        "at_rate": at_rate,
    }
    p50 = statistics.median(r.p50_ms for r in rounds)
    p99 = statistics.median(r.p99_ms for r in rounds)
    lines = [
        ("(a) bookings accepted, median/s", f"{median:.1f}"),
        ("(a) per round/s", ", ".join(str(r.per_second) for r in rounds)),
        ("(a) answer p50 / p99 ms", f"{p50} / {p99}"),
    ]
    for shown, found in at_rate.items():
        lines += [
            (f"(b) {shown}/s: achieved/s", str(found["achieved_per_second"])),
            (
                f"(b) {shown}/s: answer p50 / p99 ms",
                f"{found['answer_p50_ms']} / {found['answer_p99_ms']}",
            ),
            (
                f"(b) {shown}/s: to dispatch p50 / p99 ms",
                f"{found['booking_to_dispatch_p50_ms']} / {found['booking_to_dispatch_p99_ms']}",
            ),
            (
                f"(b) {shown}/s: to depot SMS p50 / p99 ms",
                f"{found['booking_to_depot_sms_p50_ms']} / {found['booking_to_depot_sms_p99_ms']}",
            ),
            (
                f"(b) {shown}/s: every event handled after s",
                str(found["backlog_cleared_after_s"]),
            ),
            (
                f"(b) {shown}/s: errors, undecided",
                f"{found['errors']}, {found['undecided_after_wait']}",
            ),
        ]
    print()
    for label, value in lines:
        print(f"| {label:<38} | {value:>20} |")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    CHART.write_text(chart(at_rate, results))
    print(
        f"\nwrote {RESULTS.relative_to(ROOT)} and {CHART.relative_to(ROOT)} "
        f"in {time.monotonic() - began:.0f} s"
    )
    failed = sum(r.errors for r in rounds) + sum(
        f["errors"] + f["undecided_after_wait"] for f in at_rate.values()
    )
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
