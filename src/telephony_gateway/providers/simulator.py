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
from telephony_gateway.commands import Command, SendSms
from telephony_gateway.providers.base import CarrierRefused, InboundRequest, SmsReceipt

SIGNATURE_HEADER = "x-depotline-signature"
HANDSET_KEEP = 50
#: Numbers the simulated network does not know (like a carrier's "unknown subscriber").
UNKNOWN_SUBSCRIBER_SUFFIX = "0000"


def handset_key(number: str) -> str:
    return f"depotline:simulator:handset:{number}"


def failures_key(number: str) -> str:
    return f"depotline:simulator:fail:{number}"


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
        reports = (
            (
                0.0,
                ev.SmsStatus(
                    provider=self.name,
                    provider_event_id=f"{sid}:sent",
                    message_id=sid,
                    state=ev.SmsState.SENT,
                ),
            ),
            (
                1.0,
                ev.SmsStatus(
                    provider=self.name,
                    provider_event_id=f"{sid}:delivered",
                    message_id=sid,
                    state=ev.SmsState.DELIVERED,
                ),
            ),
        )
        return SmsReceipt(sid, ev.SmsState.QUEUED, reports)

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
            return [
                ev.CallStarted(
                    **base, call_id=form["call_id"], from_number=form["from"], to_number=form["to"]
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


def describe(command: Command) -> dict[str, Any]:
    fields: dict[str, Any] = asdict(command) if is_dataclass(command) else {}
    return {"command": command.name, **{k: v for k, v in fields.items() if v is not None}}


def signed_form(secret: bytes, form: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """A request as the simulated carrier sends it: the form and its signature header."""
    body = json.dumps(dict(sorted(form.items())), ensure_ascii=False).encode()
    return form, {SIGNATURE_HEADER: sign(secret, body)}
