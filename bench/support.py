"""What the benchmarks share: a PostgreSQL server to make their own database on."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from depotline.config import async_url
from depotline.embedded import EmbeddedPostgres


@contextmanager
def server(workdir: Path) -> Iterator[tuple[str, bool]]:
    """(owner URL of a server to create the database on, embedded?): DATABASE_URL's server, or
    an embedded one under `workdir`."""
    database_url = os.environ.get("DATABASE_URL")
    postgres = EmbeddedPostgres(workdir)
    try:
        yield (async_url(database_url) if database_url else postgres.start()), not database_url
    finally:
        postgres.stop()
