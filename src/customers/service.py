"""Business rules of end-customer profiles: who a caller is, the timeline of every contact,
search, editing and merging profiles, and bulk imports. No HTTP here.

Other domains call `customer_for_caller`, `caller_card`, `is_vip` and `record_contact`, or
publish a CONTACT event through the outbox (see `contact_event`) instead of importing this.
Messages of InvalidInput are fixed English sentences, so pages show them translated; the field
says where the problem is."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import phonenumbers
import structlog
from sqlmodel.ext.asyncio.session import AsyncSession

from customers import import_files
from customers.models import (
    ContactDirection,
    ContactKind,
    Customer,
    CustomerAddress,
    CustomerImport,
    CustomerImportFile,
    ImportStatus,
    Tier,
)
from customers.repository import CustomerRepository
from customers.schemas import (
    AddressIn,
    AddressView,
    CallerCard,
    ContactView,
    CustomerIn,
    CustomerPatch,
    Profile,
    SearchHit,
)
from depotline import i18n, outbox
from depotline.auth import Principal
from depotline.db import require_tenant, utcnow
from depotline.errors import Conflict, InvalidInput, NotFound
from telephony_gateway.service import e164
from tenant.service import audit, record_client_data_read

log = structlog.get_logger(__name__)

#: Outbox topic other domains publish a contact on (payload: see `contact_event`).
CONTACT = "customers.contact"
#: Outbox topic of an uploaded import waiting to be processed: {"import_id"}.
IMPORT_REQUESTED = "customers.import"

MAX_NAME = 200
MAX_LINE = 200
MAX_NOTES = 4000
MAX_TAG = 40
MAX_TAGS = 20
MAX_PHONES = 10
MAX_SUMMARY = 500
RECENT_ON_CARD = 5
TIMELINE_LENGTH = 200
IMPORT_BATCH = 200
#: Rejected-row lines kept in an import's report; the counts stay exact beyond it.
REPORT_LIMIT = 10_000

# Reasons, fixed sentences (the catalogs translate them on pages and in import reports).
PHONE_MISSING = "A phone number is required"
PHONE_INVALID = "Not a valid phone number"
PHONE_TOO_MANY = "At most 10 phone numbers"
PHONE_TAKEN = "This number belongs to another customer: merge the two profiles instead"
PHONE_LAST = "A customer keeps at least one phone number"
PHONE_OWNERS = "These numbers belong to different customers: merge them first"
TIER_UNKNOWN = "Unknown tier: use standard or vip"
LANGUAGE_UNKNOWN = "Unknown language: use en, zh_Hans or zh_Hant"
NAME_TOO_LONG = "Longer than 200 characters"
NOTES_TOO_LONG = "Longer than 4000 characters"
TAG_TOO_LONG = "A tag is longer than 40 characters"
TAGS_TOO_MANY = "At most 20 tags"
LINE1_MISSING = "An address needs its street (line1)"
COUNTRY_UNKNOWN = "Not a country code (two letters, e.g. CN)"
POSITION_INVALID = "Latitude (-90 to 90) and longitude (-180 to 180) go together"
KIND_UNKNOWN = "Unknown contact kind: use call, sms, order, complaint or callback"
DIRECTION_UNKNOWN = "Direction is inbound or outbound"

TAG_SEPARATORS = re.compile(r"[;,，；、]")
PHONE_SEPARATORS = re.compile(r"[;,，；/\n]")
#: A query that is only a number fragment ("138 0013", "+86-20-8888"): searched in numbers only.
NUMBER_QUERY = re.compile(r"^[\d\s+\-().]+$")
#: The geocoder's and carrier table's language for each of our locales.
PHONE_DATA_LANGUAGE: dict[str, tuple[str, str | None]] = {
    "en": ("en", None),
    "zh_Hans": ("zh", None),
    "zh_Hant": ("zh", "Hant"),
}


# -- rules on single fields ---------------------------------------------------------------------
def phone_number(raw: str, *, region: str = "CN", field: str = "phone") -> str:
    """A number a person typed, in E.164; it must exist in the numbering plan."""
    if not raw.strip():
        raise InvalidInput(PHONE_MISSING, field=field)
    try:
        number = e164(raw, region, field=field)
        valid = phonenumbers.is_valid_number(phonenumbers.parse(number))
    except InvalidInput:
        valid = False
    if not valid:
        raise InvalidInput(PHONE_INVALID, field=field)
    return number


def phone_numbers(
    raw: str | Sequence[str], *, region: str = "CN", field: str = "phone"
) -> list[str]:
    """Several numbers ("a; b" or a list), each checked, without repeats."""
    parts = PHONE_SEPARATORS.split(raw) if isinstance(raw, str) else list(raw)
    numbers: list[str] = []
    for part in parts:
        if part.strip():
            number = phone_number(part, region=region, field=field)
            if number not in numbers:
                numbers.append(number)
    if not numbers:
        raise InvalidInput(PHONE_MISSING, field=field)
    if len(numbers) > MAX_PHONES:
        raise InvalidInput(PHONE_TOO_MANY, field=field)
    return numbers


def tier_of(value: str, *, field: str = "tier") -> Tier:
    try:
        return Tier(value.strip().lower())
    except ValueError:
        raise InvalidInput(TIER_UNKNOWN, field=field) from None


def language_of(value: str, *, field: str = "language") -> str:
    found = value.strip() if value.strip() in i18n.LOCALES else i18n.normalise(value)
    if found is None:
        raise InvalidInput(LANGUAGE_UNKNOWN, field=field)
    return found


def name_of(value: str | None, *, field: str = "name") -> str | None:
    name = " ".join((value or "").split())
    if len(name) > MAX_NAME:
        raise InvalidInput(NAME_TOO_LONG, field=field)
    return name or None


def notes_of(value: str, *, field: str = "notes") -> str:
    notes = value.strip()
    if len(notes) > MAX_NOTES:
        raise InvalidInput(NOTES_TOO_LONG, field=field)
    return notes


def tags_of(values: str | Iterable[str], *, field: str = "tags") -> list[str]:
    parts = TAG_SEPARATORS.split(values) if isinstance(values, str) else values
    tags: list[str] = []
    for part in parts:
        tag = " ".join(part.split())
        if len(tag) > MAX_TAG:
            raise InvalidInput(TAG_TOO_LONG, field=field)
        if tag and tag.lower() not in (t.lower() for t in tags):
            tags.append(tag)
    if len(tags) > MAX_TAGS:
        raise InvalidInput(TAGS_TOO_MANY, field=field)
    return tags


def address_of(data: AddressIn, *, prefix: str = "") -> AddressIn:
    """A checked, tidied address; `prefix` goes before field names ("addresses[0].")."""
    tidy = {
        name: " ".join(str(getattr(data, name) or "").split())
        for name in ("label", "line1", "line2", "district", "city", "postal_code")
    }
    if not tidy["line1"]:
        raise InvalidInput(LINE1_MISSING, field=f"{prefix}line1")
    for name, value in tidy.items():
        if len(value) > MAX_LINE:
            raise InvalidInput(NAME_TOO_LONG, field=f"{prefix}{name}")
    country = (data.country or "CN").strip().upper()
    if country not in phonenumbers.SUPPORTED_REGIONS:
        raise InvalidInput(COUNTRY_UNKNOWN, field=f"{prefix}country")
    if (data.lat is None) != (data.lon is None) or (
        data.lat is not None
        and data.lon is not None
        and not (-90 <= data.lat <= 90 and -180 <= data.lon <= 180)
    ):
        raise InvalidInput(POSITION_INVALID, field=f"{prefix}lat")
    return AddressIn(**tidy, country=country, lat=data.lat, lon=data.lon)


def _same_place(a: AddressIn | CustomerAddress, b: AddressIn | CustomerAddress) -> bool:
    def key(x: AddressIn | CustomerAddress) -> tuple[str, ...]:
        return tuple(
            str(getattr(x, name)).casefold()
            for name in ("line1", "line2", "district", "city", "postal_code", "country")
        )

    return key(a) == key(b)


def _union(tags: Sequence[str], more: Sequence[str]) -> list[str]:
    """Both lists of tags without repeats (any case), cut to the most a profile keeps."""
    merged: list[str] = []
    for tag in (*tags, *more):
        if tag.casefold() not in (t.casefold() for t in merged):
            merged.append(tag)
    return merged[:MAX_TAGS]


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


# -- callers: the contract other domains code against -------------------------------------------
async def customer_for_caller(session: AsyncSession, phone: str) -> Customer:
    """The customer who owns this number, or a new nameless profile for an unknown caller.
    Two calls from one new number at the same moment give one customer: the number is claimed
    first (unique per tenant, ON CONFLICT DO NOTHING), and the loser reads the winner's."""
    number = e164(phone, field="phone")
    tenant_id = require_tenant()
    repo = CustomerRepository(session)
    found = await repo.customer_by_phone(tenant_id, number)
    if found is not None:
        return found
    customer = Customer(tenant_id=tenant_id, id=uuid4())
    if await repo.claim_phone(tenant_id, number, customer.id):
        repo.add(customer)
        await repo.flush()
        log.info("customer created for an unknown caller", customer_id=str(customer.id))
        return customer
    found = await repo.customer_by_phone(tenant_id, number)
    if found is None:  # claimed and released again in the meantime: a retry will do
        raise Conflict("The number changed hands just now; try again", field="phone")
    return found


