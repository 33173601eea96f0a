"""Routing latency on this machine, in one run.

    .venv/bin/python bench/routing.py

Builds a floor of 20 tenants, 100 queues (5 a tenant, one per strategy and a second
longest-idle one) and 1,000 signed-in agents (50 a tenant, each with 1-3 skills at levels 1-10)
in a fresh database of its own, then measures with the real `contact_center.service` code:

(a) the routing decision: `service.enqueue` of one call while agents are ready (the call is
    offered at once, in that transaction), timed from the call to `enqueue` to the commit
    returning: an agent picked and reserved for the call, durably. 2,000 calls, one at a time,
    spread over the tenants, and again 1,000 calls with CONCURRENCY callers at once. Target:
    p99 < 10 ms.
(b) an agent becoming ready while calls wait: `service.set_status(READY)` offers the agent a
    waiting call in the same transaction. Measured from the call to the commit, and separately
    from the commit to the moment another process, polling on its own connection, sees the call
    OFFERED. 1,000 agents made ready, one at a time, with 5 calls waiting a tenant; then 300
    more with 25 waiting. Target: p99 < 50 ms.

Uses the embedded PostgreSQL in a temporary directory, or DATABASE_URL (an owner URL; a database
is created on that server and dropped afterwards). Prints a table, writes
bench/results/routing.json and bench/results/routing.svg. Bounded: fixed numbers of calls, and no
phase goes on past its time budget.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import statistics
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import NullPool
from support import Bar, bench_settings, database, latency_chart, machine, server, workspace

from contact_center import service
from contact_center.models import AgentStatus, Call, Queue, Strategy
from depotline.db import Database, tenant_scope
from depotline.observability import configure_logging
from tenant.models import Membership, Role, Tenant, TenantKind, User

SCRIPT = Path(__file__).resolve()
ROOT = SCRIPT.parents[1]
RESULTS = ROOT / "bench" / "results" / "routing.json"
CHART = ROOT / "bench" / "results" / "routing.svg"

SEED = 20261125
TENANTS = 20
AGENTS_PER_TENANT = 50
#: One queue per strategy, and a second longest-idle queue (the default strategy).
STRATEGIES = [
    Strategy.LONGEST_IDLE,
    Strategy.ROUND_ROBIN,
    Strategy.LEAST_TALK,
    Strategy.SKILL_FIRST,
    Strategy.LONGEST_IDLE,
]
WARMUP_CALLS = 100
CALLS = 2000
CONCURRENT_CALLS = 1000
CONCURRENCY = 4
READY_SAMPLES = 1000
WARMUP_READY = 50
#: Calls waiting in each queue while agents become ready (5 a tenant) ...
BACKLOG_PER_QUEUE = 1
#: ... and, for a smaller second series, a longer line (25 a tenant).
DEEP_BACKLOG_PER_QUEUE = 5
DEEP_SAMPLES = 300
#: The observer's pause between two looks at the call: the resolution of "commit to seen".
POLL_SECONDS = 0.001
#: Each phase stops early (and says so) if it runs longer than this.
PHASE_BUDGET_SECONDS = 150.0

DECISION_TARGET_MS = 10.0
READY_TARGET_MS = 50.0


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


@contextmanager
def machine_busy(into: dict[str, float | None]) -> Iterator[None]:
    """Share of the machine's CPU time that was busy during the block (all processes)."""
    before = _busy_jiffies()
    try:
        yield
    finally:
        after = _busy_jiffies()
        busy = None
        if before and after and after[1] > before[1]:
            busy = round((after[0] - before[0]) / (after[1] - before[1]), 3)
        into["machine_busy"] = busy


