"""Calls end to end: every step is a signed simulator webhook taken in by `take_in`, as a carrier's
would be, answered by the contact center (blocklist, the IVR, routing). What the caller hears
(each line with its language tag) and what the floor does (agents, calls, queues) are checked;
the timers and the hang-up reports run through the outbox and a burst worker (`drain`)."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from uuid import uuid4

import pytest

from contact_center import ivr, service, voice
from contact_center.calendar import BusinessHours
from contact_center.ivr import CANTONESE, ENGLISH, MANDARIN
from contact_center.models import (
    AgentState,
    AgentStatus,
    Call,
    CallStatus,
    ContactCenterSettings,
    Queue,
)
from contact_center.repository import ContactCenterRepository
from depotline.config import Settings
from depotline.db import Database, tenant_scope
from telephony_gateway.providers.base import InboundRequest
from telephony_gateway.providers.registry import Providers
from telephony_gateway.providers.simulator import signed_form
from telephony_gateway.routes import take_in
from telephony_gateway.simulate import SimulatedCarrier
from tests.contact_center.conftest import Floor
from tests.telephony_gateway.conftest import CALLER, NUMBER, Drain, Line
from tests.telephony_gateway.conftest import line as line
from tests.tenant.test_seats import principal

VIP_CALLER = "+8613900009999"
#: Each language key of the demo flow and the language the caller then hears.
LANGUAGES = {"1": MANDARIN, "2": CANTONESE, "3": ENGLISH}

Heard = tuple[str, str]  # (text, language tag)


def prompt(node_id: str, language: str) -> Heard:
    """What the demo flow says at a node in a language."""
    node = ivr.DEMO_FLOW.nodes[node_id]
    prompts = getattr(node, "prompt", None)
    assert prompts is not None, f"node {node_id} says nothing"
    text = prompts[language]
    assert isinstance(text, str)
    return text, language


def spoken(commands: list[dict[str, Any]]) -> list[Heard]:
    """Every line the caller hears: Say commands and the prompts of Gathers, in order."""
    lines: list[Heard] = []
    for command in commands:
        said = command.get("prompt") if command["command"] == "gather" else command
        if said is not None and said.get("text") is not None:
            lines.append((said["text"], said["language"]))
    return lines


class Phone:
    """One caller on the line: dials, presses keys and hangs up through signed webhooks."""

    def __init__(self, db: Database, providers: Providers, line: Line, caller: str) -> None:
        self.db, self.providers, self.line, self.caller = db, providers, line, caller
        self.call_id = f"SIMCALL{uuid4().hex}"

    async def _webhook(self, kind: str, fields: dict[str, str]) -> list[dict[str, Any]]:
        form = {**fields, "call_id": self.call_id, "to": NUMBER, "event_id": uuid4().hex}
        body, headers = signed_form(self.providers.webhook_secret(self.line.account), form)
        media_type, answer = await take_in(
            self.db,
            self.providers,
            "simulator",
            kind,
            InboundRequest("", "POST", headers, {}, body),
        )
        if kind in ("status", "recording"):  # reports: nothing to say to the caller
            assert (media_type, answer) == ("text/plain", "OK")
            return []
        assert media_type == "application/json"
        commands: list[dict[str, Any]] = json.loads(answer)
        return commands

    async def dial(self) -> list[dict[str, Any]]:
        return await self._webhook("voice", {"from": self.caller})

    async def press(self, digits: str) -> list[dict[str, Any]]:
        return await self._webhook("gather", {"digits": digits})

    async def hang_up(self, duration: int = 30) -> None:
        await self._webhook("status", {"reason": "completed", "duration": str(duration)})

    async def row(self) -> Call:
        with tenant_scope(self.line.account.tenant_id):
            async with self.db.session() as session:
                call = await ContactCenterRepository(session).call_by_provider_id(
                    "simulator", self.call_id
                )
        assert call is not None
        return call

    async def to_queue(self, language_key: str, *menu_keys: str) -> list[dict[str, Any]]:
        """Dial, choose a language, then the main menu keys: what the last answer said."""
        await self.dial()
        commands = await self.press(language_key)
        for key in menu_keys:
            commands = await self.press(key)
        return commands


class Center:
    """The floor (its Pickup queue and agents) behind the simulator number."""

    def __init__(self, floor: Floor, line: Line, db: Database, settings: Settings) -> None:
        self.floor, self.line, self.db = floor, line, db
        self.providers = Providers(
            settings.session_secret(), settings.public_url, None, voice.answer
        )

    def phone(self, caller: str = CALLER) -> Phone:
        return Phone(self.db, self.providers, self.line, caller)

    async def queue(self, name: str, *skilled: str, **options: Any) -> Queue:
        created = await self.floor.run(service.create_queue, name, **options)
        assert isinstance(created, Queue)
        for agent in skilled:
            await self.floor.run(service.set_skill, self.floor.agents[agent], created.id)
        return created

    async def configure(self, **fields: Any) -> None:
        with tenant_scope(self.floor.tenant_id):
            async with self.db.session() as session:
                session.add(ContactCenterSettings(**fields))

    async def agent(self, name: str) -> AgentState:
        with tenant_scope(self.floor.tenant_id):
            async with self.db.session() as session:
                found = await ContactCenterRepository(session).agent(self.floor.agents[name])
        assert found is not None
        return found

    async def waiting(self) -> list[Call]:
        with tenant_scope(self.floor.tenant_id):
            async with self.db.session() as session:
                return list(await ContactCenterRepository(session).waiting_calls())


@pytest.fixture
async def center(floor: Floor, line: Line, db: Database, settings: Settings) -> Center:
    """SwiftFreight's floor and its simulator number, answered by the contact center."""
    assert line.account.tenant_id == floor.tenant_id
    return Center(floor, line, db, settings)


