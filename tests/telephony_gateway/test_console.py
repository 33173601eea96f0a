"""The carriers page and the simulator console: the easiest way to try Depotline by hand."""

from __future__ import annotations

import re

from litestar import Litestar
from litestar.testing import AsyncTestClient

from depotline.db import Database, tenant_scope
from telephony_gateway import service
from tests.tenant.conftest import Demo, csrf_of, sign_in


def account_of(page: str) -> str:
    found = re.search(r'name="account_id"><option value="([^"]+)"', page)
    assert found, "no carrier account to choose"
    return found.group(1)


async def test_set_up_a_simulated_line_and_call_it(
    client: AsyncTestClient[Litestar], db: Database, world: Demo
) -> None:
    await sign_in(client, "admin@swiftfreight.test")
    csrf = await csrf_of(client, "/carriers")
    carriers = await client.post(
        "/carriers/accounts", data={"_csrf": csrf, "provider": "simulator", "label": "Sim"}
    )
    assert "Carrier account added" in carriers.text and "Sim" in carriers.text
    account_id = account_of(carriers.text)
    bad = await client.post(
        "/carriers/numbers", data={"_csrf": csrf, "number": "call me", "account_id": account_id}
    )
    assert "is not a phone number" in bad.text
    await client.post(
        "/carriers/numbers",
        data={
            "_csrf": csrf,
            "number": "020 8888 0002",
            "account_id": account_id,
            "label": "Hotline",
        },
    )
    assert "+862088880002" in (await client.get("/carriers")).text

    caller = "+8613700137000"
    console = await client.post(
        "/simulator/dial", data={"_csrf": csrf, "caller": caller, "number": "+862088880002"}
    )
    assert "欢迎致电" in console.text and "On a call to" in console.text
    pressed = await client.post(
        "/simulator/digits", data={"_csrf": csrf, "caller": caller, "digits": "3"}
    )
    assert "To track a parcel, press 1." in pressed.text
    await client.post("/simulator/hangup", data={"_csrf": csrf, "caller": caller, "duration": "42"})
    await client.post(
        "/simulator/sms",
        data={
            "_csrf": csrf,
            "caller": caller,
            "number": "+862088880002",
            "body": "我的包裹在哪里？",
        },
    )
    log = await client.get("/sms")
    assert "我的包裹在哪里？" in log.text and caller in log.text

    with tenant_scope(world.tenants["swiftfreight"]):
        async with db.session() as session:
            usage = await service.usage_summary(session)
    assert usage == {"call_seconds_inbound": 42, "sms_segments_inbound": 1}


async def test_console_cannot_dial_another_tenants_number(
    client: AsyncTestClient[Litestar], db: Database, world: Demo
) -> None:
    """Harbour's admin tries SwiftFreight's number from Harbour's console."""
    await sign_in(client, "admin@swiftfreight.test")
    csrf = await csrf_of(client, "/carriers")
    await client.post(
        "/carriers/accounts", data={"_csrf": csrf, "provider": "simulator", "label": "Sim"}
    )
    account_id = account_of((await client.get("/carriers")).text)
    await client.post(
        "/carriers/numbers",
        data={"_csrf": csrf, "number": "+862088880003", "account_id": account_id},
    )
    await client.post("/auth/sign-out", data={"_csrf": csrf})

    await sign_in(client, "admin@harbour.test")
    csrf = await csrf_of(client, "/carriers")
    response = await client.post(
        "/simulator/dial",
        data={"_csrf": csrf, "caller": "+8613700137001", "number": "+862088880003"},
    )
    assert response.status_code == 404
    with tenant_scope(world.tenants["swiftfreight"]):
        async with db.session() as session:
            assert await service.usage_summary(session) == {}