# -- statistics ---------------------------------------------------------------------------------
def percentile(values: Sequence[float], share: float) -> float:
    """Nearest rank: the smallest value with at least `share` of the values at or below it."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def summary(values_ms: Sequence[float]) -> dict[str, Any]:
    return {
        "n": len(values_ms),
        "p50_ms": round(percentile(values_ms, 0.50), 2),
        "p90_ms": round(percentile(values_ms, 0.90), 2),
        "p99_ms": round(percentile(values_ms, 0.99), 2),
        "max_ms": round(max(values_ms), 2) if values_ms else None,
        "mean_ms": round(statistics.fmean(values_ms), 2) if values_ms else None,
    }


def ms(start_ns: int, end_ns: int) -> float:
    return (end_ns - start_ns) / 1e6


def now_ns() -> int:
    # CLOCK_MONOTONIC is one clock for every process on the machine: the observer's readings
    # and ours can be subtracted.
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


# -- the database -------------------------------------------------------------------------------


# -- the floor ----------------------------------------------------------------------------------
@dataclass
class Floor:
    """One tenant's queues and agents."""

    tenant_id: UUID
    queues: list[Queue]
    agents: list[UUID]
    skills: dict[UUID, set[UUID]] = field(default_factory=dict)  # agent -> queue ids
    #: Calls waiting in phase (b), oldest first: (call id, queue id).
    backlog: list[tuple[UUID, UUID]] = field(default_factory=list)


async def build_floor(db: Database, rng: random.Random) -> list[Floor]:
    run = uuid.uuid4().hex[:6]
    async with db.session() as session:  # platform tables: no tenant scope
        tenants = [
            Tenant(
                slug=f"bench-{run}-{t:02d}", name=f"Bench Logistics {t:02d}", kind=TenantKind.CLIENT
            )
            for t in range(TENANTS)
        ]
        session.add_all(tenants)
        await session.flush()
        users = {
            tenant.id: [
                User(email=f"agent{a:02d}@{tenant.slug}.bench.test", name=f"Agent {a:02d}")
                for a in range(AGENTS_PER_TENANT)
            ]
            for tenant in tenants
        }
        session.add_all([user for group in users.values() for user in group])
        await session.flush()
    floors: list[Floor] = []
    for tenant in tenants:
        with tenant_scope(tenant.id):
            async with db.session() as session:
                queues = [
                    await service.create_queue(
                        session, f"Queue {q + 1}", strategy=strategy, reservation_seconds=15
                    )
                    for q, strategy in enumerate(STRATEGIES)
                ]
                floor = Floor(tenant.id, queues, [user.id for user in users[tenant.id]])
                for a, user_id in enumerate(floor.agents):
                    session.add(Membership(user_id=user_id, role=Role.AGENT))
                    # A home queue (so every queue has 10 agents) and up to two more.
                    home = queues[a % len(queues)]
                    others = [q for q in queues if q.id != home.id]
                    chosen = [home, *rng.sample(others, rng.randint(0, 2))]
                    for queue in chosen:
                        await service.set_skill(session, user_id, queue.id, rng.randint(1, 10))
                    floor.skills[user_id] = {queue.id for queue in chosen}
                    await service.agent_signs_in(session, user_id, tenant.id)
            async with db.session() as session:
                for user_id in floor.agents:
                    await service.set_status(session, user_id, AgentStatus.READY)
        floors.append(floor)
    return floors


def new_call() -> Call:
    return Call(
        provider="bench",
        provider_call_id=uuid.uuid4().hex,
        from_number=f"+86139{random.randrange(10**8):08d}",  # noqa: S311 (not a secret)
        to_number="+862088880001",
    )


async def finish(db: Database, floor: Floor, agent_id: UUID, call_id: UUID, ready: bool) -> None:
    """Untimed: the agent answers and hangs up; then ready again (wrap-up over) or not ready."""
    with tenant_scope(floor.tenant_id):
        async with db.session() as session:
            await service.accept(session, agent_id, call_id)
            await service.agent_hangs_up(session, agent_id, call_id)
            if ready:
                offers = await service.wrap_up_done(session, agent_id)
                assert not offers, "nothing should be waiting in phase (a)"
            else:
                await service.set_status(session, agent_id, AgentStatus.NOT_READY, "bench")


# -- (a) the routing decision -------------------------------------------------------------------
@dataclass
class Decision:
    strategy: str
    decision_ms: float  # service.enqueue called .. its transaction committed: the decision
    enqueue_ms: float  # service.enqueue called .. returned (the offer made, not yet committed)
    transaction_ms: float  # insert the call, enqueue, commit
    lock_ms: float  # of decision_ms: the statement taking the tenant's routing lock


#: The routing-lock statements' durations (ns) in the current decision, while one is timed.
_lock_statements: ContextVar[list[int] | None] = ContextVar("lock_statements", default=None)


