"""Tables of pickup notifications: a tenant's own SMS texts, its notification settings, and the
links the public tracking page finds an order by (see migration 0009)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from sqlalchemy import DateTime, UniqueConstraint
from sqlmodel import Field

from depotline.db import TenantOwned, utcnow

#: How long a depot may stay silent on an offer before it is reminded (and as long again
#: before the order goes on the exceptions list), until the tenant says otherwise.
DEFAULT_DEPOT_ANSWER_MINUTES = 15


class SmsTemplate(TenantOwned, table=True):
    """A tenant's text for one customer SMS in one language; without one the default is sent."""

    __tablename__ = "pickup_sms_templates"
    __table_args__ = (UniqueConstraint("tenant_id", "kind", "language"),)

    kind: str  # booked | depot_assigned | driver_assigned | picked_up | ...
    language: str  # en | zh_Hans | zh_Hant
    body: str
    updated_by: str = ""
    updated_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))


class NotificationSettings(TenantOwned, table=True):
    __tablename__ = "pickup_notification_settings"
    __table_args__ = (UniqueConstraint("tenant_id"),)

    depot_answer_minutes: int = DEFAULT_DEPOT_ANSWER_MINUTES
    updated_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))


class TrackingLink(TenantOwned, table=True):
    """Token -> order, written by a trigger when the order is booked. The one row a tracking
    page's lookup may read without a tenant scope."""

    __tablename__ = "pickup_tracking_links"

    token: str = Field(unique=True)
    order_id: UUID
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))
