"""Service level of a queue routed by the real routing code, against Erlang C, in one run.

    .venv/bin/python bench/service_level.py

One queue of AGENTS agents, Poisson arrivals and exponential handling times (mean AHT_SECONDS),
the arrival rate chosen so that Erlang C predicts exactly TARGET_SERVICE_LEVEL of the calls
answered within THRESHOLD_SECONDS. The queue is simulated on a simulated clock: events are taken
in simulated time order, and every state change is made by the real `contact_center.service`
functions against a real database (`enqueue` when a call arrives, `accept` the moment it is
offered, `agent_hangs_up` and `wrap_up_done` when it ends: wrap-up 0). `contact_center.service`
reads its clock through a module-level `utcnow`, which is patched to return the simulated time,
so every timestamp the service writes (queued, offered, answered) is simulated time.

One simulated hour of a queue is far too noisy to compare with a prediction (single hours range
over tens of percentage points), so the run simulates REPLICAS independent shifts of SHIFT_HOURS
hours of the same queue, each in its own tenant with its own random numbers (fixed seed), each
after a WARMUP_SECONDS warm-up that is not counted. The waits are read back from the calls table.

Also replays the same random numbers through a plain first-come-first-served M/M/N model (no
database): the routing code should give every call exactly that wait.

Prints predicted and measured service level and their difference, writes
bench/results/service_level.json. Uses the embedded PostgreSQL in a temporary directory, or
DATABASE_URL (an owner URL; a database is created there and dropped afterwards). Bounded: a fixed
number of calls, and no new shift starts after BUDGET_SECONDS.
"""

from __future__ import annotations

import asyncio
import heapq
import json
import math
import os
import random
import statistics
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from unittest import mock
from uuid import UUID

from sqlmodel import col, select
from support import bench_settings, database, machine, server, workspace

from contact_center import service
from contact_center.models import AgentStatus, Call, Queue
from depotline.db import Database, tenant_scope
from depotline.observability import configure_logging
from tenant.models import Tenant, TenantKind, User

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "service_level.json"

SEED = 20261125
AGENTS = 5
AHT_SECONDS = 180.0
THRESHOLD_SECONDS = 20.0
TARGET_SERVICE_LEVEL = 0.80
TARGET_DIFFERENCE_PP = 2.0

REPLICAS = 56
SHIFT_HOURS = 8
WARMUP_SECONDS = 900.0
#: Shifts simulated at once (each in its own tenant, so they never wait for each other's lock).
CONCURRENCY = 4
BUDGET_SECONDS = 1200.0

#: Where simulated time starts; every shift starts at the same simulated moment.
EPOCH = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)


# -- Erlang C -----------------------------------------------------------------------------------
def erlang_c(agents: int, erlangs: float) -> float:
    """Probability that a call waits at all: Erlang C, from the Erlang B recursion."""
    if erlangs >= agents:
        return 1.0
    blocking = 1.0
    for k in range(1, agents + 1):
        blocking = erlangs * blocking / (k + erlangs * blocking)
    return agents * blocking / (agents - erlangs * (1 - blocking))


def predicted_service_level(agents: int, erlangs: float, aht: float, threshold: float) -> float:
    """P(wait <= t) = 1 - C(N, A) * exp(-(N - A) * t / AHT)."""
    if erlangs >= agents:
        return 0.0
    return 1 - erlang_c(agents, erlangs) * math.exp(-(agents - erlangs) * threshold / aht)


def predicted_mean_wait(agents: int, erlangs: float, aht: float) -> float:
    """Average speed of answer: C(N, A) * AHT / (N - A)."""
    return erlang_c(agents, erlangs) * aht / (agents - erlangs)


def arrival_rate_for(agents: int, aht: float, threshold: float, target: float) -> float:
    """Calls a second at which Erlang C predicts exactly `target` (bisection: the service level
    falls as the load rises)."""
    low, high = 0.0, agents / aht
    for _ in range(200):
        middle = (low + high) / 2
        if predicted_service_level(agents, middle * aht, aht, threshold) > target:
            low = middle
        else:
            high = middle
    return low


# -- the simulated clock ------------------------------------------------------------------------
#: Simulated seconds since EPOCH, per asyncio task (each shift runs in its own task).
simulated_seconds: ContextVar[float] = ContextVar("simulated_seconds", default=0.0)


def simulated_now() -> datetime:
    return EPOCH + timedelta(seconds=simulated_seconds.get())


@contextmanager
def simulated_clock() -> Iterator[None]:
    """`contact_center.service` takes every timestamp from its module-level `utcnow`."""
    with mock.patch.object(service, "utcnow", simulated_now):
        yield


