"""`depotline run` on the embedded default: starts from an empty data directory and from an
existing one, serves /readyz, and Ctrl-C stops everything it started."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _start(data_dir: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(DATA_DIR=str(data_dir), LOG_FORMAT="json")
    return subprocess.Popen(
        [sys.executable, "-m", "depotline", "run", "--port", str(port)],
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


def _wait_ready(port: int, process: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()[-3000:]
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError("not ready in time:\n" + log.read_text()[-3000:])


def _stop(process: subprocess.Popen[bytes], log: Path) -> None:
    process.send_signal(signal.SIGINT)
    assert process.wait(60) == 0, log.read_text()[-3000:]


def _postgres_running(data_dir: Path) -> bool:
    return (data_dir / "postgres" / "postmaster.pid").exists()


def test_run_from_empty_and_existing_data_dir(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    log = tmp_path / "run.log"
    port = _free_port()

    first = _start(data_dir, port, log)
    try:
        _wait_ready(port, first, log, timeout=90)
        home = httpx.get(f"http://127.0.0.1:{port}/", timeout=5)
        assert home.status_code == 200 and "Depotline" in home.text
    finally:
        _stop(first, log)
    assert not _postgres_running(data_dir)
    assert not (data_dir / "redis" / "redis.sock").exists()
    assert (data_dir / "postgres" / "PG_VERSION").exists()
    first_log = log.read_text()
    assert '"fresh": true' in first_log
    assert "Running upgrade  -> 0001_kernel" in first_log

    log.write_text("")
    second = _start(data_dir, port, log)
    try:
        _wait_ready(port, second, log, timeout=60)
    finally:
        _stop(second, log)
    second_log = log.read_text()
    assert '"fresh": false' in second_log
    assert "Running upgrade" not in second_log  # the schema was kept
    assert not _postgres_running(data_dir)
