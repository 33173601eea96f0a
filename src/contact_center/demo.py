"""Demo contact-center setup: each demo client tenant starts with the sample courier IVR flow as
its published version 1, so the IVR editor has something to show and edit. Safe to run again."""

from __future__ import annotations

from contact_center import flows
from depotline.db import Database, tenant_scope
from tenant.demo import TENANTS
from tenant.models import TenantKind
from tenant.repository import TenantRepository


async def seed(db: Database) -> list[str]:
    seeded = []
    for slug, _, kind, _ in TENANTS:
        if kind != TenantKind.CLIENT:
            continue
        async with db.session() as session:
            tenant = await TenantRepository(session).tenant_by_slug(slug)
        if tenant is None:
            continue
        with tenant_scope(tenant.id):
            async with db.session() as session:
                if await flows.seed_demo(session) is not None:
                    seeded.append(tenant.name)
    if not seeded:
        return []
    return ["", f"IVR flows (edit them at /contact-center/ivr): {', '.join(seeded)}"]
