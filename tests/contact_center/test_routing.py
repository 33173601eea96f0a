"""Routing through the real database: longest idle first, VIPs ahead, one call to one agent at a
time, reservation timeouts, overflow to an operator's outsourced agents, wrap-up timers."""

from __future__ import annotations

import asyncio

import pytest

from contact_center import service
from contact_center.models import AgentStatus, CallStatus
from contact_center.repository import ContactCenterRepository
from depotline.db import tenant_scope
from depotline.errors import Conflict
from tests.contact_center.conftest import Floor
from tests.telephony_gateway.conftest import Drain


async def test_longest_idle_agent_gets_the_call(floor: Floor) -> None:
    await floor.ready("li")
    await asyncio.sleep(0.01)
    await floor.ready("wong")
    call = await floor.call()
    assert await floor.state("li") == (AgentStatus.RESERVED, call)
    assert (await floor.state("wong"))[0] == AgentStatus.READY
    row = await floor.call_row(call)
    assert row.status == CallStatus.OFFERED and row.agent_id == floor.agents["li"]


async def test_vip_jumps_ahead_of_earlier_callers(floor: Floor) -> None:
    first = await floor.call()
    second = await floor.call()
    vip = await floor.call(vip=True)
    await floor.ready("li")
    assert await floor.state("li") == (AgentStatus.RESERVED, vip)
    await floor.ready("wong")
    assert await floor.state("wong") == (AgentStatus.RESERVED, first)
    assert (await floor.call_row(second)).status == CallStatus.QUEUED


async def test_an_agent_without_the_skill_gets_nothing(floor: Floor) -> None:
    await floor.ready("sam")
    call = await floor.call()
    assert (await floor.state("sam"))[0] == AgentStatus.READY
    assert (await floor.call_row(call)).status == CallStatus.QUEUED


async def test_reservation_timeout_moves_the_call_on(floor: Floor, drain: Drain) -> None:
    with_short_timeout = await floor.run(service.create_queue, "Urgent", reservation_seconds=3)
    for name in ("li", "wong"):
        await floor.run(service.set_skill, floor.agents[name], with_short_timeout.id)  # type: ignore[attr-defined]
    await floor.ready("li")
    await asyncio.sleep(0.01)
    await floor.ready("wong")
    call = await floor.call(queue=with_short_timeout)  # type: ignore[arg-type]
    assert (await floor.state("li"))[1] == call
    await asyncio.sleep(3.1)  # li does not answer
    await drain()
    li_status, _ = await floor.state("li")
    assert li_status == AgentStatus.NOT_READY
    assert await floor.state("wong") == (AgentStatus.RESERVED, call)
    row = await floor.call_row(call)
    assert row.status == CallStatus.OFFERED and row.agent_id == floor.agents["wong"]


async def test_a_late_answer_after_the_timeout_is_refused(floor: Floor) -> None:
    await floor.ready("li")
    call = await floor.call()
    await floor.run(service.release_offer, call, floor.agents["li"], "timeout")
    with pytest.raises(Conflict):
        await floor.run(service.accept, floor.agents["li"], call)


async def test_overflow_to_the_operators_pool_after_waiting(floor: Floor, drain: Drain) -> None:
    """Sam (CallPro) has no Pickup skill; after 1 s waiting, calls overflow to CallPro's pool."""
    queue = await floor.run(
        service.create_queue,
        "Claims",
        overflow_after_seconds=1,
        overflow_operator_id=floor.operator_id,
    )
    await floor.run(service.set_skill, floor.agents["sara"], queue.id)  # type: ignore[attr-defined]
    await floor.ready("sam")
    call = await floor.call(queue=queue)  # type: ignore[arg-type]
    assert (await floor.state("sam"))[0] == AgentStatus.READY  # not yet: sara's group first
    await asyncio.sleep(1.1)
    await drain()
    assert await floor.state("sam") == (AgentStatus.RESERVED, call)


async def test_overflow_when_too_many_wait(floor: Floor) -> None:
    queue = await floor.run(
        service.create_queue,
        "Peak",
        overflow_when_waiting=2,
        overflow_operator_id=floor.operator_id,
    )
    first = await floor.call(queue=queue)  # type: ignore[arg-type]
    second = await floor.call(queue=queue)  # type: ignore[arg-type]
    third = await floor.call(queue=queue)  # type: ignore[arg-type]  # two already waiting
    await floor.ready("sam")
    assert await floor.state("sam") == (AgentStatus.RESERVED, third)
    assert {(await floor.call_row(c)).status for c in (first, second)} == {CallStatus.QUEUED}


