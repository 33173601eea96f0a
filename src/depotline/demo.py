"""Demo data for `depotline run` and `depotline seed-demo`. Every seeder is idempotent."""

from __future__ import annotations

from depotline.config import Settings
from depotline.db import Database


async def seed(settings: Settings) -> list[str]:
    """Run every domain's demo seeder; return the lines to show the person who started Depotline."""
    from depotline.app import DEMO_SEEDERS

    db = Database(settings.app_url, pool_size=2)
    lines: list[str] = []
    try:
        for seeder in DEMO_SEEDERS:
            lines.extend(await seeder(db))
    finally:
        await db.dispose()
    return lines
