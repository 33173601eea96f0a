"""Several processes route against one database at once (as app replicas and workers do): no
agent is ever offered two calls at a time, no call is offered to two agents, and no call is left
waiting while a free agent could take it."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections import defaultdict
from itertools import pairwise
from uuid import UUID

from contact_center import service
from contact_center.models import AgentStatus, CallStatus
from contact_center.repository import ContactCenterRepository
from depotline.config import Settings
from depotline.db import tenant_scope
from tests.contact_center.conftest import Floor

PROCESSES = 3
SECONDS = 6


async def test_processes_routing_at_once_never_double_assign(
    floor: Floor, settings: Settings
) -> None:
    agents = ",".join(str(floor.agents[name]) for name in ("sara", "li", "wong"))
    workers = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.contact_center.routing_load",
            settings.app_url,
            str(floor.tenant_id),
            str(floor.queue.id),
            agents,
            str(SECONDS),
            str(seed),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=dict(os.environ),
        )
        for seed in range(PROCESSES)
    ]
    totals: dict[str, int] = defaultdict(int)
    for worker in workers:
        out, err = await worker.communicate()
        assert worker.returncode == 0, err.decode()[-2000:]
        for action, count in json.loads(out.decode().strip().splitlines()[-1]).items():
            totals[action] += count
    assert totals["call"] > 50 and totals["answer"] > 10, totals  # the floor was really busy

    await floor.run(service.route)  # anything a last state change left routable
    with tenant_scope(floor.tenant_id):
        async with floor.db.session() as session:
            repo = ContactCenterRepository(session)
            offers, calls, agents_now = await repo.offers(), await repo.calls(), await repo.agents()

    by_agent = defaultdict(list)
    for offer in offers:
        by_agent[offer.agent_id].append(offer)
    for agent_offers in by_agent.values():
        agent_offers.sort(key=lambda o: o.offered_at)
        assert sum(o.outcome is None for o in agent_offers) <= 1
        for earlier, later in pairwise(agent_offers):
            # An agent is offered a new call only after deciding (or losing) the previous one.
            assert earlier.decided_at is not None and earlier.decided_at <= later.offered_at

    accepted: dict[UUID, int] = defaultdict(int)
    for offer in offers:
        if offer.outcome == "accepted":
            accepted[offer.call_id] += 1
    assert all(count == 1 for count in accepted.values())

    open_offers = {(o.call_id, o.agent_id) for o in offers if o.outcome is None}
    for call in calls:
        if call.status == CallStatus.OFFERED:
            assert (call.id, call.agent_id) in open_offers
    for agent in agents_now:
        if agent.status == AgentStatus.RESERVED:
            assert (agent.current_call_id, agent.user_id) in open_offers

    waiting = [c for c in calls if c.status == CallStatus.QUEUED]
    ready = [
        a for a in agents_now if a.status == AgentStatus.READY and a.user_id != floor.agents["sam"]
    ]
    assert not (waiting and ready), "a call waits while a skilled agent is free"