# -- the IVR in three languages -----------------------------------------------------------------
async def test_each_language_reaches_pickup_and_a_skilled_agent(
    center: Center, floor: Floor
) -> None:
    for (key, language), agent in zip(LANGUAGES.items(), ("li", "wong", "sara"), strict=True):
        await floor.ready(agent)
        phone = center.phone()
        menu = await phone.dial()
        # The language menu: each option in its own language, the last one asks for the key.
        assert spoken(menu) == [prompt("language", tag) for tag in (MANDARIN, CANTONESE, ENGLISH)]
        assert menu[-1]["command"] == "gather" and menu[-1]["num_digits"] == 1
        main = await phone.press(key)
        assert spoken(main) == [prompt("main", language)]
        connecting = await phone.press("2")
        assert spoken(connecting) == [prompt("pickup", language)]
        assert connecting[-1] == {"command": "enqueue", "queue": "Pickup", "announcements": True}

        call = await phone.row()
        assert call.status == CallStatus.OFFERED and call.agent_id == floor.agents[agent]
        assert call.queue_id == floor.queue.id and call.language == language
        assert call.ivr_progress is None and call.priority == 0
        assert await floor.state(agent) == (AgentStatus.RESERVED, call.id)
    # The lines are the demo flow's own, for instance:
    assert prompt("pickup", ENGLISH)[0] == "Connecting you to our pickup team, please hold."
    assert (await floor.state("sam"))[0] == AgentStatus.NOT_READY  # never signed ready