async def caller_card(
    session: AsyncSession, phone: str, *, recent: int = RECENT_ON_CARD, language: str = "en"
) -> CallerCard:
    """The screen pop: the caller's profile with the most recent contacts, or for an unknown
    number just its region and carrier. At most three queries."""
    number = e164(phone, field="phone")
    region, carrier = _number_facts(number, language)
    repo = CustomerRepository(session)
    found = await repo.card(require_tenant(), number)
    if found is None:
        return CallerCard(
            number=number, customer_id=None, name=None, tier=None, region=region, carrier=carrier
        )
    customer, phones = found
    addresses = (await repo.addresses_for([customer.id]))[customer.id]
    contacts = await repo.timeline(customer.id, recent) if recent > 0 else []
    return CallerCard(
        number=number,
        customer_id=customer.id,
        name=customer.name,
        tier=str(customer.tier),
        tags=list(customer.tags),
        notes=customer.notes,
        phones=phones,
        addresses=[AddressView.of(a) for a in addresses],
        recent=[ContactView.of(c) for c in contacts],
        region=region,
        carrier=carrier,
    )


def load_number_data() -> None:
    """Load the geocoder's and carrier tables (seconds of CPU): the web app does it at
    start-up; a worker, which never describes a number, does not."""
    import phonenumbers.carrier
    import phonenumbers.geocoder  # noqa: F401


