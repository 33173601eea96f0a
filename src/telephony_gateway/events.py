"""Events in: what carriers tell Depotline, normalised. Every provider turns its own webhook or
callback into these, each with the provider's own event id so a retried webhook is recognised."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from depotline.db import utcnow


class Direction(StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


class SmsState(StrEnum):
    QUEUED = "queued"
    SENT = "sent"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"


@dataclass(frozen=True, kw_only=True)
class CarrierEvent:
    provider: str
    provider_event_id: str
    occurred_at: datetime = field(default_factory=utcnow)


@dataclass(frozen=True, kw_only=True)
class CallStarted(CarrierEvent):
    call_id: str
    from_number: str
    to_number: str
    direction: Direction = Direction.INBOUND


@dataclass(frozen=True, kw_only=True)
class DigitsGathered(CarrierEvent):
    call_id: str
    digits: str


@dataclass(frozen=True, kw_only=True)
class SpeechReady(CarrierEvent):
    call_id: str
    transcript: str
    confidence: float | None = None


@dataclass(frozen=True, kw_only=True)
class RecordingReady(CarrierEvent):
    call_id: str
    recording_id: str
    url: str
    duration_seconds: int


@dataclass(frozen=True, kw_only=True)
class CallAnswered(CarrierEvent):
    call_id: str


@dataclass(frozen=True, kw_only=True)
class CallEnded(CarrierEvent):
    call_id: str
    reason: str  # completed, busy, no-answer, failed, canceled, caller-hangup
    duration_seconds: int
    direction: Direction = Direction.INBOUND


@dataclass(frozen=True, kw_only=True)
class LegBridged(CarrierEvent):
    call_id: str
    other_call_id: str


@dataclass(frozen=True, kw_only=True)
class SmsReceived(CarrierEvent):
    message_id: str
    from_number: str
    to_number: str
    body: str


@dataclass(frozen=True, kw_only=True)
class SmsStatus(CarrierEvent):
    message_id: str  # the provider's id of the message we sent
    state: SmsState
    error_code: str | None = None
