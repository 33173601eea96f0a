"""Simulated traffic from the command line: `depotline simulate sms | call | traffic`.

The simulator plays the carrier for numbers on a simulator account: every SMS and every step of
a call is a request signed with the account's webhook key and taken in by `take_in`, the same
path `/webhooks/simulator/...` runs (verified, de-duplicated, applied under the tenant's scope).
Nothing goes over the network; only PostgreSQL is needed (what follows, such as an inbound SMS's
handlers, is left in the outbox for a running worker).

With DATABASE_URL unset the embedded PostgreSQL under the data directory is used (started, or
joined while `depotline run` has it running) and migrated, as `depotline run` does.
"""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar
from uuid import uuid4

import click
from litestar.exceptions import HTTPException

from depotline.config import Settings, SettingsError, load_settings
from depotline.db import Database
from depotline.errors import DomainError, InvalidInput
from depotline.observability import configure_logging
from telephony_gateway.models import CarrierAccount, ProviderName
from telephony_gateway.providers.base import InboundRequest
from telephony_gateway.providers.registry import Providers, VoiceFlow
from telephony_gateway.providers.simulator import signed_form
from telephony_gateway.routes import locate_account, take_in
from telephony_gateway.service import e164

DEFAULT_CALLER = "+8613800138000"
#: Bounds for `traffic`: it is for demos and load tests on one machine, never open-ended.
MAX_SECONDS = 3600.0
MAX_RATE = 1000.0
#: Steps a simulated call follows before the simulated carrier gives up on it.
MAX_CALL_STEPS = 20
#: How long `traffic` waits for calls and messages still in progress when its time is up.
DRAIN_SECONDS = 10.0
TRAFFIC_BODIES = (
    "查询快递 SF1234567890 到哪里了？",
    "請問今日可以派送嗎？",
    "Where is my parcel SF1234567890?",
    "Please deliver after 6pm, thanks",
    "改派到公司地址",
)


T = TypeVar("T")


class SimulationError(Exception):
    """What went wrong, in words for the person at the command line."""


@dataclass
class CallTranscript:
    call_id: str
    lines: list[str] = field(default_factory=list)
    heard: list[str] = field(default_factory=list)


