"""Demo tenants and accounts for `depotline run` / `seed-demo`. Safe to run again."""

from __future__ import annotations

import os
from datetime import date
from uuid import UUID

from depotline.db import Database, tenant_scope
from tenant.models import Membership, Role, SeatAssignment, SeatLease, Tenant, TenantKind, User
from tenant.repository import TenantRepository
from tenant.service import hash_password

#: Local demo accounts only; override with DEMO_PASSWORD.
DEFAULT_DEMO_PASSWORD = "depotline-demo"  # noqa: S105 (local demo accounts, printed by `make run`)

TENANTS = [
    # slug, name, kind, parent slug
    ("platform", "Depotline Platform", TenantKind.PLATFORM, None),
    ("swiftfreight", "SwiftFreight", TenantKind.CLIENT, "platform"),
    ("swiftfreight-north", "SwiftFreight North", TenantKind.CLIENT, "swiftfreight"),
    ("swiftfreight-south", "SwiftFreight South", TenantKind.CLIENT, "swiftfreight"),
    ("harbour", "Harbour Logistics", TenantKind.CLIENT, "platform"),
    ("callpro", "CallPro", TenantKind.OPERATOR, "platform"),
]
USERS = [
    # email, name, tenant slug, role
    ("admin@depotline.test", "Platform Admin", "platform", Role.PLATFORM_ADMIN),
    ("admin@swiftfreight.test", "Sara Swift", "swiftfreight", Role.TENANT_ADMIN),
    ("north@swiftfreight.test", "Nick North", "swiftfreight-north", Role.TENANT_ADMIN),
    ("admin@harbour.test", "Hana Harbour", "harbour", Role.TENANT_ADMIN),
    ("supervisor@callpro.test", "Chen Wei", "callpro", Role.SUPERVISOR),
    ("agent1@callpro.test", "Agent Li Na", "callpro", Role.AGENT),
    ("agent2@callpro.test", "Agent Wong Ka", "callpro", Role.AGENT),
    ("agent3@callpro.test", "Agent Sam Lee", "callpro", Role.AGENT),
]
LEASES = [("swiftfreight", "callpro", 2), ("harbour", "callpro", 1)]
ASSIGNMENTS = [
    ("agent1@callpro.test", "swiftfreight"),
    ("agent2@callpro.test", "swiftfreight"),
    ("agent3@callpro.test", "swiftfreight"),
    ("agent1@callpro.test", "harbour"),
]


async def seed(db: Database) -> list[str]:
    password = os.environ.get("DEMO_PASSWORD", DEFAULT_DEMO_PASSWORD)
    tenants: dict[str, UUID] = {}
    users: dict[str, UUID] = {}
    async with db.session() as session:
        repo = TenantRepository(session)
        for slug, name, kind, parent in TENANTS:
            tenant = await repo.tenant_by_slug(slug)
            if tenant is None:
                tenant = Tenant(
                    slug=slug, name=name, kind=kind, parent_id=tenants.get(parent or "")
                )
                repo.add(tenant)
                await repo.flush()
            tenants[slug] = tenant.id
        for email, name, _, _ in USERS:
            user = await repo.user_by_email(email)
            if user is None:
                user = User(email=email, name=name, password_hash=hash_password(password))
                repo.add(user)
                await repo.flush()
            users[email] = user.id
    for email, _, slug, role in USERS:
        with tenant_scope(tenants[slug]):
            async with db.session() as session:
                repo = TenantRepository(session)
                if await repo.membership(tenants[slug], users[email]) is None:
                    repo.add(Membership(user_id=users[email], role=role))
    for client, operator, seats in LEASES:
        with tenant_scope(tenants[client]):
            async with db.session() as session:
                repo = TenantRepository(session)
                if not await repo.active_leases(tenants[client], tenants[operator], date.today()):
                    repo.add(
                        SeatLease(
                            operator_id=tenants[operator], seats=seats, starts_on=date(2026, 1, 1)
                        )
                    )
    callpro = tenants["callpro"]
    for email, client in ASSIGNMENTS:
        with tenant_scope(callpro):
            async with db.session() as session:
                repo = TenantRepository(session)
                if not await repo.active_assignment(callpro, tenants[client], users[email]):
                    repo.add(SeatAssignment(client_id=tenants[client], user_id=users[email]))
    lines = ["", "Demo accounts (password: " + password + "):"]
    lines += [f"  {email:<28} {role.value:<15} {slug}" for email, _, slug, role in USERS]
    return lines