def _number_facts(number: str, language: str) -> tuple[str, str]:
    from phonenumbers import carrier as phone_carrier
    from phonenumbers import geocoder

    lang, script = PHONE_DATA_LANGUAGE.get(language, ("en", None))
    parsed = phonenumbers.parse(number)
    region = geocoder.description_for_number(parsed, lang, script=script)
    return region, phone_carrier.name_for_number(parsed, lang, script=script)


async def caller_card_for(
    session: AsyncSession,
    actor: Principal,
    phone: str,
    *,
    ip: str | None = None,
    recent: int = RECENT_ON_CARD,
    language: str = "en",
) -> CallerCard:
    """`caller_card` for a person: a screen pop of a client's data by an outsourced agent is on
    record."""
    card = await caller_card(session, phone, recent=recent, language=language)
    if card.customer_id is not None:
        record_client_data_read(session, actor, "customer", card.customer_id, ip)
    return card


async def is_vip(session: AsyncSession, phone: str) -> bool:
    """Whether the caller is a VIP customer (an unreadable number is not)."""
    try:
        number = e164(phone, field="phone")
    except InvalidInput:
        return False
    return await CustomerRepository(session).is_vip(require_tenant(), number)


async def record_contact(
    session: AsyncSession,
    *,
    kind: str,
    ref: str,
    summary: str,
    direction: str,
    at: datetime,
    phone: str | None = None,
    customer_id: UUID | None = None,
) -> None:
    """Put a contact on a customer's timeline, once per (kind, ref): a retried event changes
    nothing. The customer is `customer_id` (followed to the profile it was merged into) or the
    owner of `phone`, created for an unknown number."""
    try:
        chosen_kind = ContactKind(kind)
    except ValueError:
        raise InvalidInput(KIND_UNKNOWN, field="kind") from None
    try:
        chosen_direction = ContactDirection(direction)
    except ValueError:
        raise InvalidInput(DIRECTION_UNKNOWN, field="direction") from None
    if not ref.strip():
        raise InvalidInput("A contact needs its reference", field="ref")
    if customer_id is not None:
        customer = await _current(session, customer_id)
    elif phone:
        customer = await customer_for_caller(session, phone)
    else:
        raise InvalidInput("Give the customer's phone or id", field="phone")
    await CustomerRepository(session).insert_contact(
        tenant_id=customer.tenant_id,
        customer_id=customer.id,
        kind=chosen_kind,
        direction=chosen_direction,
        ref=ref.strip(),
        summary=" ".join(summary.split())[:MAX_SUMMARY],
        at=_aware(at),
    )