async def test_answer_talk_wrap_up_and_next_call(floor: Floor, drain: Drain) -> None:
    await floor.ready("li")
    first = await floor.call()
    second = await floor.call()
    await floor.run(service.accept, floor.agents["li"], first)
    assert (await floor.state("li"))[0] == AgentStatus.ON_CALL
    await floor.run(service.agent_hangs_up, floor.agents["li"], first)
    assert (await floor.state("li"))[0] == AgentStatus.WRAP_UP
    await drain()  # the queue's wrap-up time (0 s here) is over
    assert await floor.state("li") == (AgentStatus.RESERVED, second)
    done = await floor.call_row(first)
    assert done.status == CallStatus.ENDED and done.wait_seconds is not None and done.answered_at


async def test_skill_level_first(floor: Floor) -> None:
    queue = await floor.run(service.create_queue, "Experts", strategy="skill_first")
    await floor.run(service.set_skill, floor.agents["li"], queue.id, 2)  # type: ignore[attr-defined]
    await floor.run(service.set_skill, floor.agents["wong"], queue.id, 7)  # type: ignore[attr-defined]
    await floor.ready("li")
    await floor.ready("wong")
    call = await floor.call(queue=queue)  # type: ignore[arg-type]
    assert await floor.state("wong") == (AgentStatus.RESERVED, call)


async def test_caller_hanging_up_while_offered_frees_the_agent(floor: Floor) -> None:
    await floor.ready("li")
    call = await floor.call()
    await floor.run(service.caller_hangs_up, call)
    assert (await floor.call_row(call)).status == CallStatus.ABANDONED
    assert await floor.state("li") == (AgentStatus.READY, None)


async def test_round_robin_offers_whoever_was_offered_a_call_least_recently(floor: Floor) -> None:
    queue = await floor.run(service.create_queue, "Rota", strategy="round_robin")
    for name in ("li", "wong"):
        await floor.run(service.set_skill, floor.agents[name], queue.id)  # type: ignore[attr-defined]
    await floor.ready("li")
    await floor.ready("wong")
    first = await floor.call(queue=queue)  # type: ignore[arg-type]
    assert await floor.state("li") == (AgentStatus.RESERVED, first)  # neither offered one yet
    await floor.run(service.accept, floor.agents["li"], first)
    await floor.run(service.agent_hangs_up, floor.agents["li"], first)
    await floor.run(service.wrap_up_done, floor.agents["li"])
    # Wong is now the one ready for the shorter time: longest idle would pick Li.
    await floor.run(service.set_status, floor.agents["wong"], AgentStatus.NOT_READY, "break")
    await floor.ready("wong")
    second = await floor.call(queue=queue)  # type: ignore[arg-type]
    assert await floor.state("wong") == (AgentStatus.RESERVED, second)


async def test_least_talk_time_today_first(floor: Floor) -> None:
    queue = await floor.run(service.create_queue, "Even", strategy="least_talk")
    for name in ("li", "wong"):
        await floor.run(service.set_skill, floor.agents[name], queue.id)  # type: ignore[attr-defined]
    await floor.ready("li")  # idle the longest, but has talked for ten minutes today
    await floor.ready("wong")
    with tenant_scope(floor.tenant_id):
        async with floor.db.session() as session:
            li = await ContactCenterRepository(session).agent(floor.agents["li"], lock=True)
            assert li is not None
            li.talk_seconds_today = 600
            session.add(li)
    call = await floor.call(queue=queue)  # type: ignore[arg-type]
    assert await floor.state("wong") == (AgentStatus.RESERVED, call)


async def test_overflow_to_another_queues_agents(floor: Floor) -> None:
    # Nobody has this queue's skill; with no one allowed to wait, calls overflow at once.
    queue = await floor.run(
        service.create_queue, "Spill", overflow_when_waiting=0, overflow_queue_id=floor.queue.id
    )
    await floor.ready("wong")
    call = await floor.call(queue=queue)  # type: ignore[arg-type]
    assert await floor.state("wong") == (AgentStatus.RESERVED, call)


async def test_one_routing_pass_makes_every_pair_it_can(floor: Floor) -> None:
    queue = await floor.run(service.create_queue, "New skill")
    first = await floor.call(queue=queue)  # type: ignore[arg-type]
    second = await floor.call(queue=queue)  # type: ignore[arg-type]
    await floor.ready("li")
    await floor.ready("wong")
    # Skills given while calls wait do not route by themselves; the next routing pass offers
    # both calls, oldest first to the agent idle the longest.
    for name in ("li", "wong"):
        await floor.run(service.set_skill, floor.agents[name], queue.id)  # type: ignore[attr-defined]
    offers = await floor.run(service.route)
    assert offers == [
        service.Offer(first, floor.agents["li"]),
        service.Offer(second, floor.agents["wong"]),
    ]