# -- one shift ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Arrival:
    index: int


@dataclass(frozen=True)
class Departure:
    call_id: UUID
    agent_id: UUID


@dataclass
class Shift:
    number: int
    arrivals: list[float]  # simulated seconds
    handling: list[float]  # seconds, one per arrival
    tenant_id: UUID | None = None
    queue: Queue | None = None
    agents: list[UUID] = field(default_factory=list)
    transactions: int = 0


def draw_shift(number: int, rate: float) -> Shift:
    """Poisson arrivals over the warm-up and the shift, an exponential handling time each."""
    rng = random.Random(f"{SEED}-{number}")  # noqa: S311 (reproducible draws, not a secret)
    end = WARMUP_SECONDS + SHIFT_HOURS * 3600
    arrivals: list[float] = []
    t = rng.expovariate(rate)
    while t < end:
        arrivals.append(t)
        t += rng.expovariate(rate)
    handling = [rng.expovariate(1 / AHT_SECONDS) for _ in arrivals]
    return Shift(number, arrivals, handling)


def ideal_waits(shift: Shift) -> list[float]:
    """First come, first served with AGENTS servers: each call waits for the first free one."""
    free = [0.0] * AGENTS
    waits = []
    for arrived, handling in zip(shift.arrivals, shift.handling, strict=True):
        start = max(arrived, heapq.heappop(free))
        heapq.heappush(free, start + handling)
        waits.append(start - arrived)
    return waits


async def open_shift(db: Database, shift: Shift, run: str) -> None:
    """A tenant with one queue (wrap-up 0) and AGENTS agents, all ready at simulated 0."""
    simulated_seconds.set(0.0)
    async with db.session() as session:
        tenant = Tenant(
            slug=f"sl-{run}-{shift.number:03d}",
            name=f"Service level {shift.number:03d}",
            kind=TenantKind.CLIENT,
        )
        users = [
            User(email=f"agent{a:02d}@sl-{run}-{shift.number:03d}.bench.test", name=f"Agent {a}")
            for a in range(AGENTS)
        ]
        session.add_all([tenant, *users])
    shift.tenant_id, shift.agents = tenant.id, [user.id for user in users]
    with tenant_scope(tenant.id):
        async with db.session() as session:
            shift.queue = await service.create_queue(
                session, "Pickups", reservation_seconds=15, wrap_up_seconds=0
            )
            for user in users:
                await service.set_skill(session, user.id, shift.queue.id, 5)
                await service.agent_signs_in(session, user.id, tenant.id)
        async with db.session() as session:
            for user in users:
                await service.set_status(session, user.id, AgentStatus.READY)


async def run_shift(db: Database, shift: Shift) -> None:
    """Every event in simulated time order; each simulated moment is one transaction."""
    assert shift.tenant_id is not None and shift.queue is not None
    queue = shift.queue
    events: list[tuple[float, int, Arrival | Departure]] = [
        (t, i, Arrival(i)) for i, t in enumerate(shift.arrivals)
    ]
    heapq.heapify(events)
    sequence = len(events)
    index_of: dict[UUID, int] = {}
    with tenant_scope(shift.tenant_id):
        while events:
            now, _, event = heapq.heappop(events)
            simulated_seconds.set(now)
            async with db.session() as session:
                if isinstance(event, Arrival):
                    call = Call(
                        provider="simulator",
                        provider_call_id=f"{shift.number}-{event.index}",
                        from_number=f"+86139{event.index:08d}",
                        to_number="+862088880001",
                        arrived_at=simulated_now(),
                    )
                    session.add(call)
                    await session.flush()
                    index_of[call.id] = event.index
                    offers = await service.enqueue(session, call, queue)
                else:
                    await service.agent_hangs_up(session, event.agent_id, event.call_id)
                    offers = await service.wrap_up_done(session, event.agent_id)
                # The agent accepts the moment the call is offered.
                for offer in offers:
                    await service.accept(session, offer.agent_id, offer.call_id)
                    handling = shift.handling[index_of[offer.call_id]]
                    departure = Departure(offer.call_id, offer.agent_id)
                    heapq.heappush(events, (now + handling, sequence, departure))
                    sequence += 1
            shift.transactions += 1


@dataclass
class Measured:
    number: int
    arrivals: list[float]  # simulated seconds, counted calls only
    waits: list[float]  # answered - queued, from the database
    ideal: list[float]  # the same calls in the plain M/M/N model