def contact_event(
    *,
    kind: str,
    ref: str,
    summary: str,
    direction: str,
    at: datetime,
    phone: str | None = None,
    customer_id: UUID | None = None,
) -> dict[str, Any]:
    """The payload of a CONTACT event, for domains that publish rather than import:
    `outbox.publish(session, CONTACT, contact_event(kind="order", ref=..., ...))`."""
    payload: dict[str, Any] = {
        "kind": kind,
        "ref": ref,
        "summary": summary,
        "direction": direction,
        "at": _aware(at).isoformat(),
    }
    if phone is not None:
        payload["phone"] = phone
    if customer_id is not None:
        payload["customer_id"] = str(customer_id)
    return payload


async def record_contact_event(session: AsyncSession, payload: Mapping[str, Any]) -> None:
    """A CONTACT event's payload, checked like a direct call (InvalidInput names the field)."""
    try:
        at = datetime.fromisoformat(str(payload["at"])) if payload.get("at") else utcnow()
    except ValueError:
        raise InvalidInput("Not an ISO 8601 time", field="at") from None
    try:
        customer_id = UUID(str(payload["customer_id"])) if payload.get("customer_id") else None
    except ValueError:
        raise InvalidInput("Not a customer id", field="customer_id") from None
    await record_contact(
        session,
        kind=str(payload.get("kind", "")),
        ref=str(payload.get("ref", "")),
        summary=str(payload.get("summary", "")),
        direction=str(payload.get("direction", "inbound")),
        at=at,
        phone=str(payload["phone"]) if payload.get("phone") else None,
        customer_id=customer_id,
    )


async def call_ended(
    session: AsyncSession,
    call_id: str,
    duration_seconds: int,
    reason: str,
    *,
    direction: str = ContactDirection.INBOUND,
    at: datetime | None = None,
) -> None:
    """The call's timeline entry gets its length and outcome ("1:05 (completed)")."""
    minutes, seconds = divmod(max(0, duration_seconds), 60)
    await CustomerRepository(session).set_contact_summary(
        tenant_id=require_tenant(),
        kind=ContactKind.CALL,
        direction=ContactDirection(direction),
        ref=call_id,
        summary=f"{minutes}:{seconds:02d} ({reason})",
        at=_aware(at or utcnow()),
    )


# -- profiles -----------------------------------------------------------------------------------
async def get_customer(session: AsyncSession, customer_id: UUID) -> Customer:
    customer = await CustomerRepository(session).get(customer_id)
    if customer is None:
        raise NotFound("No such customer", field="customer_id")
    return customer


async def _current(session: AsyncSession, customer_id: UUID) -> Customer:
    """The customer, or the profile it was merged into."""
    customer = await get_customer(session, customer_id)
    for _ in range(10):  # merges form a chain at most this long in practice; never loop forever
        if customer.merged_into is None:
            break
        customer = await get_customer(session, customer.merged_into)
    return customer


async def profile(
    session: AsyncSession,
    customer_id: UUID,
    *,
    actor: Principal | None = None,
    ip: str | None = None,
    timeline: int = TIMELINE_LENGTH,
) -> Profile:
    """A customer with numbers, addresses and timeline. A read by an outsourced agent is on
    record."""
    customer = await get_customer(session, customer_id)
    repo = CustomerRepository(session)
    phones = (await repo.phones_for([customer.id]))[customer.id]
    addresses = (await repo.addresses_for([customer.id]))[customer.id]
    contacts = await repo.timeline(customer.id, timeline) if timeline > 0 else []
    if actor is not None:
        record_client_data_read(session, actor, "customer", customer.id, ip)
    return Profile(
        customer=customer,
        phones=phones,
        addresses=[AddressView.of(a) for a in addresses],
        timeline=[ContactView.of(c) for c in contacts],
    )


async def search(
    session: AsyncSession,
    query: str,
    *,
    limit: int = 50,
    actor: Principal | None = None,
    ip: str | None = None,
) -> list[SearchHit]:
    """By name (any case), tag, address text, or any fragment of a number ("0013 8000");
    several words must each match. An empty query lists the most recently changed."""
    text = " ".join(query.split())[:MAX_LINE]
    digits = "".join(ch for ch in text if ch.isdigit())
    number_only = bool(NUMBER_QUERY.match(text)) and len(digits) >= 3
    repo = CustomerRepository(session)
    found = await repo.search(
        text.split(), digits if number_only else None, max(1, min(limit, 200))
    )
    ids = [c.id for c in found]
    phones = await repo.phones_for(ids)
    addresses = await repo.addresses_for(ids)
    if actor is not None and found:
        record_client_data_read(session, actor, "customer_search", text or "(recent)", ip)
    return [
        SearchHit(
            customer=c,
            phones=phones[c.id],
            address=AddressView.of(addresses[c.id][0]) if addresses[c.id] else None,
        )
        for c in found
    ]


