"""`depotline simulate` from the command line: an SMS, a call and a burst of traffic land like the
carrier's signed webhooks (stored, billed, handed to the outbox), and mistakes are explained."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterator

import pytest
from click.testing import CliRunner, Result

from depotline.cli import main
from depotline.config import Settings
from depotline.db import Database, tenant_scope
from telephony_gateway import service
from telephony_gateway.models import SmsDirection, SmsMessage
from tests.telephony_gateway.conftest import CALLER, NUMBER, Drain, Line


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The command line pointed at the test database; the test's logging put back afterwards
    (the command configures logging onto the runner's captured streams)."""
    assert settings.secret_key is not None
    monkeypatch.setenv("DATABASE_URL", settings.owner_database_url)
    monkeypatch.setenv("REDIS_URL", settings.required_redis_url)
    monkeypatch.setenv("DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("SECRET_KEY", settings.secret_key.get_secret_value())
    monkeypatch.setenv("ENVIRONMENT", "test")
    monkeypatch.setenv("LOG_LEVEL", "WARNING")
    monkeypatch.setenv("LOG_FORMAT", "console")
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


async def depotline(*args: str) -> Result:
    # The command runs its own event loop (asyncio.run), so not on the test's.
    return await asyncio.to_thread(CliRunner().invoke, main, list(args))


def transcript(output: str) -> list[str]:
    """The steps of a call as `simulate call` prints them, one per indented line."""
    return [line.strip() for line in output.splitlines() if line.startswith("  ")]


async def inbound_sms(db: Database, line: Line) -> list[SmsMessage]:
    with tenant_scope(line.account.tenant_id):
        async with db.session() as session:
            messages = await service.sms_log(session)
    return [m for m in messages if m.direction == SmsDirection.INBOUND]


async def usage(db: Database, line: Line) -> dict[str, int]:
    with tenant_scope(line.account.tenant_id):
        async with db.session() as session:
            return await service.usage_summary(session)


async def test_simulated_sms_and_call_are_stored_and_billed(
    cli_env: None, db: Database, line: Line, drain: Drain
) -> None:
    sms = await depotline(
        "simulate", "sms", "--to", "020 8888 0001", "--from", CALLER, "--body", "查询快递 SF1001"
    )
    assert sms.exit_code == 0, sms.output
    assert re.search(r"stored as in:simulator:[0-9a-f]{32}", sms.output), sms.output
    [stored] = await inbound_sms(db, line)
    assert (stored.from_number, stored.to_number, stored.body, stored.state) == (
        CALLER,
        NUMBER,
        "查询快递 SF1001",
        "received",
    )

    call = await depotline(
        "simulate", "call", "--to", NUMBER, "--from", CALLER, "--digits", "32", "--duration", "30"
    )
    assert call.exit_code == 0, call.output
    steps = transcript(call.output)
    # Greeted, chose English (3), heard the menu, chose a pickup (2): the IVR takes it from there.
    assert steps.index("pressed: 3") > 0 and steps[0].startswith("heard:"), call.output
    assert "To track a parcel" in steps[steps.index("pressed: 3") + 1], call.output
    assert steps.index("pressed: 2") > steps.index("pressed: 3"), call.output
    assert "no key pressed" not in call.output
    assert await usage(db, line) == {"sms_segments_inbound": 1, "call_seconds_inbound": 30}

    await drain()  # what the simulated carrier left in the outbox is handled like any webhook's


async def test_a_call_without_keys_hears_the_timeout(
    cli_env: None, db: Database, line: Line
) -> None:
    call = await depotline("simulate", "call", "--to", NUMBER, "--duration", "5")
    assert call.exit_code == 0, call.output
    steps = transcript(call.output)
    timed_out = steps.index("(no key pressed; the gather timed out)")
    # A silent caller is not dropped: the IVR moves on (default language, then the menu).
    assert steps[timed_out + 1].startswith("heard:"), call.output
    assert not any(step.startswith("pressed:") for step in steps)
    assert await usage(db, line) == {"call_seconds_inbound": 5}


async def test_traffic_is_bounded_and_every_arrival_is_accounted_for(
    cli_env: None, db: Database, line: Line
) -> None:
    result = await depotline(
        "simulate", "traffic", "--to", NUMBER, "--rate", "30", "--seconds", "1", "--seed", "7"
    )
    assert result.exit_code == 0, result.output
    summary = re.search(
        r"(\d+) calls and (\d+) SMS in ([\d.]+) s .* (\d+) failed, (\d+) shed", result.output
    )
    assert summary, result.output
    calls, messages, seconds, failed, shed = summary.groups()
    assert int(calls) + int(messages) + int(shed) > 0
    assert failed == "0" and float(seconds) < 5
    assert len(await inbound_sms(db, line)) == int(messages)
    billed = await usage(db, line)
    assert billed.get("sms_segments_inbound", 0) == int(messages)
    assert (billed.get("call_seconds_inbound", 0) > 0) == (int(calls) > 0)


async def test_numbers_the_simulator_cannot_play_are_explained(
    cli_env: None, db: Database, line: Line
) -> None:
    unknown = await depotline("simulate", "sms", "--to", "+862088889999", "--body", "hi")
    assert unknown.exit_code == 1
    assert "+862088889999 is not any tenant's number" in unknown.output
    bad_caller = await depotline("simulate", "call", "--to", NUMBER, "--from", "12")
    assert bad_caller.exit_code == 1 and "--from" in bad_caller.output
    bad_keys = await depotline("simulate", "call", "--to", NUMBER, "--digits", "1x")
    assert bad_keys.exit_code == 2 and "--digits" in bad_keys.output
    assert "Traceback" not in unknown.output + bad_caller.output + bad_keys.output
    assert await inbound_sms(db, line) == []
