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
    #: Only from the simulator console's "try a version": the number of the tenant's IVR flow
    #: version this call hears instead of the published one (a draft, before it goes live).
    flow_version: int | None = None


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
class QueueWait(CarrierEvent):
    """The carrier asks what a caller waiting in a queue hears next (Twilio's waitUrl); it asks
    again once that has been played."""

    call_id: str
    queue_seconds: int | None = None  # how long the carrier has held the caller, if it says


@dataclass(frozen=True, kw_only=True)
class QueueLeft(CarrierEvent):
    """The caller's time in the carrier's queue is over; the answer is what they hear next.
    `result`: leave (after a Leave command), bridged (the agent's call ended), hangup, ..."""

    call_id: str
    result: str


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