async def create_customer(
    session: AsyncSession, actor: Principal | None, data: CustomerIn
) -> Customer:
    """A new profile with at least one number; a number already known is refused (Conflict),
    the profile that has it should be used or merged."""
    repo = CustomerRepository(session)
    tenant_id = require_tenant()
    numbers = phone_numbers(data.phones, field="phones")
    customer = Customer(
        tenant_id=tenant_id,
        id=uuid4(),
        name=name_of(data.name),
        tier=tier_of(data.tier),
        tags=tags_of(data.tags),
        notes=notes_of(data.notes),
        language=language_of(data.language),
    )
    addresses = [address_of(a, prefix=f"addresses[{i}].") for i, a in enumerate(data.addresses)]
    for number in numbers:
        if not await repo.claim_phone(tenant_id, number, customer.id):
            raise Conflict(PHONE_TAKEN, field="phones")
    repo.add(customer)
    for address in addresses:
        repo.add(_address_row(customer, address))
    await repo.flush()
    _audit(session, actor, "customer.create", customer)
    return customer


async def update_customer(
    session: AsyncSession, actor: Principal | None, customer_id: UUID, changes: CustomerPatch
) -> Customer:
    repo = CustomerRepository(session)
    customer = await _editable(repo, customer_id)
    sent = changes.model_fields_set
    if "name" in sent:
        customer.name = name_of(changes.name)
    if "tier" in sent and changes.tier is not None:
        customer.tier = tier_of(changes.tier)
    if "tags" in sent and changes.tags is not None:
        customer.tags = tags_of(changes.tags)
    if "notes" in sent and changes.notes is not None:
        customer.notes = notes_of(changes.notes)
    if "language" in sent and changes.language is not None:
        customer.language = language_of(changes.language)
    customer.updated_at = utcnow()
    repo.add(customer)
    _audit(session, actor, "customer.update", customer, fields=",".join(sorted(sent)))
    return customer


async def add_phone(
    session: AsyncSession, actor: Principal | None, customer_id: UUID, phone: str
) -> str:
    repo = CustomerRepository(session)
    customer = await _editable(repo, customer_id)
    number = phone_number(phone)
    owner = await repo.phone(customer.tenant_id, number)
    if owner is not None and owner.customer_id == customer.id:
        return number
    if len((await repo.phones_for([customer.id]))[customer.id]) >= MAX_PHONES:
        raise InvalidInput(PHONE_TOO_MANY, field="phone")
    if owner is not None or not await repo.claim_phone(customer.tenant_id, number, customer.id):
        raise Conflict(PHONE_TAKEN, field="phone")
    _touch(repo, customer)
    _audit(session, actor, "customer.phone.add", customer, phone=number)
    return number


async def remove_phone(
    session: AsyncSession, actor: Principal | None, customer_id: UUID, phone: str
) -> None:
    repo = CustomerRepository(session)
    customer = await _editable(repo, customer_id)
    try:
        number = e164(phone, field="phone")
    except InvalidInput:
        raise NotFound("The customer has no such number", field="phone") from None
    row = await repo.phone(customer.tenant_id, number)
    if row is None or row.customer_id != customer.id:
        raise NotFound("The customer has no such number", field="phone")
    if len((await repo.phones_for([customer.id]))[customer.id]) <= 1:
        raise Conflict(PHONE_LAST, field="phone")
    await repo.delete_phone(row)
    _touch(repo, customer)
    _audit(session, actor, "customer.phone.remove", customer, phone=number)


async def add_address(
    session: AsyncSession, actor: Principal | None, customer_id: UUID, data: AddressIn
) -> CustomerAddress:
    repo = CustomerRepository(session)
    customer = await _editable(repo, customer_id)
    row = _address_row(customer, address_of(data))
    repo.add(row)
    _touch(repo, customer)
    await repo.flush()
    _audit(session, actor, "customer.address.add", customer, address_id=row.id)
    return row


async def remove_address(
    session: AsyncSession, actor: Principal | None, customer_id: UUID, address_id: UUID
) -> None:
    repo = CustomerRepository(session)
    customer = await _editable(repo, customer_id)
    address = await repo.get_address(customer.id, address_id)
    if address is None:
        raise NotFound("The customer has no such address", field="address_id")
    await repo.delete_address(address)
    _touch(repo, customer)
    _audit(session, actor, "customer.address.remove", customer, address_id=address_id)


