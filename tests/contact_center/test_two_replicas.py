"""Two app replicas on one database and one Redis, as behind a load balancer: the agent's desk
streams its events from replica 1 while the calls come in (carrier webhooks) and the agent's
actions land on replica 2. The offer routed on replica 2 reaches the stream on replica 1; a
stream that drops and comes back with its Last-Event-ID gets the offer made while it was away."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from uuid import uuid4

import httpx
import pytest

from depotline.config import Settings
from telephony_gateway.providers.registry import Providers
from telephony_gateway.providers.simulator import signed_form
from tests.contact_center.conftest import Floor
from tests.live import serve
from tests.telephony_gateway.conftest import NUMBER, Line
from tests.telephony_gateway.conftest import line as line
from tests.tenant.conftest import csrf_of, sign_in

WAIT = 5.0  # seconds an event may take to cross from one replica to the other


@dataclass
class Event:
    name: str
    id: str
    data: dict[str, Any]


class Stream:
    """A desk's EventSource, read in the background: events land in a queue."""

    def __init__(self, browser: httpx.AsyncClient, last_event_id: str | None = None) -> None:
        self.browser, self.last_event_id = browser, last_event_id
        self.events: asyncio.Queue[Event] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Stream:
        self.task = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self.task is not None
        self.task.cancel()  # the browser goes away
        with contextlib.suppress(asyncio.CancelledError):
            await self.task

    async def _read(self) -> None:
        headers = {"accept": "text/event-stream"}
        if self.last_event_id:
            headers["last-event-id"] = self.last_event_id
        async with self.browser.stream("GET", "/desk/events", headers=headers) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            fields: dict[str, str] = {}
            async for line in response.aiter_lines():
                if not line:
                    if "event" in fields:
                        data = json.loads(fields.get("data", "{}"))
                        await self.events.put(Event(fields["event"], fields.get("id", ""), data))
                    fields = {}
                elif not line.startswith(":"):
                    key, _, value = line.partition(": ")
                    fields[key] = value

    async def until(self, name: str, **match: str) -> Event:
        """The next event called `name` whose data has `match`; the others are passed over."""
        async with asyncio.timeout(WAIT):
            while True:
                event = await self.events.get()
                if event.name == name and all(event.data.get(k) == v for k, v in match.items()):
                    return event


class Caller:
    """A caller on the simulated network: each step a signed webhook to one replica."""

    def __init__(self, carrier: httpx.AsyncClient, secret: bytes) -> None:
        self.carrier, self.secret = carrier, secret
        self.call_id = f"SIMCALL{uuid4().hex}"

    async def step(self, kind: str, **fields: str) -> list[dict[str, Any]]:
        form = {**fields, "call_id": self.call_id, "to": NUMBER, "event_id": uuid4().hex}
        body, headers = signed_form(self.secret, form)
        answer = await self.carrier.post(f"/webhooks/simulator/{kind}", data=body, headers=headers)
        assert answer.status_code == 200, answer.text
        commands: list[dict[str, Any]] = answer.json()
        return commands

    async def to_pickup(self) -> None:
        """English (3), then book a pickup (2): into the Pickup queue."""
        await self.step("voice", **{"from": "+8613800138000"})
        await self.step("gather", digits="3")
        assert (await self.step("gather", digits="2"))[-1]["command"] == "enqueue"


@pytest.fixture
async def replicas(settings: Settings, floor: Floor, line: Line) -> AsyncIterator[tuple[str, str]]:
    with serve(settings) as (one, _), serve(settings) as (two, _):
        yield one, two


async def test_an_offer_routed_on_one_replica_reaches_a_desk_streaming_from_the_other(
    replicas: tuple[str, str], settings: Settings, floor: Floor, line: Line
) -> None:
    one, two = replicas
    secret = Providers(settings.session_secret(), settings.public_url, None).webhook_secret(
        line.account
    )
    async with (
        httpx.AsyncClient(base_url=one, timeout=10) as desk_one,
        httpx.AsyncClient(base_url=two, timeout=10) as carrier,
    ):
        await sign_in(desk_one, "agent1@callpro.test")
        token = await csrf_of(desk_one, "/seats/")
        await desk_one.post("/seats/take", data={"client_id": str(floor.tenant_id), "_csrf": token})
        # The same browser session, its requests balanced to replica 2 (sessions are in Redis).
        desk_two = httpx.AsyncClient(base_url=two, cookies=desk_one.cookies, timeout=10)
        act = {"accept": "application/json", "x-csrf-token": await csrf_of(desk_two, "/desk")}

        async with Stream(desk_one) as stream:
            ready = await stream.until("ready")
            await desk_two.post("/desk/status", data={"status": "ready"}, headers=act)
            await stream.until("status", status="ready")
            first = Caller(carrier, secret)
            await first.to_pickup()  # routed on replica 2, in the webhook
            offer = await stream.until("offer")
            assert offer.data["tenant_id"] == str(floor.tenant_id)
            assert ready.id and offer.id != ready.id
            call_id = offer.data["call_id"]
            for action, form in (
                ("accept", {}),
                ("hang-up", {}),
                ("wrap-up", {"code": "Resolved"}),
            ):
                done = await desk_two.post(
                    f"/desk/calls/{call_id}/{action}", data=form, headers=act
                )
                assert done.status_code == 200, done.text
            seen = await stream.until("status", status="ready")

        # The stream is gone; meanwhile the next caller is offered to the agent.
        second = Caller(carrier, secret)
        await second.to_pickup()
        state = (await desk_two.get("/desk/state")).json()
        assert state["offer"] and state["offer"]["call_id"] != call_id

        async with Stream(desk_one, last_event_id=seen.id) as resumed:
            assert (await resumed.until("ready")).data == {"resumed": True}
            replayed = await resumed.until("offer")
            assert replayed.data["call_id"] == state["offer"]["call_id"]
        # And a desk that reloads asks the server, on either replica.
        assert (await desk_one.get("/desk/state")).json()["offer"] == state["offer"]
        await desk_two.aclose()
