"""Who calls and texts: an unknown caller gets a profile, every call and SMS lands on the
customer's timeline once, and other domains add contacts through the outbox."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from customers import service
from customers.models import Customer
from customers.schemas import Profile
from depotline import outbox
from depotline.db import Database, tenant_scope
from telephony_gateway import service as gateway
from telephony_gateway.events import CallStarted
from telephony_gateway.simulate import SimulatedCarrier
from tests.customers.conftest import Desk
from tests.telephony_gateway.conftest import CALLER, NUMBER, Drain

NEW_CALLER = "+8613711112222"


def entries(found: Profile) -> list[tuple[str, str, str]]:
    return [(c.kind, c.direction, c.summary) for c in found.timeline]


async def test_unknown_caller_gets_a_profile_and_the_call_on_its_timeline(
    swift: Desk, carrier: SimulatedCarrier, drain: Drain
) -> None:
    assert await swift.owner_of(NEW_CALLER) is None
    call = await carrier.call(NEW_CALLER, "", 42)
    await drain()

    found = await swift.profile_of(NEW_CALLER)
    assert found.customer.name is None  # nobody knows the name yet
    assert found.phones == [NEW_CALLER]
    assert entries(found) == [("call", "inbound", "0:42 (completed)")]

    # The next screen pop for this number knows the profile and the call.
    card = await swift.run(service.caller_card, "137 1111 2222")
    assert card.customer_id == found.customer.id and card.number == NEW_CALLER
    assert [(r.kind, r.summary) for r in card.recent] == [("call", "0:42 (completed)")]
    assert call.call_id  # the simulated carrier's id is the entry's reference
    with tenant_scope(swift.tenant_id):
        async with swift.db.session() as session:
            refs = (await session.execute(text("select ref from customer_contacts"))).scalars()
            assert list(refs) == [call.call_id]


async def test_a_retried_event_records_once(swift: Desk, db: Database, drain: Drain) -> None:
    started = CallStarted(
        provider="simulator",
        provider_event_id="evt-1",
        call_id="CALL-RETRIED",
        from_number=NEW_CALLER,
        to_number=NUMBER,
    )
    with tenant_scope(swift.tenant_id):
        for _ in range(2):  # the outbox may deliver one event twice; here it even holds two
            async with db.session() as session:
                outbox.publish(session, gateway.CALL_EVENT, gateway.event_payload(started))
    await drain()
    when = datetime.now(UTC)
    for _ in range(2):
        await swift.run(
            service.record_contact,
            kind="call",
            ref="CALL-RETRIED",
            summary="again",
            direction="inbound",
            at=when,
            phone=NEW_CALLER,
        )
    found = await swift.profile_of(NEW_CALLER)
    assert entries(found) == [("call", "inbound", "")]


async def test_two_calls_from_one_new_number_at_once_make_one_customer(swift: Desk) -> None:
    first, second = await asyncio.gather(
        swift.run(service.customer_for_caller, NEW_CALLER),
        swift.run(service.customer_for_caller, "+86 137 1111 2222"),
    )
    assert first.id == second.id
    with tenant_scope(swift.tenant_id):
        async with swift.db.session() as session:
            count = await session.scalar(text("select count(*) from customers"))
    assert count == 1


async def test_sms_in_and_out_are_on_the_timeline(
    swift: Desk, carrier: SimulatedCarrier, db: Database, drain: Drain
) -> None:
    await carrier.sms(CALLER, "查询快递 SF1234567890 到哪里了？")
    with tenant_scope(swift.tenant_id):
        async with db.session() as session:
            await gateway.send_sms(
                session, to=CALLER, body="您的包裹已在派送途中", message_id="reply-1"
            )
    await drain()
    found = await swift.profile_of(CALLER)
    assert sorted(entries(found)) == [
        ("sms", "inbound", "查询快递 SF1234567890 到哪里了？"),
        ("sms", "outbound", "您的包裹已在派送途中"),
    ]


async def test_other_domains_publish_contacts_through_the_outbox(
    seeded: Desk, db: Database, drain: Drain
) -> None:
    wang = await seeded.owner_of(CALLER)
    assert isinstance(wang, Customer)
    booked = datetime.now(UTC) - timedelta(minutes=5)
    with tenant_scope(seeded.tenant_id):
        async with db.session() as session:
            outbox.publish(
                session,
                service.CONTACT,
                service.contact_event(
                    kind="order",
                    ref="PU-20261125-0001",
                    summary="Pickup booked: 2 parcels, 14:00-16:00",
                    direction="inbound",
                    at=booked,
                    customer_id=wang.id,
                ),
            )
            outbox.publish(
                session,
                service.CONTACT,
                service.contact_event(
                    kind="complaint",
                    ref="C-77",
                    summary="Parcel arrived damaged",
                    direction="inbound",
                    at=booked + timedelta(minutes=1),
                    phone="+8613655556666",  # nobody yet: a profile is made for the number
                ),
            )
            bad = outbox.publish(
                session, service.CONTACT, {"kind": "parcel", "ref": "x", "phone": CALLER}
            )
    await drain()
    newest = (await seeded.profile_of(CALLER)).timeline[0]
    assert (newest.kind, newest.summary) == ("order", "Pickup booked: 2 parcels, 14:00-16:00")
    assert entries(await seeded.profile_of("+8613655556666")) == [
        ("complaint", "inbound", "Parcel arrived damaged")
    ]
    # A payload no retry could fix is dropped, not retried for ever.
    async with db.session() as session:
        event = await outbox.OutboxRepository(session).get(bad.id)
    assert event is not None and event.processed_at is not None