async def merge(
    session: AsyncSession, actor: Principal | None, survivor_id: UUID, duplicate_id: UUID
) -> Customer:
    """Fold a duplicate profile into the survivor: its numbers, addresses (less exact repeats)
    and contacts move over; name, tier, tags and notes fill in. The duplicate stays, pointing to
    the survivor, so links to it still lead somewhere."""
    repo = CustomerRepository(session)
    survivor = await repo.get(survivor_id, lock=True)
    if survivor is None:
        raise NotFound("No such customer", field="customer_id")
    if duplicate_id == survivor_id:
        raise InvalidInput("A profile cannot be merged into itself", field="duplicate_id")
    duplicate = await repo.get(duplicate_id, lock=True)
    if duplicate is None:
        raise NotFound("No such customer to merge", field="duplicate_id")
    if survivor.merged_into is not None:
        raise Conflict("This profile was merged into another one", field="customer_id")
    if duplicate.merged_into is not None:
        raise Conflict("That profile was merged already", field="duplicate_id")
    if duplicate.tenant_id != survivor.tenant_id:
        raise InvalidInput("Profiles of different branches stay apart", field="duplicate_id")
    addresses = await repo.addresses_for([survivor.id, duplicate.id])
    for address in addresses[duplicate.id]:
        if any(_same_place(address, kept) for kept in addresses[survivor.id]):
            await repo.delete_address(address)
    await repo.flush()
    await repo.move_to(survivor.tenant_id, duplicate.id, survivor.id)
    survivor.name = survivor.name or duplicate.name
    if duplicate.tier == Tier.VIP:
        survivor.tier = Tier.VIP
    survivor.tags = _union(survivor.tags, duplicate.tags)
    if duplicate.notes and duplicate.notes not in survivor.notes:
        survivor.notes = "\n".join(n for n in (survivor.notes, duplicate.notes) if n)[:MAX_NOTES]
    survivor.updated_at = duplicate.updated_at = utcnow()
    duplicate.merged_into = survivor.id
    repo.add(survivor, duplicate)
    _audit(session, actor, "customer.merge", survivor, duplicate=duplicate.id)
    return survivor


async def merge_by_reference(
    session: AsyncSession, actor: Principal | None, survivor_id: UUID, duplicate: str
) -> Customer:
    """`merge` with the duplicate named by its id or one of its numbers, as people know it."""
    await get_customer(session, survivor_id)  # someone else's profile is not found, first
    found = await find_customer(session, duplicate)
    return await merge(session, actor, survivor_id, found.id)


async def find_customer(session: AsyncSession, reference: str) -> Customer:
    """A profile named by its id or one of its numbers (the merge form takes either). Not
    found is a mistake in the form (400 naming `duplicate`), not a missing page."""
    text = reference.strip()
    missing = InvalidInput("No customer with that id or number", field="duplicate")
    try:
        return await get_customer(session, UUID(text))
    except ValueError:
        pass
    except NotFound:
        raise missing from None
    try:
        number = e164(text, field="duplicate")
    except InvalidInput:
        raise InvalidInput("Give the other profile's number or id", field="duplicate") from None
    found = await CustomerRepository(session).customer_by_phone(require_tenant(), number)
    if found is None:
        raise missing
    return found


async def _editable(repo: CustomerRepository, customer_id: UUID) -> Customer:
    customer = await repo.get(customer_id, lock=True)
    if customer is None:
        raise NotFound("No such customer", field="customer_id")
    if customer.merged_into is not None:
        raise Conflict("This profile was merged into another one", field="customer_id")
    return customer


def _address_row(customer: Customer, address: AddressIn) -> CustomerAddress:
    return CustomerAddress(
        tenant_id=customer.tenant_id, customer_id=customer.id, **address.model_dump()
    )


def _touch(repo: CustomerRepository, customer: Customer) -> None:
    customer.updated_at = utcnow()
    repo.add(customer)


def _audit(
    session: AsyncSession, actor: Principal | None, action: str, customer: Customer, **detail: Any
) -> None:
    # In the customer's own tenant's log (an HQ editing a branch's customer included).
    if actor is not None:
        audit(
            session,
            actor,
            action,
            tenant_id=customer.tenant_id,
            record_type="customer",
            record_id=customer.id,
            **detail,
        )


