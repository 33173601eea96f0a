"""The harassment blocklist: reasons, authors, expiry, and every change on record."""

from __future__ import annotations

from datetime import timedelta

import pytest

from contact_center import service
from depotline.db import Database, tenant_scope, utcnow
from depotline.errors import Conflict, InvalidInput
from tenant.repository import TenantRepository
from tests.contact_center.conftest import Floor
from tests.tenant.conftest import Demo
from tests.tenant.test_seats import principal


async def test_block_expire_and_unblock_are_audited(
    floor: Floor, db: Database, world: Demo
) -> None:
    admin = await principal(db, "admin@swiftfreight.test", floor.tenant_id)
    with tenant_scope(floor.tenant_id):
        async with db.session() as session:
            with pytest.raises(InvalidInput, match="Say why"):
                await service.block_number(session, admin, "+8613912345678", "")
        async with db.session() as session:
            entry = await service.block_number(
                session, admin, "139 1234 5678", "Threatened staff on 3 calls"
            )
            short = await service.block_number(
                session, admin, "+8613912340000", "Spam robot", utcnow() + timedelta(seconds=1)
            )
        assert entry.phone == "+8613912345678"
        async with db.session() as session:
            with pytest.raises(Conflict, match="already blocked"):
                await service.block_number(session, admin, "+8613912345678", "again")
            assert await service.is_blocked(session, "+86 139 1234 5678")
            assert not await service.is_blocked(session, "+8613900000001")
        async with db.session() as session:
            await service.unblock(session, admin, entry.id)
        async with db.session() as session:
            assert not await service.is_blocked(session, "+8613912345678")
            audit = await TenantRepository(session).audit_entries(action="blocklist.")
    assert sorted(e.action for e in audit) == ["blocklist.add", "blocklist.add", "blocklist.remove"]
    assert short.expires_at is not None