class SimulatedCarrier:
    """Plays callers and their handsets for one simulator number."""

    def __init__(
        self, db: Database, providers: Providers, account: CarrierAccount, number: str
    ) -> None:
        self.db = db
        self.providers = providers
        self.account = account
        self.number = number

    @classmethod
    async def for_number(cls, db: Database, providers: Providers, number: str) -> SimulatedCarrier:
        dialled = _e164(number, "to")
        account = await locate_account(db, InboundRequest("", "POST", {}, {}, {"to": dialled}))
        if account is None:
            raise SimulationError(f"{dialled} is not any tenant's number (add it under Carriers)")
        if account.provider != ProviderName.SIMULATOR:
            raise SimulationError(
                f"{dialled} is on a {account.provider} account: the simulator only plays callers "
                "for numbers on a simulator account"
            )
        return cls(db, providers, account, dialled)

    async def _webhook(self, kind: str, fields: dict[str, str]) -> str:
        """One signed request from the simulated carrier, taken in as the webhook would be."""
        form = {**fields, "event_id": uuid4().hex}
        body, headers = signed_form(self.providers.webhook_secret(self.account), form)
        _, answer = await take_in(
            self.db,
            self.providers,
            "simulator",
            kind,
            InboundRequest("", "POST", headers, {}, body),
        )
        return answer

    async def sms(self, caller: str, body: str) -> str:
        """An SMS from `caller` to the number; returns the stored message's id."""
        message_id = uuid4().hex
        await self._webhook(
            "sms", {"message_id": message_id, "from": caller, "to": self.number, "body": body}
        )
        return f"in:simulator:{message_id}"

    async def call(self, caller: str, digits: str, duration: int) -> CallTranscript:
        """Dial, follow what the call is told to do (pressing `digits` when asked for keys),
        hang up and report `duration` seconds (reported, not waited for)."""
        call_id = f"SIMCALL{uuid4().hex}"
        transcript = CallTranscript(call_id)
        answer = await self._webhook(
            "voice", {"call_id": call_id, "from": caller, "to": self.number}
        )
        commands: list[dict[str, Any]] = json.loads(answer)
        remaining = digits
        for _ in range(MAX_CALL_STEPS):
            if not commands:
                transcript.lines.append("(the call ended)")
                break
            command = commands.pop(0)
            name = command.get("command")
            if name == "say":
                text = str(command.get("text", ""))
                transcript.heard.append(text)
                transcript.lines.append(f"heard:   {text}")
            elif name == "play":
                transcript.lines.append(f"heard:   ♪ {command.get('url', '')}")
            elif name == "gather":
                prompt = command.get("prompt") or {}
                if prompt.get("text"):
                    transcript.heard.append(str(prompt["text"]))
                    transcript.lines.append(f"heard:   {prompt['text']}")
                wanted = command.get("num_digits") or len(remaining)
                pressed, remaining = remaining[:wanted], remaining[wanted:]
                # Like a carrier told to report an empty result: a silent caller's gather
                # comes back with no digits, and the call decides what happens next.
                transcript.lines.append(
                    f"pressed: {pressed}" if pressed else "(no key pressed; the gather timed out)"
                )
                answer = await self._webhook(
                    "gather", {"call_id": call_id, "digits": pressed, "to": self.number}
                )
                # An empty answer (a waiting caller's offer declined): on with the rest.
                commands = json.loads(answer) or commands
            elif name == "hangup":
                transcript.lines.append("(the call was hung up)")
                break
            elif name in ("enqueue", "pause") and (name == "pause" or command.get("announcements")):
                # The caller holds on; the network asks what they hear next (the wait URL).
                line = "(on hold)" if name == "pause" else f"(waits in queue {command['queue']})"
                transcript.lines.append(line)
                answer = await self._webhook("wait", {"call_id": call_id, "to": self.number})
                commands = json.loads(answer)
            elif name == "leave":
                transcript.lines.append("(left the queue)")
                answer = await self._webhook(
                    "queue-left", {"call_id": call_id, "to": self.number, "result": "leave"}
                )
                commands = json.loads(answer)
            elif name == "record":
                recording = f"SIMREC{uuid4().hex}"
                await self._webhook(
                    "recording",
                    {
                        "call_id": call_id,
                        "to": self.number,
                        "recording_id": recording,
                        "url": f"https://simulator.invalid/recordings/{recording}.wav",
                        "duration": "8",
                    },
                )
                transcript.lines.append("recorded: a message of 8 s")
            else:
                transcript.lines.append(f"({name})")
        await self._webhook(
            "status",
            {
                "call_id": call_id,
                "reason": "completed",
                "duration": str(duration),
                "to": self.number,
            },
        )
        transcript.lines.append(f"call ended after {duration} s (reported to billing)")
        return transcript


def _e164(raw: str, name: str) -> str:
    try:
        return e164(raw, field=name)
    except InvalidInput as exc:
        raise SimulationError(f"--{name}: {exc.detail}") from None


Work = Callable[["SimulatedCarrier"], Awaitable[T]]


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None


@contextmanager
def _database_settings() -> Iterator[Settings]:
    """The settings with a database: DATABASE_URL, or the embedded PostgreSQL (migrated)."""
    settings = _settings()
    configure_logging(settings.log_level, settings.log_format)
    if settings.database_url:
        yield settings
        return
    from depotline import migrations
    from depotline.embedded import EmbeddedPostgres

    postgres = EmbeddedPostgres(settings.data_dir)
    try:
        url = postgres.start()
        try:
            settings = load_settings(database_url=url)
        except SettingsError as exc:
            raise click.ClickException(str(exc)) from None
        migrations.upgrade(settings.owner_database_url)  # as `run` does; nothing when current
        yield settings
    finally:
        postgres.stop()  # stops it only if no other process (`depotline run`) still uses it


_voice_flow: VoiceFlow | None = None


def use_voice_flow(flow: VoiceFlow) -> None:
    """The assembly names who answers simulated calls (the contact center)."""
    global _voice_flow
    _voice_flow = flow


async def _with_carrier(settings: Settings, number: str, pool_size: int, work: Work[T]) -> T:
    db = Database(settings.app_url, pool_size=pool_size)
    try:
        # Inbound traffic needs no Redis: the simulated handset only matters for outbound SMS.
        providers = Providers(settings.session_secret(), settings.public_url, None, _voice_flow)
        carrier = await SimulatedCarrier.for_number(db, providers, number)
        return await work(carrier)
    finally:
        await db.dispose()


