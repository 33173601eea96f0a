"""Every query of pickup notifications and the tracking page's token lookup."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from sqlalchemy import text
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from pickup.notification_models import NotificationSettings, SmsTemplate, TrackingLink


class NotificationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, *rows: object) -> None:
        self.session.add_all(rows)

    async def flush(self) -> None:
        await self.session.flush()

    async def delete(self, row: object) -> None:
        await self.session.delete(row)

    # -- templates and settings --------------------------------------------------------------
    async def templates(self, tenant_id: UUID) -> Sequence[SmsTemplate]:
        query = (
            select(SmsTemplate)
            .where(SmsTemplate.tenant_id == tenant_id)
            .order_by(col(SmsTemplate.kind), col(SmsTemplate.language))
        )
        return (await self.session.exec(query)).all()

    async def template(self, tenant_id: UUID, kind: str, language: str) -> SmsTemplate | None:
        query = select(SmsTemplate).where(
            SmsTemplate.tenant_id == tenant_id,
            SmsTemplate.kind == kind,
            SmsTemplate.language == language,
        )
        return (await self.session.exec(query)).first()

    async def settings(self, tenant_id: UUID) -> NotificationSettings | None:
        query = select(NotificationSettings).where(NotificationSettings.tenant_id == tenant_id)
        return (await self.session.exec(query)).first()

    # -- the tracking page ---------------------------------------------------------------------
    async def tracking_link(self, token: str) -> TrackingLink | None:
        """Any tenant's link by its token: the transaction declares the one token it looks up,
        and row-level security lets exactly that row through (see migration 0009)."""
        await self.session.execute(
            text("select set_config('app.tracking_lookup', :t, true)"), {"t": token}
        )
        query = select(TrackingLink).where(TrackingLink.token == token)
        return (await self.session.exec(query)).first()
