"""What a provider is. Each provider implements the part of the vocabulary it can; asking for
more raises `Unsupported` naming the command and the provider."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from telephony_gateway.commands import Command, SendSms
from telephony_gateway.events import CarrierEvent, SmsState


@dataclass(frozen=True)
class SmsReceipt:
    """The carrier took the message: its id for the message and the state it reported."""

    provider_message_id: str
    state: SmsState = SmsState.QUEUED
    #: Delivery reports the provider already knows will follow (the simulator's), with the
    #: delay after which each arrives; they go through the same path as a carrier's webhook.
    reports: tuple[tuple[float, CarrierEvent], ...] = ()


class CarrierRefused(Exception):
    """The carrier answered and did not take the message. Nothing was sent, so a retry is safe
    when `retryable` (throttling, a carrier outage); never for a bad number."""

    def __init__(self, message: str, *, error_code: str | None = None, retryable: bool) -> None:
        super().__init__(message)
        self.error_code = error_code
        self.retryable = retryable


class OutcomeUnknown(Exception):
    """The request may have reached the carrier (a timeout after sending). Never retried: one
    message id must never become two SMS."""


@dataclass(frozen=True)
class InboundRequest:
    """A carrier's webhook as the provider needs it to verify and parse it."""

    url: str  # the full URL the carrier called, as it signed it
    method: str
    headers: Mapping[str, str]
    query: Mapping[str, str]
    form: Mapping[str, str]


class SmsProvider(Protocol):
    name: str

    async def send_sms(self, command: SendSms, status_url: str) -> SmsReceipt:
        """Hand the message to the carrier; `status_url` receives its delivery reports."""
        ...


class WebhookProvider(Protocol):
    name: str

    def verify(self, request: InboundRequest) -> bool:
        """True only if the carrier (holding our shared secret) sent this request."""
        ...

    def parse(self, kind: str, request: InboundRequest) -> Sequence[CarrierEvent]:
        """Normalise a webhook of `kind` (voice, gather, status, sms, sms-status, recording)."""
        ...


class VoiceProvider(Protocol):
    name: str
    supported: frozenset[str]  # names of the commands it can carry out

    def render(self, commands: Sequence[Command]) -> tuple[str, str]:
        """The webhook answer that makes the carrier carry out `commands`: (media type, body).
        Raises Unsupported for a command it cannot carry out."""
        ...


class CallControlProvider(Protocol):
    name: str

    async def control(self, call_id: str, command: Command) -> None:
        """Carry out `command` on the call in progress (hold, transfer, conference, hang up).
        Raises Unsupported for a command it cannot carry out."""
        ...


def settings_value(settings: Mapping[str, Any], key: str) -> str:
    value = settings.get(key)
    if not isinstance(value, str) or not value:
        raise ValueError(f"carrier account setting '{key}' is missing")
    return value