def _run(settings: Settings, number: str, work: Work[T], pool_size: int = 2) -> T:
    try:
        return asyncio.run(_with_carrier(settings, number, pool_size, work))
    except SimulationError as exc:
        raise click.ClickException(str(exc)) from None
    except DomainError as exc:
        raise click.ClickException(exc.detail) from None
    except HTTPException as exc:
        raise click.ClickException(f"refused: {exc.detail}") from None


# -- traffic ------------------------------------------------------------------------------------
@dataclass
class TrafficReport:
    calls: int = 0
    sms: int = 0
    failed: int = 0
    shed: int = 0
    latencies: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    elapsed: float = 0.0

    @property
    def done(self) -> int:
        return self.calls + self.sms

    def status(self) -> str:
        return f"calls {self.calls}  sms {self.sms}  failed {self.failed}  shed {self.shed}"


def _percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else 0.0


async def generate_traffic(
    carrier: SimulatedCarrier,
    *,
    rate: float,
    seconds: float,
    sms_share: float,
    concurrency: int,
    rng: random.Random,
    caller: str | None = None,
    tick: Callable[[float, TrafficReport], None] | None = None,
) -> TrafficReport:
    """Calls and SMS arriving as a Poisson process at `rate` a second for `seconds`. Arrivals
    that find `concurrency` requests already in progress are shed (counted, not queued), so the
    offered load stays what was asked for and nothing piles up."""
    report = TrafficReport()
    loop = asyncio.get_running_loop()
    started = loop.time()
    deadline = started + seconds
    in_flight: set[asyncio.Task[None]] = set()

    async def one(kind: str, who: str, text: str, pressed: str, duration: int) -> None:
        began = time.perf_counter()
        try:
            if kind == "sms":
                await carrier.sms(who, text)
            else:
                await carrier.call(who, pressed, duration)
        except Exception as exc:  # counted and reported: one failure must not stop the run
            report.failed += 1
            name = type(exc).__name__
            report.errors[name] = report.errors.get(name, 0) + 1
            return
        report.latencies.append(time.perf_counter() - began)
        if kind == "sms":
            report.sms += 1
        else:
            report.calls += 1

    next_at = started + rng.expovariate(rate)
    last_tick = started
    while (now := loop.time()) < deadline:
        if tick is not None and now - last_tick >= 0.2:
            tick(now - started, report)
            last_tick = now
        if next_at > now:
            await asyncio.sleep(min(next_at, deadline, now + 0.2) - now)
            continue
        # Everything random is drawn here, in arrival order: a seed repeats the same traffic.
        kind = "sms" if rng.random() < sms_share else "call"
        who = caller or f"+86139{rng.randrange(10**8):08d}"
        text = rng.choice(TRAFFIC_BODIES)
        pressed = str(rng.randint(1, 9)) if rng.random() < 0.85 else ""
        duration = max(1, min(1800, round(rng.expovariate(1 / 90))))
        if len(in_flight) >= concurrency:
            report.shed += 1
        else:
            task = asyncio.create_task(one(kind, who, text, pressed, duration))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
        next_at += rng.expovariate(rate)
    if in_flight:
        _, pending = await asyncio.wait(set(in_flight), timeout=DRAIN_SECONDS)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        report.failed += len(pending)
    report.elapsed = loop.time() - started
    if tick is not None:
        tick(seconds, report)
    return report


# -- the commands -------------------------------------------------------------------------------
@click.group("simulate")
def simulate() -> None:
    """Simulated callers and SMS for numbers on a simulator account (DATABASE_URL, or the
    embedded PostgreSQL under the data directory)."""


@simulate.command("sms")
@click.option("--to", "number", required=True, help="The tenant's number (on a simulator account).")
@click.option("--from", "caller", default=DEFAULT_CALLER, show_default=True, help="The sender.")
@click.option("--body", required=True, help="The message.")
def sms_command(number: str, caller: str, body: str) -> None:
    """An SMS from a caller to a tenant's number, taken in like the carrier's webhook."""
    with _database_settings() as settings:

        async def work(carrier: SimulatedCarrier) -> str:
            return await carrier.sms(_e164(caller, "from"), body)

        message_id: str = _run(settings, number, work)
    click.echo(f"SMS from {caller} to {number} stored as {message_id}")


