"""One process of the multi-process routing test: random floor activity for some seconds.

python -m tests.contact_center.routing_load APP_URL TENANT QUEUE AGENT,AGENT,... SECONDS SEED
prints a JSON count of what it did."""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from uuid import UUID, uuid4

from contact_center import service
from contact_center.models import AgentStatus, Call
from contact_center.repository import ContactCenterRepository
from depotline.db import Database, tenant_scope
from depotline.errors import DomainError


async def main(
    url: str, tenant: UUID, queue_id: UUID, agents: list[UUID], seconds: float, seed: int
) -> None:
    db = Database(url, pool_size=2)
    rng = random.Random(seed)
    done: dict[str, int] = {}
    deadline = time.monotonic() + seconds
    with tenant_scope(tenant):
        while time.monotonic() < deadline:
            action = rng.choice(
                ["call", "call", "ready", "answer", "answer", "hangup", "decline", "caller_hangup"]
            )
            try:
                async with db.session() as session:
                    repo = ContactCenterRepository(session)
                    if action == "call":
                        queue = await repo.get_queue(queue_id)
                        assert queue is not None
                        call = Call(
                            provider="load",
                            provider_call_id=uuid4().hex,
                            from_number="+8613800000000",
                            to_number="+862000000000",
                        )
                        repo.add(call)
                        await repo.flush()
                        await service.enqueue(session, call, queue, vip=rng.random() < 0.1)
                    elif action == "ready":
                        await service.set_status(session, rng.choice(agents), AgentStatus.READY)
                    else:
                        states = [a for a in await repo.agents()]
                        wanted = {
                            "answer": AgentStatus.RESERVED,
                            "decline": AgentStatus.RESERVED,
                            "hangup": AgentStatus.ON_CALL,
                            "caller_hangup": AgentStatus.ON_CALL,
                        }[action]
                        candidates = [a for a in states if a.status == wanted and a.current_call_id]
                        if not candidates:
                            continue
                        agent = rng.choice(candidates)
                        assert agent.current_call_id is not None
                        if action == "answer":
                            await service.accept(session, agent.user_id, agent.current_call_id)
                        elif action == "decline":
                            await service.release_offer(
                                session, agent.current_call_id, agent.user_id, "declined"
                            )
                        elif action == "hangup":
                            await service.agent_hangs_up(
                                session, agent.user_id, agent.current_call_id
                            )
                            await service.wrap_up_done(session, agent.user_id)
                        else:
                            await service.caller_hangs_up(session, agent.current_call_id)
                done[action] = done.get(action, 0) + 1
            except DomainError:
                done["refused"] = done.get("refused", 0) + 1
    await db.dispose()
    print(json.dumps(done))


if __name__ == "__main__":
    url, tenant, queue, agents, seconds, seed = sys.argv[1:7]
    asyncio.run(
        main(
            url,
            UUID(tenant),
            UUID(queue),
            [UUID(a) for a in agents.split(",")],
            float(seconds),
            int(seed),
        )
    )
