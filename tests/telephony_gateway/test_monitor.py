"""A supervisor's leg on a live call (the gateway's Monitor command): the simulated network
carries it out and remembers the leg and its mode; Twilio refuses it by name."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from depotline.config import Settings
from depotline.db import Database, tenant_scope
from depotline.errors import Conflict
from telephony_gateway import service
from telephony_gateway.commands import MonitorMode, Unsupported
from telephony_gateway.providers.base import CarrierRefused
from telephony_gateway.providers.registry import Providers
from telephony_gateway.providers.simulator import call_legs
from tests.telephony_gateway.conftest import Line
from tests.tenant.test_seats import principal

CALL = "SIMCALL-monitored"


@pytest.fixture
async def redis(settings: Settings, clean_redis: None) -> AsyncIterator[Redis]:
    client = Redis.from_url(settings.required_redis_url)
    yield client
    await client.aclose()


async def monitor(
    db: Database, providers: Providers, line: Line, endpoint: str, mode: MonitorMode
) -> str:
    with tenant_scope(line.account.tenant_id):
        async with db.session() as session:
            return await service.monitor_call(
                session,
                providers,
                number=line.number.e164,
                call_id=CALL,
                supervisor_endpoint=endpoint,
                mode=mode,
            )


async def test_the_simulator_joins_a_supervisor_and_switches_mode(
    db: Database, line: Line, settings: Settings, redis: Redis
) -> None:
    providers = Providers(settings.session_secret(), settings.public_url, redis)
    chen = await monitor(db, providers, line, "client:chen", MonitorMode.LISTEN)
    assert chen.startswith("SIMLEG")
    assert [(leg["endpoint"], leg["mode"]) for leg in await call_legs(redis, CALL)] == [
        ("client:chen", "listen")
    ]
    # The same supervisor switching to whisper, then barge: one leg, its mode changing.
    assert await monitor(db, providers, line, "client:chen", MonitorMode.WHISPER) == chen
    sara = await monitor(db, providers, line, "client:sara", MonitorMode.LISTEN)
    assert await monitor(db, providers, line, "client:chen", MonitorMode.BARGE) == chen
    legs = {leg["endpoint"]: (leg["leg_id"], leg["mode"]) for leg in await call_legs(redis, CALL)}
    assert legs == {"client:chen": (chen, "barge"), "client:sara": (sara, "listen")}
    assert await call_legs(redis, "SIMCALL-another") == []

    without_redis = Providers(settings.session_secret(), settings.public_url, None)
    with pytest.raises(CarrierRefused, match="Redis"):
        await monitor(db, without_redis, line, "client:chen", MonitorMode.LISTEN)


async def test_twilio_refuses_monitor_by_name(
    db: Database, line: Line, settings: Settings, redis: Redis
) -> None:
    """Twilio's Monitor TwiML joins the conference named by the call; agents are not bridged
    through conferences, so it refuses rather than put the supervisor in an empty room."""
    admin = await principal(db, "admin@swiftfreight.test", line.account.tenant_id)
    with tenant_scope(admin.acting_tenant_id):
        async with db.session() as session:
            account = await service.create_account(
                session,
                admin,
                provider="twilio",
                label="Twilio",
                settings={"account_sid": "AC" + "0" * 32},
                credentials={"auth_token": "token"},
                sender_id=None,
                sms_per_second=1,
                secret=settings.session_secret(),
            )
            await session.flush()
            await service.add_number(session, admin, number="+862088880002", account_id=account.id)
    providers = Providers(settings.session_secret(), settings.public_url, redis)
    with tenant_scope(admin.acting_tenant_id):
        async with db.session() as session:
            with pytest.raises(Unsupported) as refused:
                await service.monitor_call(
                    session,
                    providers,
                    number="+862088880002",
                    call_id="CA" + "1" * 32,
                    supervisor_endpoint="client:chen",
                    mode=MonitorMode.WHISPER,
                )
            assert str(refused.value) == "The twilio provider cannot carry out 'monitor'"
            with pytest.raises(Conflict, match="No carrier account"):
                await service.monitor_call(
                    session,
                    providers,
                    number="+862088889999",  # nobody's number
                    call_id="CA" + "2" * 32,
                    supervisor_endpoint="client:chen",
                    mode=MonitorMode.LISTEN,
                )
