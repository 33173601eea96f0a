"""Finding and keeping profiles: search, the screen pop's caller card, VIPs, edits and merges."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

import pytest

from customers import service
from customers.schemas import AddressIn, CustomerIn, CustomerPatch
from depotline.db import Database, tenant_scope
from depotline.errors import Conflict, InvalidInput, NotFound
from tenant.repository import TenantRepository
from tests.customers.conftest import Desk
from tests.telephony_gateway.conftest import CALLER
from tests.tenant.conftest import Demo
from tests.tenant.test_seats import principal


async def names_found(desk: Desk, query: str) -> list[str | None]:
    return [hit.customer.name for hit in await desk.run(service.search, query)]


async def test_search_by_name_number_fragment_address_and_tag(seeded: Desk) -> None:
    assert await names_found(seeded, "john") == ["John Carter"]  # any case
    assert await names_found(seeded, "王") == ["王芳"]
    assert await names_found(seeded, "0013 8000") == ["王芳"]  # a fragment as people say it
    assert await names_found(seeded, "86001234") == ["李伟"]  # his second, landline number
    assert await names_found(seeded, "天河路") == ["王芳"]
    assert await names_found(seeded, "518048") == ["陈小红"]  # postal code
    assert await names_found(seeded, "electronics") == ["李伟"]  # a tag
    assert set(await names_found(seeded, "深圳")) == {"李伟", "陈小红"}
    assert await names_found(seeded, "深圳 福田") == ["陈小红"]  # every word must match
    assert await names_found(seeded, "100%_") == []  # LIKE wildcards are plain text
    # Harbour's customers are not SwiftFreight's to find.
    assert await names_found(seeded, "Emily") == []
    assert len(await names_found(seeded, "")) == 5  # no query: the most recently changed


async def test_caller_card_for_a_known_and_an_unknown_number(seeded: Desk) -> None:
    card = await seeded.run(service.caller_card, "13800138000", recent=2)
    assert card.name == "王芳" and card.tier == "standard" and not card.is_vip
    assert card.phones == [CALLER]
    assert [a.city for a in card.addresses] == ["广州"]
    assert card.addresses[0].postal_code == "510620"
    # The two most recent of the demo history, newest first.
    assert [(r.kind, r.direction) for r in card.recent] == [
        ("sms", "outbound"),
        ("call", "inbound"),
    ]
    assert card.region == "Beijing" and card.carrier == "China Mobile"

    unknown = await seeded.run(service.caller_card, "+86 139 1234 0000", language="zh_Hans")
    assert unknown.customer_id is None and unknown.name is None and unknown.recent == []
    assert unknown.number == "+8613912340000"
    assert unknown.region == "江苏省常州市" and unknown.carrier == "中国移动"
    hong_kong = await seeded.run(service.caller_card, "+85291234567", language="zh_Hant")
    assert hong_kong.customer_id is None  # Harbour's customer, not SwiftFreight's
    assert hong_kong.region == "香港"
    with pytest.raises(InvalidInput) as refused:
        await seeded.run(service.caller_card, "not a number")
    assert refused.value.field == "phone"


async def test_vip_callers_are_recognised_by_any_of_their_numbers(seeded: Desk) -> None:
    assert await seeded.run(service.is_vip, "+8613912345678")
    assert await seeded.run(service.is_vip, "0755 8600 1234")  # 李伟's office line
    assert not await seeded.run(service.is_vip, CALLER)
    assert not await seeded.run(service.is_vip, "+8613900000000")  # nobody
    assert not await seeded.run(service.is_vip, "anonymous")


async def test_editing_rules_name_the_field(seeded: Desk) -> None:
    wang = await seeded.owner_of(CALLER)
    assert wang is not None

    async def refused(fn: object, *args: object, **kwargs: object) -> tuple[str | None, str]:
        with pytest.raises((InvalidInput, Conflict)) as error:
            await seeded.run(fn, *args, **kwargs)  # type: ignore[arg-type]
        return error.value.field, error.value.detail

    assert await refused(
        service.create_customer, None, CustomerIn(name="Nobody", phones=["12345"])
    ) == ("phones", service.PHONE_INVALID)
    assert await refused(
        service.create_customer, None, CustomerIn(name="Copy", phones=["+8613800138000"])
    ) == ("phones", service.PHONE_TAKEN)
    assert await refused(service.update_customer, None, wang.id, CustomerPatch(tier="gold")) == (
        "tier",
        service.TIER_UNKNOWN,
    )
    assert await refused(service.update_customer, None, wang.id, CustomerPatch(language="fr")) == (
        "language",
        service.LANGUAGE_UNKNOWN,
    )
    assert await refused(
        service.add_address, None, wang.id, AddressIn(line1="1 Road", lat=91.0, lon=0.0)
    ) == ("lat", service.POSITION_INVALID)
    assert await refused(service.remove_phone, None, wang.id, CALLER) == (
        "phone",
        service.PHONE_LAST,
    )
    changed = await seeded.run(
        service.update_customer,
        None,
        wang.id,
        CustomerPatch(tier="VIP", tags=["tea", "Tea", " e-commerce "], language="zh-TW"),
    )
    assert (changed.tier, changed.tags, changed.language) == (
        "vip",
        ["tea", "e-commerce"],
        "zh_Hant",
    )
    assert changed.name == "王芳"  # not sent, not changed


async def test_merge_moves_numbers_addresses_and_contacts_and_is_audited(
    seeded: Desk, db: Database, world: Demo
) -> None:
    admin = await principal(db, "admin@swiftfreight.test", seeded.tenant_id)
    survivor = await seeded.owner_of(CALLER)
    assert survivor is not None
    # The same person called from a second phone and got a nameless profile.
    await seeded.run(
        service.record_contact,
        kind="call",
        ref="CALL-FROM-SECOND-PHONE",
        summary="1:00 (completed)",
        direction="inbound",
        at=datetime.now(UTC),
        phone="+8613722223333",
    )
    duplicate = await seeded.owner_of("+8613722223333")
    assert duplicate is not None and duplicate.name is None
    await seeded.run(
        service.add_address,
        None,
        duplicate.id,
        AddressIn(
            line1="天河路 385 号太古汇 2 楼", district="天河区", city="广州", postal_code="510620"
        ),
    )
    await seeded.run(
        service.add_address, None, duplicate.id, AddressIn(line1="新港中路 397 号", city="广州")
    )

    merged = await seeded.run(service.merge_by_reference, admin, survivor.id, "137 2222 3333")
    assert merged.id == survivor.id and merged.name == "王芳"
    found = await seeded.profile_of("+8613722223333")
    assert found.customer.id == survivor.id
    assert found.phones == [CALLER, "+8613722223333"]
    # The address both had is there once; the new one moved over.
    assert [a.line1 for a in found.addresses] == ["天河路 385 号太古汇 2 楼", "新港中路 397 号"]
    assert ("call", "1:00 (completed)") in [(c.kind, c.summary) for c in found.timeline]
    old = await seeded.run(service.get_customer, duplicate.id)
    assert old.merged_into == survivor.id
    # A contact for the merged-away profile lands on the survivor.
    await seeded.run(
        service.record_contact,
        kind="order",
        ref="PU-9",
        summary="Pickup booked",
        direction="inbound",
        at=datetime.now(UTC),
        customer_id=duplicate.id,
    )
    assert (await seeded.profile_of(CALLER)).timeline[0].summary == "Pickup booked"
    assert [h.customer.id for h in await seeded.run(service.search, "3333")] == [survivor.id]

    with pytest.raises(Conflict):
        await seeded.run(service.merge, admin, survivor.id, duplicate.id)
    with pytest.raises(InvalidInput):
        await seeded.run(service.merge, admin, survivor.id, survivor.id)
    with pytest.raises(InvalidInput) as missing:
        await seeded.run(service.merge_by_reference, admin, survivor.id, "+8613900000001")
    assert missing.value.field == "duplicate"
    with pytest.raises(NotFound):  # someone else's (or no) profile to merge into
        await seeded.run(service.merge_by_reference, admin, uuid4(), CALLER)

    with tenant_scope(seeded.tenant_id):
        async with db.session() as session:
            merges = await TenantRepository(session).audit_entries(action="customer.merge")
    assert [(e.record_id, e.detail["duplicate"]) for e in merges] == [
        (str(survivor.id), str(duplicate.id))
    ]
