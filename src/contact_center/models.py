"""Tables of the contact center: queues, agent skills and states, calls and their offers."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from sqlalchemy import Column, DateTime, UniqueConstraint
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TEXT
from sqlmodel import Field

from depotline.db import TenantOwned, utcnow


class Strategy(StrEnum):
    LONGEST_IDLE = "longest_idle"
    ROUND_ROBIN = "round_robin"
    LEAST_TALK = "least_talk"
    SKILL_FIRST = "skill_first"  # highest skill level first, then longest idle


class AgentStatus(StrEnum):
    SIGNED_OUT = "signed_out"
    READY = "ready"
    NOT_READY = "not_ready"
    RESERVED = "reserved"  # being offered a call
    ON_CALL = "on_call"
    WRAP_UP = "wrap_up"


class CallStatus(StrEnum):
    IVR = "ivr"
    QUEUED = "queued"
    OFFERED = "offered"
    ON_CALL = "on_call"
    ENDED = "ended"
    ABANDONED = "abandoned"  # hung up while queued


class Queue(TenantOwned, table=True):
    """A skill group. Calls wait here for an agent with the skill."""

    __tablename__ = "queues"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    name: str
    strategy: Strategy = Field(default=Strategy.LONGEST_IDLE, sa_type=TEXT)
    reservation_seconds: int = 15
    wrap_up_seconds: int = 30
    service_level_seconds: int = 15
    #: After this long waiting, or with more than `overflow_when_waiting` calls waiting, a call
    #: may also go to the overflow queue's agents or to the overflow operator's outsourced agents.
    overflow_after_seconds: int | None = None
    overflow_when_waiting: int | None = None
    overflow_queue_id: UUID | None = None
    overflow_operator_id: UUID | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))


class AgentSkill(TenantOwned, table=True):
    __tablename__ = "agent_skills"
    __table_args__ = (UniqueConstraint("tenant_id", "user_id", "queue_id"),)

    user_id: UUID
    queue_id: UUID
    level: int = 1


class AgentState(TenantOwned, table=True):
    """An agent's state in one tenant (an outsourced agent has one per client served)."""

    __tablename__ = "agent_states"
    __table_args__ = (UniqueConstraint("tenant_id", "user_id"),)

    user_id: UUID
    home_tenant_id: UUID  # the agent's own tenant: an operator for outsourced agents
    status: AgentStatus = Field(default=AgentStatus.SIGNED_OUT, sa_type=TEXT)
    reason: str | None = None
    since: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))
    current_call_id: UUID | None = None
    last_offered_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    talk_seconds_today: int = 0


class Call(TenantOwned, table=True):
    """One call and every moment KPIs are computed from."""

    __tablename__ = "calls"
    __table_args__ = (UniqueConstraint("tenant_id", "provider", "provider_call_id"),)

    provider: str
    provider_call_id: str
    from_number: str
    to_number: str
    direction: str = "inbound"
    status: CallStatus = Field(default=CallStatus.IVR, sa_type=TEXT)
    queue_id: UUID | None = None
    priority: int = 0  # VIP callers jump ahead
    agent_id: UUID | None = None
    arrived_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))
    queued_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    overflowed_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    offered_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    answered_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    ended_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    wait_seconds: int | None = None
    talk_seconds: int | None = None
    disposition: str | None = None
    wrap_up_code: str | None = None
    language: str | None = None
    #: Where the caller is in the IVR (the flow interpreter's state), while in the IVR.
    ivr_progress: dict[str, Any] | None = Field(
        default=None, sa_column=Column(JSONB, nullable=True)
    )
    survey_score: int | None = None
    callback_requested: bool = False


class CallOffer(TenantOwned, table=True):
    """A call offered to one agent: accepted, declined or timed out."""

    __tablename__ = "call_offers"

    call_id: UUID
    agent_id: UUID
    offered_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))
    decided_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    outcome: str | None = None  # accepted, declined, timeout


class BlocklistEntry(TenantOwned, table=True):
    """A harassing number. Needs a reason and an author; may expire; removal is kept, not
    deleted, and both are audited."""

    __tablename__ = "blocklist_entries"

    phone: str
    reason: str
    author_id: UUID
    expires_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))
    removed_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    removed_by: UUID | None = None


class ContactCenterSettings(TenantOwned, table=True):
    __tablename__ = "contact_center_settings"

    business_hours: dict[str, Any] | None = Field(
        default=None, sa_column=Column(JSONB, nullable=True)
    )
    vip_numbers: list[str] = Field(
        default_factory=list, sa_column=Column(ARRAY(TEXT), nullable=False)
    )
    survey_enabled: bool = False
    updated_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))