async def read_waits(db: Database, shift: Shift) -> Measured:
    assert shift.tenant_id is not None
    with tenant_scope(shift.tenant_id):
        async with db.session() as session:
            rows = (
                await session.exec(
                    select(Call.provider_call_id, Call.queued_at, Call.answered_at).where(
                        col(Call.answered_at).is_not(None)
                    )
                )
            ).all()
    answered: dict[int, float] = {}
    for provider_call_id, queued_at, answered_at in rows:
        assert queued_at is not None and answered_at is not None
        answered[int(provider_call_id.split("-")[1])] = (answered_at - queued_at).total_seconds()
    if len(answered) != len(shift.arrivals):
        raise RuntimeError(f"{len(shift.arrivals) - len(answered)} calls were never answered")
    ideal = ideal_waits(shift)
    counted = [i for i, t in enumerate(shift.arrivals) if t >= WARMUP_SECONDS]
    return Measured(
        shift.number,
        [shift.arrivals[i] for i in counted],
        [answered[i] for i in counted],
        [ideal[i] for i in counted],
    )


async def simulate(app_url: str, shifts: list[Shift], deadline: float) -> list[Measured]:
    db = Database(app_url, pool_size=CONCURRENCY)
    gate = asyncio.Semaphore(CONCURRENCY)
    run = uuid.uuid4().hex[:6]
    measured: list[Measured] = []
    skipped = 0
    began = time.monotonic()

    async def one(shift: Shift) -> None:
        nonlocal skipped
        async with gate:
            if time.monotonic() > deadline:
                skipped += 1
                return
            await open_shift(db, shift, run)
            await run_shift(db, shift)
            measured.append(await read_waits(db, shift))
            elapsed = time.monotonic() - began
            transactions = sum(s.transactions for s in shifts)
            print(
                f"  shift {shift.number + 1:>3}: {len(shift.arrivals):>5} calls "
                f"({len(measured)}/{len(shifts)} done, {elapsed:6.1f} s, "
                f"{transactions / elapsed:.0f} transactions/s)"
            )

    try:
        with simulated_clock():
            await asyncio.gather(*(asyncio.create_task(one(shift)) for shift in shifts))
    finally:
        await db.dispose()
    if skipped:
        print(f"  (time budget reached: {skipped} shifts not simulated)")
    return sorted(measured, key=lambda m: m.number)


# -- the database -------------------------------------------------------------------------------


# -- the run ------------------------------------------------------------------------------------
def share_within(waits: list[float]) -> float:
    return sum(w <= THRESHOLD_SECONDS for w in waits) / len(waits) if waits else math.nan


