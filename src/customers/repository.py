"""Every query of the customers domain.

Lookups that find or claim a number for a caller name the tenant explicitly: an HQ's scope also
sees its branches' rows, but a caller of one tenant's hotline is that tenant's customer."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from uuid import UUID, uuid4

from sqlalchemy import ColumnElement, and_, delete, exists, func, or_, update
from sqlalchemy.dialects.postgresql import aggregate_order_by, insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from customers.models import (
    Contact,
    ContactDirection,
    ContactKind,
    Customer,
    CustomerAddress,
    CustomerImport,
    CustomerImportFile,
    CustomerPhone,
)
from depotline.db import utcnow


def like_pattern(text: str) -> str:
    """`%text%` with LIKE's own wildcards in `text` taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class CustomerRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, *rows: object) -> None:
        self.session.add_all(rows)

    async def flush(self) -> None:
        await self.session.flush()

    # -- customers -------------------------------------------------------------------------------
    async def get(self, customer_id: UUID, *, lock: bool = False) -> Customer | None:
        query = select(Customer).where(Customer.id == customer_id)
        if lock:
            query = query.with_for_update()
        return (await self.session.exec(query)).first()

    async def customers_by_ids(self, ids: Collection[UUID]) -> dict[UUID, Customer]:
        if not ids:
            return {}
        query = select(Customer).where(col(Customer.id).in_(list(ids)))
        return {c.id: c for c in (await self.session.exec(query)).all()}

    async def customer_by_phone(self, tenant_id: UUID, e164: str) -> Customer | None:
        query = (
            select(Customer)
            .join(
                CustomerPhone,
                and_(
                    col(CustomerPhone.tenant_id) == col(Customer.tenant_id),
                    col(CustomerPhone.customer_id) == col(Customer.id),
                ),
            )
            .where(CustomerPhone.tenant_id == tenant_id, CustomerPhone.e164 == e164)
        )
        return (await self.session.exec(query)).first()

    async def card(self, tenant_id: UUID, e164: str) -> tuple[Customer, list[str]] | None:
        """The customer owning a number, with all its numbers, in one query (the screen pop):
        the tenant's own, else a branch's the scope can see."""
        owner = CustomerPhone.__table__.alias("owner")  # type: ignore[attr-defined]
        numbers = (
            select(
                func.array_agg(
                    aggregate_order_by(col(CustomerPhone.e164), col(CustomerPhone.created_at))
                )
            )
            .where(
                col(CustomerPhone.tenant_id) == col(Customer.tenant_id),
                col(CustomerPhone.customer_id) == col(Customer.id),
            )
            .scalar_subquery()
        )
        query = (
            select(Customer, numbers)
            .join(
                owner,
                and_(owner.c.tenant_id == Customer.tenant_id, owner.c.customer_id == Customer.id),
            )
            .where(owner.c.e164 == e164)
            # An HQ also sees its branches' customers: its own one first.
            .order_by((owner.c.tenant_id == tenant_id).desc())
            .limit(1)
        )
        row = (await self.session.exec(query)).first()
        if row is None:
            return None
        customer, phones = row
        return customer, list(phones or [])

    async def is_vip(self, tenant_id: UUID, e164: str) -> bool:
        query = select(
            exists().where(
                col(CustomerPhone.tenant_id) == tenant_id,
                col(CustomerPhone.e164) == e164,
                col(Customer.tenant_id) == col(CustomerPhone.tenant_id),
                col(Customer.id) == col(CustomerPhone.customer_id),
                col(Customer.tier) == "vip",
            )
        )
        return bool((await self.session.exec(query)).one())

    async def search(self, terms: Sequence[str], digits: str | None, limit: int) -> list[Customer]:
        """Profiles (not merged away) where every term is in the name, a tag, an address or a
        number, or (a query of digits and separators) with a number containing `digits`; the
        most recently changed first."""
        conditions = [self._matches(term) for term in terms]
        if digits:
            conditions = [or_(self._has_number(digits), and_(*conditions))]
        query = (
            select(Customer)
            .where(col(Customer.merged_into).is_(None), *conditions)
            .order_by(col(Customer.updated_at).desc())
            .limit(limit)
        )
        return list((await self.session.exec(query)).all())

    def _matches(self, term: str) -> ColumnElement[bool]:
        pattern = like_pattern(term)
        address_text = func.concat_ws(
            " ",
            CustomerAddress.label,
            CustomerAddress.line1,
            CustomerAddress.line2,
            CustomerAddress.district,
            CustomerAddress.city,
            CustomerAddress.postal_code,
        )
        in_address = exists().where(
            col(CustomerAddress.tenant_id) == col(Customer.tenant_id),
            col(CustomerAddress.customer_id) == col(Customer.id),
            address_text.ilike(pattern, escape="\\"),
        )
        in_tags = func.array_to_string(col(Customer.tags), " ").ilike(pattern, escape="\\")
        options: list[ColumnElement[bool]] = [
            col(Customer.name).ilike(pattern, escape="\\"),
            in_tags,
            in_address,
        ]
        term_digits = "".join(ch for ch in term if ch.isdigit())
        if len(term_digits) >= 3:
            options.append(self._has_number(term_digits))
        return or_(*options)

    def _has_number(self, digits: str) -> ColumnElement[bool]:
        return exists().where(
            col(CustomerPhone.tenant_id) == col(Customer.tenant_id),
            col(CustomerPhone.customer_id) == col(Customer.id),
            col(CustomerPhone.e164).like(like_pattern(digits), escape="\\"),
        )

    # -- phone numbers -------------------------------------------------------------------------
    async def claim_phone(self, tenant_id: UUID, e164: str, customer_id: UUID) -> bool:
        """Give a number to a customer unless it already has an owner. Two transactions claiming
        one number: the second waits for the first and then finds it taken."""
        statement = (
            insert(CustomerPhone)
            .values(
                tenant_id=tenant_id,
                id=uuid4(),
                customer_id=customer_id,
                e164=e164,
                created_at=utcnow(),
            )
            .on_conflict_do_nothing(index_elements=["tenant_id", "e164"])
            .returning(col(CustomerPhone.id))
        )
        return (await self.session.execute(statement)).first() is not None

    async def phone(self, tenant_id: UUID, e164: str) -> CustomerPhone | None:
        query = select(CustomerPhone).where(
            CustomerPhone.tenant_id == tenant_id, CustomerPhone.e164 == e164
        )
        return (await self.session.exec(query)).first()

    async def owners_of(self, tenant_id: UUID, numbers: Collection[str]) -> dict[str, UUID]:
        if not numbers:
            return {}
        query = select(CustomerPhone).where(
            CustomerPhone.tenant_id == tenant_id, col(CustomerPhone.e164).in_(list(numbers))
        )
        return {p.e164: p.customer_id for p in (await self.session.exec(query)).all()}

    async def phones_for(self, customer_ids: Collection[UUID]) -> dict[UUID, list[str]]:
        found: dict[UUID, list[str]] = {i: [] for i in customer_ids}
        if not customer_ids:
            return found
        query = (
            select(CustomerPhone)
            .where(col(CustomerPhone.customer_id).in_(list(customer_ids)))
            .order_by(col(CustomerPhone.created_at), col(CustomerPhone.e164))
        )
        for phone in (await self.session.exec(query)).all():
            found.setdefault(phone.customer_id, []).append(phone.e164)
        return found

    async def delete_phone(self, phone: CustomerPhone) -> None:
        await self.session.delete(phone)

    # -- addresses -----------------------------------------------------------------------------
    async def addresses_for(
        self, customer_ids: Collection[UUID]
    ) -> dict[UUID, list[CustomerAddress]]:
        found: dict[UUID, list[CustomerAddress]] = {i: [] for i in customer_ids}
        if not customer_ids:
            return found
        query = (
            select(CustomerAddress)
            .where(col(CustomerAddress.customer_id).in_(list(customer_ids)))
            .order_by(col(CustomerAddress.created_at), col(CustomerAddress.id))
        )
        for address in (await self.session.exec(query)).all():
            found.setdefault(address.customer_id, []).append(address)
        return found

    async def get_address(self, customer_id: UUID, address_id: UUID) -> CustomerAddress | None:
        query = select(CustomerAddress).where(
            CustomerAddress.customer_id == customer_id, CustomerAddress.id == address_id
        )
        return (await self.session.exec(query)).first()

    async def delete_address(self, address: CustomerAddress) -> None:
        await self.session.delete(address)

    # -- the timeline --------------------------------------------------------------------------
    async def insert_contact(
        self,
        *,
        tenant_id: UUID,
        customer_id: UUID,
        kind: ContactKind,
        direction: ContactDirection,
        ref: str,
        summary: str,
        at: datetime,
    ) -> bool:
        """Record a contact once: the same (kind, ref) again changes nothing, except that an
        entry made without its customer (the end of a call seen before its start) gets it.
        True if the entry is new or was completed."""
        values = {
            "tenant_id": tenant_id,
            "id": uuid4(),
            "customer_id": customer_id,
            "kind": kind.value,
            "direction": direction.value,
            "ref": ref,
            "summary": summary,
            "at": at,
        }
        statement = insert(Contact).values(**values)
        upsert = statement.on_conflict_do_update(
            index_elements=["tenant_id", "kind", "ref"],
            set_={"customer_id": statement.excluded.customer_id, "at": statement.excluded.at},
            where=col(Contact.customer_id).is_(None),
        )
        return (await self.session.execute(upsert.returning(col(Contact.id)))).first() is not None

    async def set_contact_summary(
        self,
        *,
        tenant_id: UUID,
        kind: ContactKind,
        direction: ContactDirection,
        ref: str,
        summary: str,
        at: datetime,
    ) -> None:
        """Set an entry's summary; if its start has not been recorded yet (events of one call
        may be handled in any order), keep it in an entry the start then completes."""
        values = {
            "tenant_id": tenant_id,
            "id": uuid4(),
            "customer_id": None,
            "kind": kind.value,
            "direction": direction.value,
            "ref": ref,
            "summary": summary,
            "at": at,
        }
        statement = insert(Contact).values(**values)
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=["tenant_id", "kind", "ref"],
                set_={"summary": statement.excluded.summary},
            )
        )

    async def timeline(self, customer_id: UUID, limit: int) -> list[Contact]:
        query = (
            select(Contact)
            .where(Contact.customer_id == customer_id)
            .order_by(col(Contact.at).desc(), col(Contact.id))
            .limit(limit)
        )
        return list((await self.session.exec(query)).all())

    async def move_to(self, tenant_id: UUID, duplicate_id: UUID, survivor_id: UUID) -> None:
        """Everything of the duplicate now belongs to the survivor (a merge)."""
        for table in (CustomerPhone, CustomerAddress, Contact):
            await self.session.execute(
                update(table)
                .where(
                    col(table.tenant_id) == tenant_id,
                    col(table.customer_id) == duplicate_id,
                )
                .values(customer_id=survivor_id)
            )

    # -- imports -------------------------------------------------------------------------------
    async def get_import(self, import_id: UUID, *, lock: bool = False) -> CustomerImport | None:
        query = select(CustomerImport).where(CustomerImport.id == import_id)
        if lock:
            query = query.with_for_update()
        return (await self.session.exec(query)).first()

    async def recent_imports(self, limit: int = 20) -> list[CustomerImport]:
        query = select(CustomerImport).order_by(col(CustomerImport.created_at).desc()).limit(limit)
        return list((await self.session.exec(query)).all())

    async def import_file(self, import_id: UUID) -> bytes | None:
        query = select(CustomerImportFile.content).where(CustomerImportFile.id == import_id)
        content = (await self.session.exec(query)).first()
        return bytes(content) if content is not None else None

    async def delete_import_file(self, import_id: UUID) -> None:
        await self.session.execute(
            delete(CustomerImportFile).where(col(CustomerImportFile.id) == import_id)
        )
