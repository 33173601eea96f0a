"""Demo carrier setup: SwiftFreight answers on a simulated hotline, so the simulator console
works the moment `make run` is up. Safe to run again."""

from __future__ import annotations

from depotline.db import Database, tenant_scope
from telephony_gateway.models import CarrierAccount, PhoneNumber, ProviderName
from telephony_gateway.repository import GatewayRepository
from tenant.repository import TenantRepository

LINES = [
    ("swiftfreight", "+862088880001", "SwiftFreight hotline"),
    ("harbour", "+85230008888", "Harbour hotline"),
]


async def seed(db: Database) -> list[str]:
    lines = ["", "Simulated phone lines (try them at /simulator):"]
    for slug, number, label in LINES:
        async with db.session() as session:
            tenant = await TenantRepository(session).tenant_by_slug(slug)
        if tenant is None:
            continue
        with tenant_scope(tenant.id):
            async with db.session() as session:
                repo = GatewayRepository(session)
                if await repo.number_by_e164(number) is None:
                    account = CarrierAccount(
                        provider=ProviderName.SIMULATOR,
                        label="Simulated network",
                        sms_per_second=20,
                    )
                    repo.add(account)
                    await repo.flush()
                    repo.add(PhoneNumber(e164=number, account_id=account.id, label=label))
        lines.append(f"  {number:<16} {label}")
    return lines
