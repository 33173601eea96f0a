"""Every query of the carrier gateway."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import cache
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy import Select, Text, bindparam, cast, func, text, update
from sqlalchemy import select as sa_select
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from depotline.db import utcnow
from telephony_gateway.models import (
    CarrierAccount,
    CarrierEventReceipt,
    OptOut,
    PhoneNumber,
    SmsMessage,
    UsageRecord,
)


class GatewayRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, *rows: object) -> None:
        self.session.add_all(rows)

    async def flush(self) -> None:
        await self.session.flush()

    # -- accounts and numbers ----------------------------------------------------------------
    async def accounts(self) -> Sequence[CarrierAccount]:
        query = select(CarrierAccount).order_by(col(CarrierAccount.created_at))
        return (await self.session.exec(query)).all()

    async def get_account(self, account_id: UUID) -> CarrierAccount | None:
        query = select(CarrierAccount).where(CarrierAccount.id == account_id)
        return (await self.session.exec(query)).first()

    async def account_in_scope_of(self, tenant_id: UUID, account_id: UUID) -> CarrierAccount | None:
        """Move this transaction into `tenant_id`'s scope (a webhook found the tenant from its
        number), then read the account under that tenant's row-level security."""
        await self.session.execute(
            text("select set_config('app.tenant_id', :t, true)"), {"t": str(tenant_id)}
        )
        return await self.get_account(account_id)

    async def numbers(self) -> Sequence[PhoneNumber]:
        return (await self.session.exec(select(PhoneNumber).order_by(col(PhoneNumber.e164)))).all()

    async def get_number(self, number_id: UUID) -> PhoneNumber | None:
        return (
            await self.session.exec(select(PhoneNumber).where(PhoneNumber.id == number_id))
        ).first()

    async def number_by_e164(self, e164: str) -> PhoneNumber | None:
        """Any tenant's number: the transaction declares the one number it looks up, and row-level
        security lets exactly that row through (see migration 0003)."""
        await self.session.execute(
            text("select set_config('app.number_lookup', :n, true)"), {"n": e164}
        )
        query = select(PhoneNumber).where(PhoneNumber.e164 == e164)
        return (await self.session.exec(query)).first()

    async def number_moving_into_its_tenant(self, e164: str) -> PhoneNumber | None:
        """`number_by_e164`, and the transaction moved into the number's tenant scope by the
        same statement (once the row passed row-level security): a webhook's account lookup
        in three round trips instead of four. Only for a transaction that is to act as that
        tenant anyway (`account_for_number`)."""
        await self.session.execute(
            text("select set_config('app.number_lookup', :n, true)"), {"n": e164}
        )
        row = (await self.session.execute(_number_and_scope(), {"e164": e164})).first()
        return row[0] if row is not None else None

    async def first_sms_number(self) -> tuple[PhoneNumber, CarrierAccount] | None:
        """The tenant's first SMS number and its carrier account, in one read."""
        query = (
            select(PhoneNumber, CarrierAccount)
            .join(CarrierAccount, col(CarrierAccount.id) == col(PhoneNumber.account_id))
            .where(col(PhoneNumber.sms).is_(True))
            .order_by(col(PhoneNumber.created_at))
        )
        found = (await self.session.exec(query)).first()
        return (found[0], found[1]) if found else None

    # -- SMS ---------------------------------------------------------------------------------
    async def sms_by_message_id(self, message_id: str) -> SmsMessage | None:
        query = select(SmsMessage).where(SmsMessage.message_id == message_id)
        return (await self.session.exec(query)).first()

    async def claim_pending_sms(self, sms_id: UUID, now: datetime) -> SmsMessage | None:
        """A pending SMS marked 'sending' (one more attempt), in one statement; None unless it
        was pending."""
        claimed = (
            update(SmsMessage)
            .where(col(SmsMessage.id) == sms_id, col(SmsMessage.state) == "pending")
            .values(state="sending", attempts=col(SmsMessage.attempts) + 1, updated_at=now)
            .returning(SmsMessage)
        )
        return (await self.session.execute(claimed)).scalars().first()

    async def get_sms(self, sms_id: UUID, *, lock: bool = False) -> SmsMessage | None:
        query = select(SmsMessage).where(SmsMessage.id == sms_id)
        if lock:
            query = query.with_for_update()
        return (await self.session.exec(query)).first()

    async def sms_by_provider_id(
        self, provider: str, provider_message_id: str
    ) -> SmsMessage | None:
        query = (
            select(SmsMessage)
            .where(
                SmsMessage.provider == provider,
                SmsMessage.provider_message_id == provider_message_id,
            )
            .with_for_update()
        )
        return (await self.session.exec(query)).first()

    async def sms_log(self, limit: int = 200, phone: str | None = None) -> Sequence[SmsMessage]:
        query = select(SmsMessage)
        if phone:
            query = query.where((SmsMessage.to_number == phone) | (SmsMessage.from_number == phone))
        query = query.order_by(col(SmsMessage.created_at).desc()).limit(limit)
        return (await self.session.exec(query)).all()

    # -- opt-outs and usage ------------------------------------------------------------------
    async def opted_out(self, phone: str) -> OptOut | None:
        return (await self.session.exec(select(OptOut).where(OptOut.phone == phone))).first()

    async def record_opt_out(self, tenant_id: UUID, phone: str, keyword: str) -> None:
        statement = insert(OptOut).values(
            tenant_id=tenant_id, id=uuid4(), phone=phone, keyword=keyword, created_at=utcnow()
        )
        await self.session.execute(statement.on_conflict_do_nothing())

    async def record_usage(self, tenant_id: UUID, kind: str, quantity: int, source: str) -> bool:
        """Idempotent: the same (kind, source) is counted once. True if it was new."""
        statement = (
            insert(UsageRecord)
            .values(
                tenant_id=tenant_id,
                id=uuid4(),
                kind=kind,
                quantity=quantity,
                source=source,
                occurred_at=utcnow(),
            )
            .on_conflict_do_nothing()
            .returning(col(UsageRecord.id))
        )
        return (await self.session.execute(statement)).first() is not None

    async def usage(self) -> Sequence[UsageRecord]:
        return (
            await self.session.exec(select(UsageRecord).order_by(col(UsageRecord.occurred_at)))
        ).all()

    # -- webhook receipts --------------------------------------------------------------------
    async def first_sighting(self, provider: str, event_id: str, kind: str) -> bool:
        """Record a carrier event id; False if it was seen before (a retried webhook)."""
        statement = (
            insert(CarrierEventReceipt)
            .values(provider=provider, provider_event_id=event_id, kind=kind, received_at=utcnow())
            .on_conflict_do_nothing()
            .returning(col(CarrierEventReceipt.provider_event_id))
        )
        return (await self.session.execute(statement)).first() is not None


@cache
def _number_and_scope() -> Select[Any]:
    """Built once: every webhook that names only its number runs it."""
    scope = func.set_config("app.tenant_id", cast(col(PhoneNumber.tenant_id), Text), True)
    return sa_select(PhoneNumber, scope).where(col(PhoneNumber.e164) == bindparam("e164"))