def main() -> int:
    began = time.monotonic()
    rate = arrival_rate_for(AGENTS, AHT_SECONDS, THRESHOLD_SECONDS, TARGET_SERVICE_LEVEL)
    erlangs = rate * AHT_SECONDS
    predicted = predicted_service_level(AGENTS, erlangs, AHT_SECONDS, THRESHOLD_SECONDS)
    mean_wait = predicted_mean_wait(AGENTS, erlangs, AHT_SECONDS)
    shifts = [draw_shift(number, rate) for number in range(REPLICAS)]
    total_calls = sum(len(s.arrivals) for s in shifts)
    load_before = os.getloadavg()
    configure_logging("WARNING", "console")
    print(
        f"Depotline service level: {AGENTS} agents, AHT {AHT_SECONDS:g} s, "
        f"{rate * 3600:.1f} calls/hour ({erlangs:.2f} erlangs, occupancy {erlangs / AGENTS:.1%})"
    )
    print(
        f"  Erlang C: P(wait > 0) = {erlang_c(AGENTS, erlangs):.1%}, "
        f"answered within {THRESHOLD_SECONDS:g} s = {predicted:.2%}"
    )
    print(
        f"  {REPLICAS} shifts of {SHIFT_HOURS} h (+{WARMUP_SECONDS / 60:g} min warm-up), "
        f"{total_calls} calls, {CONCURRENCY} shifts at a time"
    )
    with (
        workspace() as workdir,
        server(workdir) as (owner, embedded),
        database(owner) as owner_url,
    ):
        settings = bench_settings(owner_url, workdir)
        measured = asyncio.run(simulate(settings.app_url, shifts, began + BUDGET_SECONDS))
    seconds = time.monotonic() - began

    waits = [w for m in measured for w in m.waits]
    ideal = [w for m in measured for w in m.ideal]
    service_level = share_within(waits)
    ideal_level = share_within(ideal)
    difference_pp = (service_level - predicted) * 100
    per_shift = [share_within(m.waits) for m in measured]
    standard_error_pp = (
        statistics.stdev(per_shift) / math.sqrt(len(per_shift)) * 100
        if len(per_shift) > 1
        else math.nan
    )
    hourly: list[float] = []
    for m in measured:
        for hour in range(SHIFT_HOURS):
            start = WARMUP_SECONDS + hour * 3600
            in_hour = [
                w for t, w in zip(m.arrivals, m.waits, strict=True) if start <= t < start + 3600
            ]
            if in_hour:
                hourly.append(share_within(in_hour))
    deviation = max((abs(a - b) for a, b in zip(waits, ideal, strict=True)), default=0.0)
    disagree = sum(
        (a <= THRESHOLD_SECONDS) != (b <= THRESHOLD_SECONDS)
        for a, b in zip(waits, ideal, strict=True)
    )
    transactions = sum(s.transactions for s in shifts)
    met = abs(difference_pp) <= TARGET_DIFFERENCE_PP
    simulated_hours = len(measured) * SHIFT_HOURS

    print()
    print(f"{'':<44} {'answered within 20 s':>20}")
    print(f"{'predicted (Erlang C)':<44} {predicted:>20.2%}")
    print(f"{'measured (real routing code and database)':<44} {service_level:>20.2%}")
    print(f"{'plain FCFS M/M/N model, same random numbers':<44} {ideal_level:>20.2%}")
    print(
        f"\nmeasured - predicted = {difference_pp:+.2f} pp (target within "
        f"±{TARGET_DIFFERENCE_PP:g} pp: {'met' if met else 'NOT met'}); standard error of the "
        f"measurement ±{standard_error_pp:.2f} pp over {len(measured)} shifts"
    )
    print(
        f"{len(waits)} calls counted over {simulated_hours} simulated hours; mean wait "
        f"{statistics.fmean(waits):.1f} s (Erlang C: {mean_wait:.1f} s); single simulated hours "
        "ranged "
        f"{min(hourly):.0%}–{max(hourly):.0%} (sd {statistics.stdev(hourly) * 100:.1f} pp)"
    )
    print(
        f"routing code vs FCFS model: largest difference in a call's wait {deviation * 1000:.3f} "
        f"ms, {disagree} calls on the other side of 20 s"
    )
    print(f"{transactions} transactions in {seconds:.0f} s ({transactions / seconds:.0f}/s)")

    results = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": ".venv/bin/python bench/service_level.py",
        "machine": machine(load_before),
        "setup": {
            "server": "embedded PostgreSQL" if embedded else "DATABASE_URL",
            "agents": AGENTS,
            "aht_seconds": AHT_SECONDS,
            "threshold_seconds": THRESHOLD_SECONDS,
            "target_service_level": TARGET_SERVICE_LEVEL,
            "arrivals_per_hour": round(rate * 3600, 3),
            "erlangs": round(erlangs, 4),
            "occupancy": round(erlangs / AGENTS, 4),
            "wrap_up_seconds": 0,
            "shifts": REPLICAS,
            "shift_hours": SHIFT_HOURS,
            "warmup_seconds": WARMUP_SECONDS,
            "concurrency": CONCURRENCY,
            "seed": SEED,
            "strategy": "longest_idle",
            "clock": "contact_center.service.utcnow patched to simulated time",
            "transactions": "one per simulated moment: enqueue (+accept), or "
            "agent_hangs_up + wrap_up_done (+accept)",
        },
        "predicted": {
            "erlang_c_probability_of_waiting": round(erlang_c(AGENTS, erlangs), 5),
            "service_level": round(predicted, 5),
            "mean_wait_seconds": round(mean_wait, 3),
        },
        "measured": {
            "shifts_simulated": len(measured),
            "simulated_hours": simulated_hours,
            "calls": len(waits),
            "service_level": round(service_level, 5),
            "difference_pp": round(difference_pp, 3),
            "standard_error_pp": round(standard_error_pp, 3),
            "mean_wait_seconds": round(statistics.fmean(waits), 3),
            "p90_wait_seconds": round(sorted(waits)[int(0.9 * len(waits))], 3),
            "per_shift_service_level": [round(x, 4) for x in per_shift],
            "single_hour_service_level": {
                "min": round(min(hourly), 4),
                "max": round(max(hourly), 4),
                "sd_pp": round(statistics.stdev(hourly) * 100, 2),
            },
        },
        "fcfs_model_same_draws": {
            "service_level": round(ideal_level, 5),
            "largest_wait_difference_ms": round(deviation * 1000, 4),
            "calls_classified_differently": disagree,
        },
        "target_difference_pp": TARGET_DIFFERENCE_PP,
        "target_met": met,
        "transactions": transactions,
        "seconds": round(seconds, 1),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    temporary = RESULTS.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(results, indent=2) + "\n")
    temporary.replace(RESULTS)
    print(f"wrote {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