@simulate.command("call")
@click.option("--to", "number", required=True, help="The tenant's number (on a simulator account).")
@click.option("--from", "caller", default=DEFAULT_CALLER, show_default=True, help="The caller.")
@click.option("--digits", default="", help="Keys to press when the call asks for them.")
@click.option(
    "--duration",
    type=click.IntRange(0, 86400),
    default=30,
    show_default=True,
    help="Seconds the call lasted, reported when it hangs up (not waited for).",
)
def call_command(number: str, caller: str, digits: str, duration: int) -> None:
    """Dial a tenant's number, press keys, hang up; print what the caller heard."""
    if digits and not all(key in "0123456789*#" for key in digits):
        raise click.BadParameter("keys are 0-9, * and #", param_hint="--digits")
    with _database_settings() as settings:

        async def work(carrier: SimulatedCarrier) -> CallTranscript:
            return await carrier.call(_e164(caller, "from"), digits, duration)

        transcript: CallTranscript = _run(settings, number, work)
    click.echo(f"Call {transcript.call_id} from {caller} to {number}")
    for line in transcript.lines:
        click.echo(f"  {line}")


@simulate.command("traffic")
@click.option("--to", "number", required=True, help="The tenant's number (on a simulator account).")
@click.option(
    "--rate",
    type=click.FloatRange(0, MAX_RATE, min_open=True),
    default=5.0,
    show_default=True,
    help="Average calls plus SMS a second (Poisson arrivals).",
)
@click.option(
    "--seconds",
    type=click.FloatRange(0, MAX_SECONDS, min_open=True),
    default=30.0,
    show_default=True,
    help="How long to generate traffic.",
)
@click.option(
    "--sms-share",
    type=click.FloatRange(0, 1),
    default=0.3,
    show_default=True,
    help="Share of arrivals that are SMS; the rest are calls.",
)
@click.option("--from", "caller", default=None, help="One caller for all (default: random).")
@click.option(
    "--concurrency",
    type=click.IntRange(1, 256),
    default=16,
    show_default=True,
    help="At most this many calls and SMS in progress; arrivals beyond it are shed.",
)
@click.option("--seed", type=int, default=None, help="Random seed, for a repeatable run.")
def traffic_command(
    number: str,
    rate: float,
    seconds: float,
    sms_share: float,
    caller: str | None,
    concurrency: int,
    seed: int | None,
) -> None:
    """Calls and SMS at a Poisson rate to a tenant's number, for demos and load tests."""
    rng = random.Random(seed)  # noqa: S311 (simulated traffic, not security)
    steps = max(1, round(seconds * 10))
    with (
        _database_settings() as settings,
        click.progressbar(
            length=steps,
            label=f"Simulating {rate:g}/s to {number} for {seconds:g} s",
            show_eta=False,
            item_show_func=lambda status: status,
        ) as bar,
    ):

        def tick(elapsed: float, report: TrafficReport) -> None:
            bar.update(min(steps, round(elapsed * 10)) - bar.pos, report.status())

        async def work(carrier: SimulatedCarrier) -> TrafficReport:
            who = _e164(caller, "from") if caller else None
            return await generate_traffic(
                carrier,
                rate=rate,
                seconds=seconds,
                sms_share=sms_share,
                concurrency=concurrency,
                rng=rng,
                caller=who,
                tick=tick,
            )

        report: TrafficReport = _run(settings, number, work, pool_size=max(1, concurrency // 2))
    elapsed = max(report.elapsed, 1e-9)
    click.echo(
        f"{report.calls} calls and {report.sms} SMS in {report.elapsed:.1f} s "
        f"({report.done / elapsed:.2f}/s; asked for {rate:g}/s), "
        f"{report.failed} failed, {report.shed} shed"
    )
    if report.latencies:
        click.echo(
            "time per call or SMS: "
            f"median {statistics.median(report.latencies) * 1000:.1f} ms, "
            f"p95 {_percentile(report.latencies, 0.95) * 1000:.1f} ms"
        )
    for name, count in sorted(report.errors.items()):
        click.echo(f"  {count} x {name}")
    if report.failed:
        raise SystemExit(1)


COMMANDS: Sequence[click.Command] = (simulate,)