# -- bulk import --------------------------------------------------------------------------------
async def start_import(
    session: AsyncSession,
    actor: Principal | None,
    *,
    file_name: str,
    content: bytes,
    default_region: str = "CN",
) -> CustomerImport:
    """Check the file's shape now (so a wrong file is refused at once, naming `file`), keep it,
    and leave the rows to the worker, which reports progress as it goes."""
    region = default_region.strip().upper() or "CN"
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise InvalidInput(COUNTRY_UNKNOWN, field="default_region")
    table = import_files.read_table(file_name, content)
    run = CustomerImport(
        file_name=(file_name or "upload").strip()[-200:],
        total=len(table.rows),
        default_region=region,
        created_by=actor.user_id if actor else None,
    )
    repo = CustomerRepository(session)
    repo.add(run)
    await repo.flush()
    repo.add(CustomerImportFile(tenant_id=run.tenant_id, id=run.id, content=content))
    outbox.publish(session, IMPORT_REQUESTED, {"import_id": str(run.id)})
    if actor is not None:
        audit(
            session,
            actor,
            "customer.import",
            record_type="customer_import",
            record_id=run.id,
            file=run.file_name,
            rows=run.total,
        )
    return run


async def get_import(session: AsyncSession, import_id: UUID) -> CustomerImport:
    run = await CustomerRepository(session).get_import(import_id)
    if run is None:
        raise NotFound("No such import", field="import_id")
    return run


async def recent_imports(session: AsyncSession) -> list[CustomerImport]:
    return await CustomerRepository(session).recent_imports()


async def import_rows(session: AsyncSession, import_id: UUID) -> list[import_files.Row] | None:
    """The rows of an import still to be done, or None when there is nothing (left) to do."""
    repo = CustomerRepository(session)
    run = await repo.get_import(import_id)
    if run is None or run.status in (ImportStatus.DONE, ImportStatus.FAILED):
        return None
    content = await repo.import_file(import_id)
    try:
        if content is None:
            raise InvalidInput("The uploaded file is gone", field="file")
        return import_files.read_table(run.file_name, content).rows
    except InvalidInput as exc:
        run.status, run.error, run.finished_at = ImportStatus.FAILED, exc.detail, utcnow()
        repo.add(run)
        return None


@dataclass
class RowData:
    """One row of an import, checked."""

    phones: list[str]
    name: str | None = None
    tier: Tier | None = None
    tags: list[str] = field(default_factory=list)
    notes: str = ""
    language: str | None = None
    address: AddressIn | None = None


@dataclass(frozen=True)
class Problem:
    field: str
    value: str
    reason: str


