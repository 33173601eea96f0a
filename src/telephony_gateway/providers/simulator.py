"""The built-in carrier: behaves like a real one, runs on this machine. Messages land in a
simulated handset (Redis) and come back with delivery reports; callers dial, press digits and
hang up through signed HTTP requests (the console, the CLI, tests and the load generator)."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Sequence
from dataclasses import asdict, is_dataclass
from typing import Any
from uuid import uuid4

from redis.asyncio import Redis

from depotline.db import utcnow
from telephony_gateway import events as ev
from telephony_gateway.commands import Command, Hangup, Monitor, Pause, SendSms, Unsupported
from telephony_gateway.providers.base import CarrierRefused, InboundRequest, SmsReceipt

SIGNATURE_HEADER = "x-depotline-signature"
HANDSET_KEEP = 50
#: Seconds of hold between two questions of the simulated network for a waiting caller.
WAIT_SECONDS = 20
#: Numbers the simulated network does not know (like a carrier's "unknown subscriber").
UNKNOWN_SUBSCRIBER_SUFFIX = "0000"


def handset_key(number: str) -> str:
    return f"depotline:simulator:handset:{number}"


def failures_key(number: str) -> str:
    return f"depotline:simulator:fail:{number}"


def control_key(call_id: str) -> str:
    return f"depotline:simulator:control:{call_id}"


#: Commands the simulated network carries out on a call in progress.
CALL_CONTROL = frozenset(
    {"hold", "connect_agent", "transfer", "conference", "enqueue", "place_call", "hangup"}
)
CONTROL_KEPT_SECONDS = 12 * 3600


async def call_control_log(redis: Redis, call_id: str) -> list[dict[str, Any]]:
    """What the simulated network was told to do with a call in progress, oldest first: each
    command as `describe` shows it, with the moment it was carried out."""
    entries = await redis.lrange(control_key(call_id), 0, -1)  # type: ignore[misc]
    return [json.loads(entry) for entry in entries]


def legs_key(call_id: str) -> str:
    return f"depotline:simulator:legs:{call_id}"


#: How long the simulated network remembers who joined a call (longer than any call lasts).
LEGS_KEPT_SECONDS = 12 * 3600


async def call_legs(redis: Redis, call_id: str) -> list[dict[str, str]]:
    """The supervisors' legs on a simulated call: endpoint, mode (listen, whisper, barge),
    leg id and when it joined or last changed mode."""
    legs = await redis.hgetall(legs_key(call_id))  # type: ignore[misc]
    found = [json.loads(value) for value in legs.values()]
    return sorted(found, key=lambda leg: str(leg["at"]))


def sign(secret: bytes, body: bytes) -> str:
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


class SimulatorProvider:
    name = "simulator"
    supported = frozenset(
        {
            "answer",
            "say",
            "play",
            "gather",
            "enqueue",
            "hold",
            "connect_agent",
            "transfer",
            "conference",
            "monitor",
            "recording",
            "hangup",
            "place_call",
            "send_sms",
            "pause",
            "record",
            "leave",
        }
    )

    def __init__(self, redis: Redis | None, secret: bytes) -> None:
        self.redis = redis
        self.secret = secret

    async def send_sms(self, command: SendSms, status_url: str) -> SmsReceipt:
        if command.to_number.endswith(UNKNOWN_SUBSCRIBER_SUFFIX):
            raise CarrierRefused("unknown subscriber", error_code="21211", retryable=False)
        if self.redis is not None:
            # Tests and the console can make the network refuse the next N sends (an outage).
            remaining = await self.redis.decr(failures_key(command.to_number))
            if remaining >= 0:
                raise CarrierRefused("simulated carrier outage", error_code="30001", retryable=True)
            await self.redis.delete(failures_key(command.to_number))
            handset = handset_key(command.to_number)
            await self.redis.lpush(  # type: ignore[misc]
                handset,
                json.dumps(
                    {
                        "from": command.from_number,
                        "body": command.body,
                        "at": utcnow().isoformat(),
                        "message_id": command.message_id,
                    },
                    ensure_ascii=False,
                ),
            )
            await self.redis.ltrim(handset, 0, HANDSET_KEEP - 1)  # type: ignore[misc]
        sid = f"SIM{uuid4().hex}"
        # The simulated network sends at once (its answer says so; a separate "sent" report
        # would be one more event per SMS for nothing) and reports delivery a second later.
        delivered = ev.SmsStatus(
            provider=self.name,
            provider_event_id=f"{sid}:delivered",
            message_id=sid,
            state=ev.SmsState.DELIVERED,
        )
        return SmsReceipt(sid, ev.SmsState.SENT, ((1.0, delivered),))

    async def monitor(self, command: Monitor) -> str:
        """A supervisor's leg joins the call in the command's mode; asked again, the same leg
        changes mode (listen, whisper, barge), as on a carrier's conference. Returns the leg id."""
        if self.redis is None:
            raise CarrierRefused("the simulated network keeps call legs in Redis", retryable=False)
        key = legs_key(command.call_id)
        known = await self.redis.hget(key, command.supervisor_endpoint)  # type: ignore[misc]
        leg_id = json.loads(known)["leg_id"] if known else f"SIMLEG{uuid4().hex}"
        leg = {
            "leg_id": leg_id,
            "endpoint": command.supervisor_endpoint,
            "mode": command.mode.value,
            "at": utcnow().isoformat(),
        }
        await self.redis.hset(key, command.supervisor_endpoint, json.dumps(leg))  # type: ignore[misc]
        await self.redis.expire(key, LEGS_KEPT_SECONDS)
        return str(leg_id)

    async def control(self, call_id: str, command: Command) -> None:
        """Carry out a command on a call in progress: the caller is put on hold, back to the
        agent, into a queue or a conference, or hung up. Kept per call, for the console and
        tests to see."""
        if command.name not in CALL_CONTROL:
            raise Unsupported(self.name, command)
        if self.redis is None:
            raise CarrierRefused("the simulated network keeps calls in Redis", retryable=False)
        key = control_key(call_id)
        done = {**describe(command), "at": utcnow().isoformat()}
        await self.redis.rpush(key, json.dumps(done, ensure_ascii=False))  # type: ignore[misc]
        await self.redis.expire(key, CONTROL_KEPT_SECONDS)

    def render(self, commands: Sequence[Command]) -> tuple[str, str]:
        """What the simulated caller hears and does next, as JSON (the simulator's TwiML)."""
        return "application/json", json.dumps([describe(c) for c in commands], ensure_ascii=False)

    def verify(self, request: InboundRequest) -> bool:
        given = request.headers.get(SIGNATURE_HEADER, "")
        body = json.dumps(dict(sorted(request.form.items())), ensure_ascii=False).encode()
        return bool(given) and hmac.compare_digest(given, sign(self.secret, body))

    def parse(self, kind: str, request: InboundRequest) -> Sequence[ev.CarrierEvent]:
        form = request.form
        event_id = form.get("event_id") or uuid4().hex
        base: dict[str, Any] = {"provider": self.name, "provider_event_id": event_id}
        if kind == "voice":
            version = form.get("flow_version") or None
            if version is not None and not version.isdecimal():
                raise ValueError(f"flow_version '{version}' is not a version number")
            return [
                ev.CallStarted(
                    **base,
                    call_id=form["call_id"],
                    from_number=form["from"],
                    to_number=form["to"],
                    flow_version=int(version) if version else None,
                )
            ]
        if kind == "wait":
            waited = form.get("queue_seconds", "")
            return [
                ev.QueueWait(
                    **base,
                    call_id=form["call_id"],
                    queue_seconds=int(waited) if waited.isdecimal() else None,
                )
            ]
        if kind == "queue-left":
            result = form.get("result", "leave")
            return [ev.QueueLeft(**base, call_id=form["call_id"], result=result)]
        if kind == "recording":
            return [
                ev.RecordingReady(
                    **base,
                    call_id=form["call_id"],
                    recording_id=form["recording_id"],
                    url=form["url"],
                    duration_seconds=int(form.get("duration", "0")),
                )
            ]
        if kind == "gather":
            return [ev.DigitsGathered(**base, call_id=form["call_id"], digits=form["digits"])]
        if kind == "status":
            return [
                ev.CallEnded(
                    **base,
                    call_id=form["call_id"],
                    reason=form.get("reason", "completed"),
                    duration_seconds=int(form.get("duration", "0")),
                )
            ]
        if kind == "sms":
            return [
                ev.SmsReceived(
                    **base,
                    message_id=form.get("message_id") or event_id,
                    from_number=form["from"],
                    to_number=form["to"],
                    body=form["body"],
                )
            ]
        raise ValueError(f"the simulator sends no '{kind}' webhooks")

    def wait_twiml(
        self, request: InboundRequest, commands: Sequence[Command] = ()
    ) -> tuple[str, str]:
        """What a waiting caller hears before the simulated network asks again: the answer,
        then a stretch of (silent) hold, unless the answer ends the call."""
        if commands and isinstance(commands[-1], Hangup):
            return self.render(commands)
        return self.render([*commands, Pause(WAIT_SECONDS)])


def describe(command: Command) -> dict[str, Any]:
    fields: dict[str, Any] = asdict(command) if is_dataclass(command) else {}
    return {"command": command.name, **{k: v for k, v in fields.items() if v is not None}}


def signed_form(secret: bytes, form: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """A request as the simulated carrier sends it: the form and its signature header."""
    body = json.dumps(dict(sorted(form.items())), ensure_ascii=False).encode()
    return form, {SIGNATURE_HEADER: sign(secret, body)}