def time_routing_locks(db: Database) -> None:
    """Time every `pg_advisory_xact_lock` statement (its round trip and any wait for another
    transaction of the same tenant), to tell waiting for the lock from the decision itself."""

    @event.listens_for(db.engine.sync_engine, "before_cursor_execute")
    def _asked(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "pg_advisory_xact_lock(" in statement:
            conn.info["lock_asked_ns"] = now_ns()

    @event.listens_for(db.engine.sync_engine, "after_cursor_execute")
    def _got(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        asked = conn.info.pop("lock_asked_ns", None)
        timed = _lock_statements.get()
        if asked is not None and timed is not None:
            timed.append(now_ns() - asked)


async def decide(db: Database, floor: Floor, queue: Queue) -> Decision:
    """One call into `queue`, routed at once to a ready agent; then the agent finishes it."""
    with tenant_scope(floor.tenant_id):
        began = now_ns()
        async with db.session() as session:
            call = new_call()
            session.add(call)
            await session.flush()
            locks: list[int] = []
            token = _lock_statements.set(locks)
            start = now_ns()
            offers = await service.enqueue(session, call, queue)
            decided = now_ns()
        committed = now_ns()
        _lock_statements.reset(token)
    if len(offers) != 1 or offers[0].call_id != call.id:
        raise RuntimeError(f"expected the call offered at once, got {offers}")
    await finish(db, floor, offers[0].agent_id, call.id, ready=True)
    return Decision(
        str(queue.strategy),
        ms(start, committed),
        ms(start, decided),
        ms(began, committed),
        sum(locks) / 1e6,
    )


def call_plan(floors: list[Floor], count: int, rng: random.Random) -> list[tuple[Floor, Queue]]:
    """`count` calls spread evenly over the tenants (shuffled), each into a random queue."""
    plan = [floors[i % len(floors)] for i in range(count)]
    rng.shuffle(plan)
    return [(floor, rng.choice(floor.queues)) for floor in plan]


async def decisions_one_at_a_time(
    db: Database, plan: list[tuple[Floor, Queue]], deadline: float
) -> list[Decision]:
    results: list[Decision] = []
    for floor, queue in plan:
        if time.monotonic() > deadline:
            print(f"  (time budget reached after {len(results)} calls)")
            break
        results.append(await decide(db, floor, queue))
    return results


async def decisions_concurrent(
    db: Database, plan: list[tuple[Floor, Queue]], deadline: float
) -> list[Decision]:
    """CONCURRENCY callers at once; two of them on one tenant wait for its routing lock."""
    results: list[Decision] = []
    work = iter(plan)

    async def caller() -> None:
        for floor, queue in work:
            if time.monotonic() > deadline:
                return
            results.append(await decide(db, floor, queue))

    await asyncio.gather(*(caller() for _ in range(CONCURRENCY)))
    if len(results) < len(plan):
        print(f"  (time budget reached after {len(results)} calls)")
    return results


# -- (b) ready to offer -------------------------------------------------------------------------
@dataclass
class ReadyToOffer:
    call_to_commit_ms: float  # set_status(READY) called .. its transaction committed
    call_to_decision_ms: float  # set_status(READY) called .. it returned the offer
    commit_to_seen_ms: float  # commit returned .. the observer's query returned OFFERED
    call_to_seen_ms: float  # set_status(READY) called .. the observer saw OFFERED
    poll_gap_ms: float  # the observer's last look that missed .. the look that saw it
    waiting_calls: int


class Observer:
    """Another process, on its own connection as the app role, that looks at one call every
    POLL_SECONDS and reports (in CLOCK_MONOTONIC ns) when it first sees it OFFERED."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def start(cls, app_url: str) -> Observer:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(SCRIPT),
            "--observe",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=ROOT,
        )
        observer = cls(process)
        await observer.send({"url": app_url})  # on stdin, not argv: it may carry a password
        reply = await observer.receive()
        if not reply.get("connected"):
            raise RuntimeError(f"observer failed: {reply}")
        return observer

    async def send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write((json.dumps(message) + "\n").encode())
        await self.process.stdin.drain()

    async def receive(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), timeout=30)
        if not line:
            raise RuntimeError("the observer exited")
        reply: dict[str, Any] = json.loads(line)
        return reply

    async def watch(self, tenant_id: UUID, call_id: UUID) -> None:
        await self.send({"tenant": str(tenant_id), "call": str(call_id)})
        reply = await self.receive()
        if reply.get("status") != "queued":
            raise RuntimeError(f"the call should still be waiting: {reply}")

    async def stop(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            await asyncio.wait_for(self.process.wait(), timeout=10)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()


async def enqueue_waiting(db: Database, floor: Floor, queue: Queue) -> UUID:
    """A call into `queue` that nobody can take yet: it waits."""
    with tenant_scope(floor.tenant_id):
        async with db.session() as session:
            call = new_call()
            session.add(call)
            await session.flush()
            offers = await service.enqueue(session, call, queue)
    if offers:
        raise RuntimeError("nobody should be ready in phase (b)")
    floor.backlog.append((call.id, queue.id))
    return call.id


async def prepare_ready_phase(db: Database, floors: list[Floor]) -> None:
    """Every agent not ready, and BACKLOG_PER_QUEUE calls waiting in every queue."""
    for floor in floors:
        with tenant_scope(floor.tenant_id):
            async with db.session() as session:
                for user_id in floor.agents:
                    await service.set_status(session, user_id, AgentStatus.NOT_READY, "bench")
        await add_backlog(db, floor, BACKLOG_PER_QUEUE)


async def add_backlog(db: Database, floor: Floor, per_queue: int) -> None:
    for _ in range(per_queue):
        for queue in floor.queues:
            await enqueue_waiting(db, floor, queue)


async def ready_once(
    db: Database, observer: Observer, floor: Floor, agent_id: UUID
) -> ReadyToOffer:
    # The call routing must pick: the oldest waiting call in one of the agent's queues.
    call_id, queue_id = next((c, q) for c, q in floor.backlog if q in floor.skills[agent_id])
    waiting = len(floor.backlog)
    await observer.watch(floor.tenant_id, call_id)
    with tenant_scope(floor.tenant_id):
        start = now_ns()
        async with db.session() as session:
            offers = await service.set_status(session, agent_id, AgentStatus.READY)
            decided = now_ns()
        committed = now_ns()
    seen = await observer.receive()
    if [(o.call_id, o.agent_id) for o in offers] != [(call_id, agent_id)]:
        raise RuntimeError(f"expected {call_id} offered to {agent_id}, got {offers}")
    if seen.get("seen_ns") is None:
        raise RuntimeError(f"the observer never saw the call offered: {seen}")
    floor.backlog.remove((call_id, queue_id))
    await finish(db, floor, agent_id, call_id, ready=False)
    queue = next(q for q in floor.queues if q.id == queue_id)
    await enqueue_waiting(db, floor, queue)  # the line stays as long
    return ReadyToOffer(
        call_to_commit_ms=ms(start, committed),
        call_to_decision_ms=ms(start, decided),
        commit_to_seen_ms=ms(committed, seen["seen_ns"]),
        call_to_seen_ms=ms(start, seen["seen_ns"]),
        poll_gap_ms=ms(seen["missed_ns"], seen["seen_ns"]),
        waiting_calls=waiting,
    )


async def ready_samples(
    db: Database,
    observer: Observer,
    floors: list[Floor],
    rng: random.Random,
    count: int,
    deadline: float,
) -> list[ReadyToOffer]:
    results: list[ReadyToOffer] = []
    order = [floors[i % len(floors)] for i in range(count)]
    rng.shuffle(order)
    for floor in order:
        if time.monotonic() > deadline:
            print(f"  (time budget reached after {len(results)} agents)")
            break
        results.append(await ready_once(db, observer, floor, rng.choice(floor.agents)))
    return results


# -- the observer process -----------------------------------------------------------------------
async def observe() -> None:
    """`routing.py --observe`: one JSON line in, one or two out, until stdin closes."""

    async def read() -> dict[str, Any] | None:
        line = await asyncio.to_thread(sys.stdin.readline)
        message: dict[str, Any] | None = json.loads(line) if line.strip() else None
        return message

    def reply(message: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()

    async def status(conn: AsyncConnection, call_id: str) -> str | None:
        result = await conn.execute(
            text("select status from calls where id = :id"), {"id": call_id}
        )
        value = result.scalar_one_or_none()
        return str(value) if value is not None else None

    first = await read()
    assert first is not None
    engine = create_async_engine(first["url"], poolclass=NullPool)
    try:
        async with engine.connect() as raw:
            conn = await raw.execution_options(isolation_level="AUTOCOMMIT")
            reply({"connected": True})
            while (request := await read()) is not None:
                # Row-level security: this connection sees the one tenant, as the app would.
                await conn.execute(
                    text("select set_config('app.tenant_id', :t, false)"),
                    {"t": request["tenant"]},
                )
                missed = now_ns()
                reply({"status": await status(conn, request["call"])})
                seen: int | None = None
                deadline = missed + 10 * 10**9
                while seen is None and now_ns() < deadline:
                    await asyncio.sleep(POLL_SECONDS)
                    asked = now_ns()
                    if await status(conn, request["call"]) == "offered":
                        seen = now_ns()
                    else:
                        missed = asked
                reply({"seen_ns": seen, "missed_ns": missed})
    finally:
        await engine.dispose()


def ready_summary(samples: list[ReadyToOffer]) -> dict[str, Any]:
    return {
        "call_to_decision": summary([r.call_to_decision_ms for r in samples]),
        "call_to_commit": summary([r.call_to_commit_ms for r in samples]),
        "commit_to_seen": summary([r.commit_to_seen_ms for r in samples]),
        "call_to_seen": summary([r.call_to_seen_ms for r in samples]),
        "observer_poll_gap": summary([r.poll_gap_ms for r in samples]),
    }


# -- output -------------------------------------------------------------------------------------
@dataclass
class Row:
    label: str
    values_ms: list[float]
    target_ms: float | None
    colour: str

    @property
    def p50(self) -> float:
        return percentile(self.values_ms, 0.5)

    @property
    def p99(self) -> float:
        return percentile(self.values_ms, 0.99)


def table(rows: list[Row]) -> str:
    lines = [
        f"{'what':<44} {'n':>5} {'p50 ms':>7} {'p90 ms':>7} {'p99 ms':>7} {'max ms':>7}"
        f" {'target':>8}  met",
    ]
    for row in rows:
        s = summary(row.values_ms)
        target = f"<{row.target_ms:g}" if row.target_ms is not None else "-"
        met = "-" if row.target_ms is None else ("yes" if row.p99 < row.target_ms else "NO")
        lines.append(
            f"{row.label:<44} {s['n']:>5} {s['p50_ms']:>7.2f} {s['p90_ms']:>7.2f}"
            f" {s['p99_ms']:>7.2f} {s['max_ms']:>7.2f} {target:>8}  {met}"
        )
    return "\n".join(lines)


# -- the run ------------------------------------------------------------------------------------
async def measure(app_url: str) -> dict[str, Any]:
    rng = random.Random(SEED)  # noqa: S311 (a reproducible plan, not a secret)
    db = Database(app_url, pool_size=CONCURRENCY)
    time_routing_locks(db)
    phases: dict[str, dict[str, float | None]] = {
        "one_at_a_time": {},
        "concurrent": {},
        "ready": {},
        "ready_deep": {},
    }
    try:
        began = time.monotonic()
        floors = await build_floor(db, rng)
        print(
            f"  floor built in {time.monotonic() - began:.1f} s: {TENANTS} tenants, "
            f"{TENANTS * len(STRATEGIES)} queues, {TENANTS * AGENTS_PER_TENANT} agents ready"
        )
        await decisions_one_at_a_time(db, call_plan(floors, WARMUP_CALLS, rng), math.inf)
        with machine_busy(phases["one_at_a_time"]):
            started = time.monotonic()
            one = await decisions_one_at_a_time(
                db, call_plan(floors, CALLS, rng), started + PHASE_BUDGET_SECONDS
            )
            phases["one_at_a_time"]["seconds"] = round(time.monotonic() - started, 1)
        print(f"  (a) {len(one)} calls routed one at a time")
        with machine_busy(phases["concurrent"]):
            started = time.monotonic()
            many = await decisions_concurrent(
                db, call_plan(floors, CONCURRENT_CALLS, rng), started + PHASE_BUDGET_SECONDS
            )
            phases["concurrent"]["seconds"] = round(time.monotonic() - started, 1)
        print(f"  (a) {len(many)} calls routed, {CONCURRENCY} at a time")
        await prepare_ready_phase(db, floors)
        observer = await Observer.start(app_url)
        try:
            await ready_samples(db, observer, floors, rng, WARMUP_READY, time.monotonic() + 30)
            with machine_busy(phases["ready"]):
                started = time.monotonic()
                ready = await ready_samples(
                    db, observer, floors, rng, READY_SAMPLES, started + PHASE_BUDGET_SECONDS
                )
                phases["ready"]["seconds"] = round(time.monotonic() - started, 1)
            print(
                f"  (b) {len(ready)} agents made ready, {BACKLOG_PER_QUEUE} call(s) waiting a queue"
            )
            for floor in floors:
                await add_backlog(db, floor, DEEP_BACKLOG_PER_QUEUE - BACKLOG_PER_QUEUE)
            with machine_busy(phases["ready_deep"]):
                started = time.monotonic()
                deep = await ready_samples(
                    db, observer, floors, rng, DEEP_SAMPLES, started + PHASE_BUDGET_SECONDS
                )
                phases["ready_deep"]["seconds"] = round(time.monotonic() - started, 1)
            print(
                f"  (b) {len(deep)} agents made ready, "
                f"{DEEP_BACKLOG_PER_QUEUE} calls waiting a queue"
            )
        finally:
            await observer.stop()
    finally:
        await db.dispose()
    return {"one": one, "many": many, "ready": ready, "deep": deep, "phases": phases}


def main() -> int:
    if sys.argv[1:] == ["--observe"]:
        asyncio.run(observe())
        return 0
    began = time.monotonic()
    load_before = os.getloadavg()
    configure_logging("WARNING", "console")
    print(f"Depotline routing benchmark ({os.cpu_count()} CPUs, load {load_before[0]:.2f})")
    with (
        workspace() as workdir,
        server(workdir) as (owner, embedded),
        database(owner) as owner_url,
    ):
        settings = bench_settings(owner_url, workdir)
        measured = asyncio.run(measure(settings.app_url))

    one: list[Decision] = measured["one"]
    many: list[Decision] = measured["many"]
    ready: list[ReadyToOffer] = measured["ready"]
    deep: list[ReadyToOffer] = measured["deep"]
    waiting = BACKLOG_PER_QUEUE * len(STRATEGIES)
    deep_waiting = DEEP_BACKLOG_PER_QUEUE * len(STRATEGIES)
    rows = {
        "decision": Row(
            "(a) enqueue → offer committed, 1 at a time",
            [d.decision_ms for d in one],
            DECISION_TARGET_MS,
            "#2f6fde",
        ),
        "decision_uncommitted": Row(
            "(a) enqueue → returned (before commit)",
            [d.enqueue_ms for d in one],
            None,
            "#9ab4ea",
        ),
        "decision_transaction": Row(
            "(a) whole transaction, 1 at a time",
            [d.transaction_ms for d in one],
            None,
            "#7d9fe0",
        ),
        "decision_concurrent": Row(
            f"(a) enqueue → offer committed, {CONCURRENCY} at a time",
            [d.decision_ms for d in many],
            DECISION_TARGET_MS,
            "#5b3fc4",
        ),
        "ready_commit": Row(
            f"(b) READY → commit, {waiting} waiting",
            [r.call_to_commit_ms for r in ready],
            READY_TARGET_MS,
            "#1f9d6b",
        ),
        "ready_visible": Row(
            "(b) commit → other process sees OFFERED",
            [r.commit_to_seen_ms for r in ready],
            None,
            "#8fbf3f",
        ),
        "ready_seen": Row(
            f"(b) READY → seen OFFERED, {waiting} waiting",
            [r.call_to_seen_ms for r in ready],
            READY_TARGET_MS,
            "#0f6b47",
        ),
        "deep_seen": Row(
            f"(b) READY → seen OFFERED, {deep_waiting} waiting",
            [r.call_to_seen_ms for r in deep],
            READY_TARGET_MS,
            "#b86e00",
        ),
    }
    print()
    print(table(list(rows.values())))
    by_strategy = {
        strategy.value: summary([d.decision_ms for d in one if d.strategy == strategy.value])
        for strategy in dict.fromkeys(STRATEGIES)
    }
    print("\n(a) enqueue → offer committed, by queue strategy, 1 at a time:")
    for name, s in by_strategy.items():
        print(f"  {name:<13} n={s['n']:>4}  p50 {s['p50_ms']:.2f} ms  p99 {s['p99_ms']:.2f} ms")
    for label, decisions in (("1 at a time", one), (f"{CONCURRENCY} at a time", many)):
        lock = summary([d.lock_ms for d in decisions])
        rest = summary([d.decision_ms - d.lock_ms for d in decisions])
        print(
            f"(a) {label}: routing lock statement p50 {lock['p50_ms']:.2f} / p99 "
            f"{lock['p99_ms']:.2f} ms; the decision without it p50 {rest['p50_ms']:.2f} / p99 "
            f"{rest['p99_ms']:.2f} ms"
        )
    met = {name: row.p99 < row.target_ms for name, row in rows.items() if row.target_ms is not None}
    print(
        f"\nTarget (a) p99 < {DECISION_TARGET_MS:g} ms: "
        f"{'met' if met['decision'] else 'NOT met'} one at a time "
        f"({rows['decision'].p99:.2f} ms), {'met' if met['decision_concurrent'] else 'NOT met'} "
        f"{CONCURRENCY} at a time ({rows['decision_concurrent'].p99:.2f} ms)."
    )
    print(
        f"Target (b) p99 < {READY_TARGET_MS:g} ms from ready to seen offered: "
        f"{'met' if met['ready_seen'] else 'NOT met'} with {waiting} calls waiting a tenant "
        f"({rows['ready_seen'].p99:.2f} ms; to commit {rows['ready_commit'].p99:.2f} ms), "
        f"{'met' if met['deep_seen'] else 'NOT met'} with {deep_waiting} "
        f"({rows['deep_seen'].p99:.2f} ms)."
    )
    results = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": ".venv/bin/python bench/routing.py",
        "machine": {**machine(load_before), "busy_share_by_phase": measured["phases"]},
        "setup": {
            "server": "embedded PostgreSQL" if embedded else "DATABASE_URL",
            "connection": "asyncpg as the app role (row-level security on), same machine",
            "tenants": TENANTS,
            "queues": TENANTS * len(STRATEGIES),
            "queue_strategies_per_tenant": [s.value for s in STRATEGIES],
            "agents": TENANTS * AGENTS_PER_TENANT,
            "skills_per_agent": "1-3 (a home queue and 0-2 random others), level 1-10",
            "seed": SEED,
            "warmup_calls": WARMUP_CALLS,
            "calls_one_at_a_time": CALLS,
            "calls_concurrent": CONCURRENT_CALLS,
            "concurrency": CONCURRENCY,
            "ready_samples": READY_SAMPLES,
            "waiting_calls_per_tenant_in_b": waiting,
            "deep_ready_samples": DEEP_SAMPLES,
            "deep_waiting_calls_per_tenant_in_b": deep_waiting,
            "observer_poll_seconds": POLL_SECONDS,
        },
        "decision_one_at_a_time": {
            "enqueue_to_commit": summary(rows["decision"].values_ms),
            "enqueue_returned": summary(rows["decision_uncommitted"].values_ms),
            "transaction": summary(rows["decision_transaction"].values_ms),
            "enqueue_to_commit_by_strategy": by_strategy,
            "routing_lock_statement": summary([d.lock_ms for d in one]),
        },
        "decision_concurrent": {
            "enqueue_to_commit": summary(rows["decision_concurrent"].values_ms),
            "enqueue_returned": summary([d.enqueue_ms for d in many]),
            "transaction": summary([d.transaction_ms for d in many]),
            "routing_lock_statement": summary([d.lock_ms for d in many]),
            "enqueue_to_commit_less_lock": summary([d.decision_ms - d.lock_ms for d in many]),
        },
        "ready_to_offer": ready_summary(ready),
        "ready_to_offer_deep_backlog": ready_summary(deep),
        "targets": {
            "decision_p99_ms": DECISION_TARGET_MS,
            "ready_to_offer_p99_ms": READY_TARGET_MS,
            "met": met,
        },
        "seconds": round(time.monotonic() - began, 1),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    temporary = RESULTS.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    temporary.replace(RESULTS)
    note = (
        f"{os.cpu_count()} CPUs shared by PostgreSQL, this script and the observer; "
        f"{results['generated_at']}"
    )
    CHART.write_text(
        latency_chart(
            "Depotline routing latency, one run of bench/routing.py",
            note,
            [Bar(r.label, r.p50, r.p99, r.target_ms, r.colour) for r in rows.values()],
        )
    )
    print(
        f"wrote {RESULTS.relative_to(ROOT)} and {CHART.relative_to(ROOT)} in {results['seconds']} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