# -- VIP callers first --------------------------------------------------------------------------
async def test_a_vip_goes_straight_to_the_vip_queue_and_ahead_of_earlier_callers(
    center: Center, floor: Floor
) -> None:
    await center.configure(vip_numbers=[VIP_CALLER])
    vip_queue = await center.queue("VIP", "li")
    general = await center.queue("General", "li")
    first, second, vip = center.phone(), center.phone("+8613800130002"), center.phone(VIP_CALLER)

    await first.to_queue("3", "2")  # English, pickup
    await second.to_queue("1", "0")  # Mandarin, an agent
    await vip.dial()
    straight = await vip.press("2")  # Cantonese; no main menu for a VIP
    assert spoken(straight) == [prompt("vip", CANTONESE)]
    assert straight[-1] == {"command": "enqueue", "queue": "VIP", "announcements": True}

    waiting = await center.waiting()
    assert [c.provider_call_id for c in waiting] == [vip.call_id, first.call_id, second.call_id]
    vip_call = waiting[0]
    assert vip_call.queue_id == vip_queue.id and vip_call.priority == service.VIP_PRIORITY
    assert vip_call.language == CANTONESE
    assert (await second.row()).queue_id == general.id

    await floor.ready("li")  # skilled in all three queues: the VIP comes first
    assert await floor.state("li") == (AgentStatus.RESERVED, vip_call.id)
    await floor.ready("wong")  # Pickup only: the earlier of the normal callers there
    assert await floor.state("wong") == (AgentStatus.RESERVED, (await first.row()).id)
    assert (await second.row()).status == CallStatus.QUEUED


# -- overflow -----------------------------------------------------------------------------------
async def test_a_waiting_call_overflows_to_the_operators_pool(
    center: Center, floor: Floor, drain: Drain
) -> None:
    complaints = await center.queue(
        "Complaints", "sara", overflow_after_seconds=1, overflow_operator_id=floor.operator_id
    )
    await floor.ready("sam")  # CallPro's, without the Complaints skill
    phone = center.phone()
    heard = await phone.to_queue("3", "3")
    assert spoken(heard) == [prompt("complaints", ENGLISH)]
    call = await phone.row()
    assert call.status == CallStatus.QUEUED and call.queue_id == complaints.id
    assert await floor.state("sam") == (AgentStatus.READY, None)  # sara's group first

    await asyncio.sleep(1.1)
    await drain()
    call = await phone.row()
    assert call.overflowed_at is not None
    assert call.status == CallStatus.OFFERED and call.agent_id == floor.agents["sam"]
    assert await floor.state("sam") == (AgentStatus.RESERVED, call.id)


# -- reservation timeout ------------------------------------------------------------------------
async def test_an_unanswered_offer_times_out_and_goes_to_the_next_agent(
    center: Center, floor: Floor, db: Database, drain: Drain
) -> None:
    await center.queue("Complaints", "li", "wong", reservation_seconds=3)
    await floor.ready("li")
    await asyncio.sleep(0.01)
    await floor.ready("wong")
    phone = center.phone()
    heard = await phone.to_queue("1", "3")
    assert spoken(heard) == [prompt("complaints", MANDARIN)]
    call = await phone.row()
    assert await floor.state("li") == (AgentStatus.RESERVED, call.id)

    await asyncio.sleep(3.1)  # li does not answer
    await drain()
    li = await center.agent("li")
    assert (li.status, li.reason, li.current_call_id) == (
        AgentStatus.NOT_READY,
        "missed call",
        None,
    )
    assert await floor.state("wong") == (AgentStatus.RESERVED, call.id)
    call = await phone.row()
    assert call.status == CallStatus.OFFERED and call.agent_id == floor.agents["wong"]
    with tenant_scope(floor.tenant_id):
        async with db.session() as session:
            offers = await ContactCenterRepository(session).offers()
    assert [(o.agent_id, o.outcome) for o in offers] == [
        (floor.agents["li"], "timeout"),
        (floor.agents["wong"], None),
    ]