def check_row(row: Mapping[str, str], region: str) -> tuple[RowData | None, list[Problem]]:
    """Every problem of a row (one per field), or its checked data."""
    problems: list[Problem] = []

    def checked(name: str, rule: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return rule(*args, **kwargs)
        except InvalidInput as exc:
            problems.append(Problem(exc.field or name, row.get(name, "")[:200], exc.detail))
            return None

    phones = checked("phone", phone_numbers, row.get("phone", ""), region=region, field="phone")
    name = checked("name", name_of, row.get("name"), field="name")
    tier = checked("tier", tier_of, row["tier"], field="tier") if row.get("tier") else None
    tags = checked("tags", tags_of, row.get("tags", ""), field="tags")
    notes = checked("notes", notes_of, row.get("notes", ""), field="notes")
    language = (
        checked("language", language_of, row["language"], field="language")
        if row.get("language")
        else None
    )
    address = None
    place = ("label", "line1", "line2", "district", "city", "postal_code", "lat", "lon")
    if any(row.get(column) for column in place):
        try:
            position = {
                axis: float(row[axis]) if row.get(axis) else None for axis in ("lat", "lon")
            }
        except ValueError:
            value = f"{row.get('lat', '')} {row.get('lon', '')}"
            problems.append(Problem("lat", value, POSITION_INVALID))
        else:
            fields = {name: row.get(name, "") for name in place[:6]}
            address = checked(
                "line1",
                address_of,
                AddressIn(**fields, country=row.get("country") or "CN", **position),
            )
    if problems:
        return None, problems
    return RowData(
        phones=phones,
        name=name,
        tier=tier,
        tags=tags or [],
        notes=notes or "",
        language=language,
        address=address,
    ), []


async def import_batch(
    session: AsyncSession,
    import_id: UUID,
    rows: Sequence[import_files.Row],
    size: int = IMPORT_BATCH,
) -> bool:
    """Apply the next `size` rows of an import in this transaction, with its progress. Returns
    whether rows remain. Safe to repeat: progress and rows commit together."""
    repo = CustomerRepository(session)
    run = await repo.get_import(import_id, lock=True)
    if run is None or run.status in (ImportStatus.DONE, ImportStatus.FAILED):
        return False
    batch = rows[run.processed : run.processed + size]
    importer = _Importer(repo, run.tenant_id)
    checked = [(number, *check_row(row, run.default_region)) for number, row in batch]
    await importer.prefetch([n for _, data, _ in checked if data for n in data.phones])
    report: list[dict[str, Any]] = []
    accepted = rejected = created = 0
    for number, data, problems in checked:
        if data is not None:
            outcome = importer.owners_conflict(data) or await importer.apply(data)
            if not isinstance(outcome, Problem):
                created += int(outcome)
                accepted += 1
                continue
            problems = [outcome]
        rejected += 1
        report += [
            {"row": number, "field": p.field, "value": p.value, "reason": p.reason}
            for p in problems
        ]
    await repo.flush()
    room = max(0, REPORT_LIMIT - len(run.report))
    run.report = [*run.report, *report[:room]]
    run.processed += len(batch)
    run.accepted += accepted
    run.rejected += rejected
    run.created += created
    run.status = ImportStatus.RUNNING
    if run.processed >= len(rows):
        run.status, run.finished_at = ImportStatus.DONE, utcnow()
        await repo.delete_import_file(run.id)
    repo.add(run)
    return run.status == ImportStatus.RUNNING


class _Importer:
    """Applies checked rows: a row whose number is known (in the tenant, or earlier in the
    file) updates that profile; otherwise it makes a new one."""

    def __init__(self, repo: CustomerRepository, tenant_id: UUID) -> None:
        self.repo = repo
        self.tenant_id = tenant_id
        self.owners: dict[str, UUID] = {}
        self.customers: dict[UUID, Customer] = {}
        self.addresses: dict[UUID, list[AddressIn | CustomerAddress]] = {}

    async def prefetch(self, numbers: Sequence[str]) -> None:
        self.owners = await self.repo.owners_of(self.tenant_id, set(numbers))
        ids = set(self.owners.values())
        self.customers = await self.repo.customers_by_ids(ids)
        self.addresses = {k: list(v) for k, v in (await self.repo.addresses_for(ids)).items()}

    def owners_conflict(self, data: RowData) -> Problem | None:
        if len({self.owners[n] for n in data.phones if n in self.owners}) > 1:
            return Problem("phone", "; ".join(data.phones), PHONE_OWNERS)
        return None

    async def apply(self, data: RowData) -> bool | Problem:
        """True if the row made a new profile, False if it updated one; a Problem if every
        number of a would-be new profile was taken meanwhile (a call from it just now)."""
        owner = next((self.owners[n] for n in data.phones if n in self.owners), None)
        customer = (
            self.customers[owner]
            if owner is not None
            else Customer(tenant_id=self.tenant_id, id=uuid4())
        )
        claimed = [
            number
            for number in data.phones
            if number not in self.owners
            and await self.repo.claim_phone(self.tenant_id, number, customer.id)
        ]
        if owner is None and not claimed:
            return Problem("phone", "; ".join(data.phones), PHONE_TAKEN)
        self.owners.update(dict.fromkeys(claimed, customer.id))
        self.customers[customer.id] = customer
        _fill(customer, data)
        self.repo.add(customer)
        place = data.address
        known = self.addresses.setdefault(customer.id, [])
        if place is not None and not any(_same_place(place, a) for a in known):
            self.repo.add(_address_row(customer, place))
            known.append(place)
        return owner is None


def _fill(customer: Customer, data: RowData) -> None:
    """A row's values win; tags add up; notes add a line."""
    customer.name = data.name or customer.name
    customer.tier = data.tier or customer.tier
    customer.language = data.language or customer.language
    customer.tags = _union(customer.tags, data.tags)
    if data.notes and data.notes not in customer.notes:
        customer.notes = "\n".join(n for n in (customer.notes, data.notes) if n)[:MAX_NOTES]
    customer.updated_at = utcnow()


REPORT_COLUMNS = ("row", "field", "value", "reason")


def report_csv(run: CustomerImport, translate: Callable[[str], str] = str) -> str:
    """The rejected rows as CSV, reasons in the reader's language (`translate`)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(REPORT_COLUMNS)
    for line in run.report:
        reason = translate(str(line.get("reason", "")))
        writer.writerow([line.get("row", ""), line.get("field", ""), line.get("value", ""), reason])
    return out.getvalue()
