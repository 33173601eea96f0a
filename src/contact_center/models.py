"""Tables of the contact center: queues, agent skills and states, calls and their offers."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from sqlalchemy import Column, DateTime, UniqueConstraint
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TEXT
from sqlmodel import Field, SQLModel

from depotline.db import TenantOwned, empty_list, utcnow


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
    #: After this long waiting, a caller is offered voicemail (1) or a callback (2).
    callback_offer_after_seconds: int | None = None
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
    #: The desktop accepts offers at once (the agent's choice, kept across reloads).
    auto_answer: bool = False
    #: The call the agent wraps up (or last wrapped up): current_call_id is gone by then.
    last_call_id: UUID | None = None
    #: The number callers are told when this agent answers (工号), unique in the tenant.
    agent_number: str | None = None
    #: A supervisor's forced not ready / sign out, asked for during a call: applied when it ends.
    pending_status: AgentStatus | None = Field(default=None, sa_type=TEXT)
    pending_reason: str | None = None


class AgentEngagement(SQLModel, table=True):
    """An outsourced agent busy with a call (reserved, on it, wrapping up) on some client's
    floor: kept by a database trigger on `agent_states` (migration 0011), one row per agent at
    most, so no other floor offers them a call meanwhile. Names no tenant."""

    __tablename__ = "agent_engagements"

    user_id: UUID = Field(primary_key=True)
    since: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))


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
    # -- the agent desktop -----------------------------------------------------------------
    wrap_up_notes: str | None = None
    wrapped_up_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    #: On hold since (None: not on hold); hold time so far, for AHT.
    held_since: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    hold_seconds: int = 0
    #: When the current agent answered: `answered_at` is the first answer, before transfers.
    agent_answered_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    transferred_from: UUID | None = None
    transfer_note: str | None = None
    #: Each earlier agent's part of the call: agent_id, answered_at, ended_at, how, wrap-up.
    legs: list[dict[str, Any]] = Field(
        default_factory=empty_list, sa_column=Column(JSONB, nullable=False, server_default="[]")
    )
    #: The third party of a three-way call (a number, or "agent:<user id>").
    conference_with: str | None = None
    conference_since: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    #: The IVR path and what the caller keyed in, kept when the call leaves the IVR.
    ivr_path: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONB, nullable=True))
    #: The agent number the caller was told on answer; a voicemail the caller left.
    agent_number: str | None = None
    voicemail_url: str | None = None


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
        default_factory=empty_list, sa_column=Column(ARRAY(TEXT), nullable=False)
    )
    survey_enabled: bool = False
    updated_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))


class FlowStatus(StrEnum):
    DRAFT = "draft"
    PUBLISHED = "published"  # the one callers hear
    RETIRED = "retired"  # was published; kept for calls still in it and for history


class IvrFlowVersion(TenantOwned, table=True):
    """One version of a tenant's IVR flow (the JSON of `contact_center.ivr.Flow`). A version's
    document never changes once saved: an edit is a new draft."""

    __tablename__ = "ivr_flow_versions"
    __table_args__ = (UniqueConstraint("tenant_id", "number"),)

    number: int
    document: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    status: FlowStatus = Field(default=FlowStatus.DRAFT, sa_type=TEXT)
    note: str = ""
    author_id: UUID | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))
    published_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    published_by: UUID | None = None
    retired_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))


class DeskCodeKind(StrEnum):
    NOT_READY = "not_ready"  # why an agent is not ready: break, lunch, training ...
    WRAP_UP = "wrap_up"  # how a call ended: resolved, pickup booked ...


class DeskCode(TenantOwned, table=True):
    """A tenant's own not-ready reason or wrap-up code. Retired, not deleted: calls keep it."""

    __tablename__ = "desk_codes"

    kind: DeskCodeKind = Field(sa_type=TEXT)
    label: str
    position: int = 0
    active: bool = True
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))