# -- the blocklist ------------------------------------------------------------------------------
async def test_a_blocked_caller_hears_the_short_message_and_is_disconnected(
    center: Center, floor: Floor, db: Database, drain: Drain
) -> None:
    admin = await principal(db, "admin@swiftfreight.test", floor.tenant_id)
    nuisance = "+8613912345678"
    await floor.run(service.block_number, admin, nuisance, "Threatened staff on 3 calls")
    await floor.ready("li")

    phone = center.phone(nuisance)
    assert await phone.dial() == [
        {"command": "say", "text": voice.BLOCKED, "language": ENGLISH},
        {"command": "hangup"},
    ]
    await phone.hang_up(3)
    await drain()
    call = await phone.row()
    assert (call.status, call.disposition) == (CallStatus.ENDED, "blocked")
    assert call.queue_id is None and call.ivr_progress is None and call.agent_id is None

    # The simulated carrier's own caller, pressing keys, gets no further.
    carrier = await SimulatedCarrier.for_number(db, center.providers, NUMBER)
    transcript = await carrier.call(nuisance, "32", 5)
    assert transcript.heard == [voice.BLOCKED]
    assert "(the call was hung up)" in transcript.lines
    await drain()

    assert await center.waiting() == []
    assert await floor.state("li") == (AgentStatus.READY, None)  # offered nothing
    # Anybody else still gets through.
    assert spoken(await center.phone().dial())[0] == prompt("language", MANDARIN)


# -- after hours --------------------------------------------------------------------------------
async def test_after_hours_the_caller_reaches_voicemail_in_their_language(
    center: Center, floor: Floor, drain: Drain
) -> None:
    never_open = BusinessHours(time_zone="Asia/Shanghai")  # no weekly hours: always closed
    await center.configure(business_hours=never_open.model_dump(mode="json"))
    await floor.ready("li")

    phone = center.phone()
    await phone.dial()
    closed = await phone.press("2")  # Cantonese
    assert spoken(closed) == [prompt("closed", CANTONESE)]
    assert closed[-1] == {"command": "hangup"}
    call = await phone.row()
    assert call.callback_requested and call.disposition == "voicemail"
    assert call.language == CANTONESE and call.queue_id is None and call.queued_at is None

    await phone.hang_up(25)
    await drain()
    call = await phone.row()
    assert call.status == CallStatus.ENDED and call.disposition == "voicemail"
    assert call.callback_requested
    assert await floor.state("li") == (AgentStatus.READY, None)


# -- the caller hangs up ------------------------------------------------------------------------
async def test_a_caller_who_hangs_up_while_waiting_is_abandoned(
    center: Center, floor: Floor, drain: Drain
) -> None:
    waiting = center.phone()
    await waiting.to_queue("3", "2")
    assert (await waiting.row()).status == CallStatus.QUEUED

    await waiting.hang_up(40)
    assert (await waiting.row()).status == CallStatus.QUEUED  # the report goes by the outbox
    await drain()
    call = await waiting.row()
    assert (call.status, call.disposition) == (CallStatus.ABANDONED, "abandoned")
    assert call.ended_at is not None and call.answered_at is None
    assert await center.waiting() == []

    await floor.ready("li")  # nobody is left to offer
    assert await floor.state("li") == (AgentStatus.READY, None)

    # Hanging up while the call is being offered frees the agent for the next caller.
    offered = center.phone()
    await offered.to_queue("1", "2")
    assert await floor.state("li") == (AgentStatus.RESERVED, (await offered.row()).id)
    await offered.hang_up(12)
    await drain()
    assert (await offered.row()).status == CallStatus.ABANDONED
    assert await floor.state("li") == (AgentStatus.READY, None)


# -- no queue to go to --------------------------------------------------------------------------
async def test_a_caller_with_no_queue_to_go_to_is_told_so_and_disconnected(
    center: Center, floor: Floor
) -> None:
    phone = center.phone()  # the floor has no Complaints queue and no General queue
    sorry = await phone.to_queue("1", "3")  # Mandarin, complaints
    assert spoken(sorry) == [prompt("complaints", MANDARIN), (voice.NOBODY, ENGLISH)]
    assert sorry[-1] == {"command": "hangup"}
    call = await phone.row()
    assert (call.status, call.disposition) == (CallStatus.ENDED, "no_queue")
    assert call.language == MANDARIN and call.queue_id is None
