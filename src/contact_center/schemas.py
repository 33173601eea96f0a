"""API output of the contact center: the floor as the supervisor console shows it."""

from __future__ import annotations

from datetime import date, datetime
from uuid import UUID

from pydantic import BaseModel, ConfigDict


class QueueFiguresOut(BaseModel):
    """Today's figures of one queue; see contact_center.wallboard for each definition."""

    model_config = ConfigDict(from_attributes=True)

    queue_id: UUID
    tenant_id: UUID
    name: str
    waiting: int
    ringing: int
    longest_wait_seconds: int
    offered: int
    answered: int
    abandoned: int
    answer_rate: float | None
    abandonment_rate: float | None
    threshold_seconds: int
    answered_in_time: int
    service_level: float | None
    average_wait_seconds: float | None
    average_talk_seconds: float | None


class CurrentCallOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    call_id: UUID
    from_number: str
    queue: str | None
    status: str
    seconds: int


class AgentRowOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    user_id: UUID
    tenant_id: UUID
    name: str
    email: str
    status: str
    reason: str | None
    since: datetime
    time_in_state_seconds: int
    pending_status: str | None
    pending_reason: str | None
    current_call: CurrentCallOut | None
    calls_handled_today: int


class FloorOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    as_of: datetime
    local_time: str
    time_zone: str
    day: date
    queues: list[QueueFiguresOut]
    agents: list[AgentRowOut]
    tenants: dict[UUID, str]
