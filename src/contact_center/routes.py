"""Pages and API of the contact center: queues and overflow, skills, agent states, blocklist,
business hours and VIP numbers, and the IVR flow (export, and validation of an edited one)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from uuid import UUID

from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import Redirect, ServerSentEvent, Template
from pydantic import ValidationError
from redis.asyncio import Redis

from contact_center import service, supervision, wallboard
from contact_center.calendar import BusinessHours
from contact_center.models import AgentStatus, ContactCenterSettings, Strategy
from contact_center.repository import ContactCenterRepository
from contact_center.schemas import FloorOut
from depotline import realtime
from depotline.auth import principal_of, requires, signed_in
from depotline.db import Database, tenant_scope, utcnow
from depotline.errors import DomainError, InvalidInput, NotFound
from depotline.pages import Req, attempt, flash, form_of, refused, render
from telephony_gateway.providers.registry import Providers
from telephony_gateway.service import e164
from tenant.repository import TenantRepository

MANAGERS = ("tenant_admin", "supervisor")


def _optional_int(value: str | None, field: str) -> int | None:
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise InvalidInput("A whole number of seconds or calls", field=field) from None


class ContactCenterPages(Controller):
    path = "/contact-center"
    include_in_schema = False
    guards = [signed_in]

    @get("/queues")
    async def queues(self, request: Req, db: NamedDependency[Database]) -> Template:
        async with db.session() as session:
            repo = ContactCenterRepository(session)
            queues, agents = await repo.queues(), await repo.agents()
            operators = await TenantRepository(session).operators()
            calls = await repo.calls()
            users = {a.user_id: await TenantRepository(session).get_user(a.user_id) for a in agents}
        waiting = {
            q.id: sum(1 for c in calls if c.queue_id == q.id and c.status == "queued")
            for q in queues
        }
        return render(
            request,
            "contact_center/queues.html",
            queues=queues,
            agents=agents,
            users=users,
            operators=operators,
            waiting=waiting,
            now=utcnow(),
            strategies=[s.value for s in Strategy],
        )

    @post("/queues", guards=[requires(*MANAGERS)])
    async def create_queue(self, request: Req, db: NamedDependency[Database]) -> Redirect:
        form = await form_of(request)

        async def action() -> None:
            operator = (
                UUID(form["overflow_operator_id"]) if form.get("overflow_operator_id") else None
            )
            async with db.session() as session:
                await service.create_queue(
                    session,
                    form.get("name", ""),
                    strategy=form.get("strategy", "longest_idle"),
                    reservation_seconds=_optional_int(
                        form.get("reservation_seconds"), "reservation_seconds"
                    )
                    or 15,
                    wrap_up_seconds=_optional_int(form.get("wrap_up_seconds"), "wrap_up_seconds")
                    or 0,
                    overflow_after_seconds=_optional_int(
                        form.get("overflow_after_seconds"), "overflow_after_seconds"
                    ),
                    overflow_when_waiting=_optional_int(
                        form.get("overflow_when_waiting"), "overflow_when_waiting"
                    ),
                    overflow_operator_id=operator,
                    callback_offer_after_seconds=_optional_int(
                        form.get("callback_offer_after_seconds"), "callback_offer_after_seconds"
                    ),
                )

        return await attempt(request, action, "Queue created", "/contact-center/queues")

    @post("/skills", guards=[requires(*MANAGERS)])
    async def set_skill(self, request: Req, db: NamedDependency[Database]) -> Redirect:
        form = await form_of(request)

        async def action() -> None:
            try:
                user_id, queue_id = UUID(form.get("user_id", "")), UUID(form.get("queue_id", ""))
                level = int(form.get("level", "1"))
            except ValueError:
                raise InvalidInput("Choose an agent, a queue and a level") from None
            async with db.session() as session:
                await service.set_skill(session, user_id, queue_id, level)

        return await attempt(request, action, "Skill saved", "/contact-center/queues")

    @post("/me/status")
    async def my_status(self, request: Req, db: NamedDependency[Database]) -> Redirect:
        """The signed-in agent joins this tenant's floor and sets ready / not ready."""
        form = await form_of(request)
        principal = principal_of(request)

        async def action() -> None:
            try:
                status = AgentStatus(form.get("status", ""))
            except ValueError:
                raise InvalidInput("Ready, not ready or signed out", field="status") from None
            assert principal.user_id is not None
            async with db.session() as session:
                await service.agent_signs_in(session, principal.user_id, principal.home_tenant_id)
                await service.set_status(
                    session, principal.user_id, status, form.get("reason") or None
                )

        return await attempt(request, action, "Status changed", "/contact-center/queues")

    @get("/blocklist", guards=[requires(*MANAGERS)])
    async def blocklist(self, request: Req, db: NamedDependency[Database]) -> Template:
        async with db.session() as session:
            entries = await ContactCenterRepository(session).blocklist()
        return render(request, "contact_center/blocklist.html", entries=entries, now=utcnow())

    @post("/blocklist", guards=[requires(*MANAGERS)])
    async def block(self, request: Req, db: NamedDependency[Database]) -> Redirect:
        form = await form_of(request)

        async def action() -> None:
            try:
                expires = (
                    datetime.fromisoformat(form["expires_at"]) if form.get("expires_at") else None
                )
            except ValueError:
                raise InvalidInput(
                    "A date and time, e.g. 2026-12-31T18:00", field="expires_at"
                ) from None
            if expires is not None and expires.tzinfo is None:
                expires = expires.replace(tzinfo=utcnow().tzinfo)
            async with db.session() as session:
                await service.block_number(
                    session,
                    principal_of(request),
                    form.get("phone", ""),
                    form.get("reason", ""),
                    expires,
                )

        return await attempt(request, action, "Number blocked", "/contact-center/blocklist")

    @post("/blocklist/{entry_id:uuid}/remove", guards=[requires(*MANAGERS)])
    async def unblock(
        self, request: Req, entry_id: FromPath[UUID], db: NamedDependency[Database]
    ) -> Redirect:
        async def action() -> None:
            async with db.session() as session:
                await service.unblock(session, principal_of(request), entry_id)

        return await attempt(request, action, "Number unblocked", "/contact-center/blocklist")

    @get("/settings", guards=[requires(*MANAGERS)])
    async def settings(self, request: Req, db: NamedDependency[Database]) -> Template:
        async with db.session() as session:
            current = await ContactCenterRepository(session).settings()
        hours = (
            json.dumps(current.business_hours, indent=2, ensure_ascii=False)
            if current and current.business_hours
            else ""
        )
        return render(
            request,
            "contact_center/settings.html",
            hours=hours,
            vip="\n".join(current.vip_numbers) if current else "",
            survey=bool(current and current.survey_enabled),
        )

    @post("/settings", guards=[requires(*MANAGERS)])
    async def save_settings(self, request: Req, db: NamedDependency[Database]) -> Redirect:
        form = await form_of(request)

        async def action() -> None:
            hours: dict[str, Any] | None = None
            if form.get("business_hours", "").strip():
                try:
                    hours = BusinessHours.model_validate_json(form["business_hours"]).model_dump(
                        mode="json"
                    )
                except ValidationError as exc:
                    first = exc.errors()[0]
                    where = ".".join(str(p) for p in first["loc"])
                    raise InvalidInput(
                        f"Business hours: {where}: {first['msg']}", field="business_hours"
                    ) from None
            vip = [
                e164(line, field="vip_numbers")
                for line in form.get("vip_numbers", "").splitlines()
                if line.strip()
            ]
            async with db.session() as session:
                repo = ContactCenterRepository(session)
                current = await repo.settings() or ContactCenterSettings()
                current.business_hours, current.vip_numbers, current.updated_at = (
                    hours,
                    vip,
                    utcnow(),
                )
                # The post-call survey: callers rate the call after the agent hangs up.
                current.survey_enabled = form.get("survey_enabled") == "on"
                repo.add(current)

        return await attempt(request, action, "Settings saved", "/contact-center/settings")


# -- the supervisor console ---------------------------------------------------------------------
CONSOLE = "/contact-center/console"
#: What the console says once a forced change is done, or waits for the agent's call to end.
FORCED_NOW = {
    AgentStatus.READY: "The agent is ready",
    AgentStatus.NOT_READY: "The agent is not ready",
    AgentStatus.SIGNED_OUT: "The agent is signed out",
}
FORCED_AFTER_CALL = {
    AgentStatus.READY: "The agent will be ready after this call",
    AgentStatus.NOT_READY: "The agent will be not ready when this call ends",
    AgentStatus.SIGNED_OUT: "The agent will be signed out when this call ends",
}
FLOOR_CHANNELS_MAX = 50
MONITORING = {
    "listen": "You are listening to the call",
    "whisper": "You are whispering to the agent",
    "barge": "You have joined the call",
}


class ConsolePages(Controller):
    """The supervisor console: today's figures per queue, every agent's state, and the actions
    on an agent (force ready / not ready / sign out; listen, whisper, barge)."""

    path = CONSOLE
    include_in_schema = False
    guards = [requires(*MANAGERS)]

    @get("/")
    async def console(self, request: Req, db: NamedDependency[Database]) -> Template:
        async with db.session() as session:
            floor = await wallboard.floor(session)
            reasons = await supervision.not_ready_reasons(session)
        thresholds = {q.threshold_seconds for q in floor.queues} or {15}
        return render(
            request,
            "contact_center/console.html",
            floor=floor,
            reasons=reasons,
            threshold=thresholds.pop() if len(thresholds) == 1 else None,
        )

    @post("/agents/{user_id:uuid}/state")
    async def force_state(
        self, request: Req, user_id: FromPath[UUID], db: NamedDependency[Database]
    ) -> Redirect:
        async with db.session() as session:
            agent = await supervision.find_agent(session, user_id)  # another tenant's: 404
        form = await form_of(request)
        try:
            # The agent's own tenant (a branch, for an HQ supervisor): its routing lock, its log.
            with tenant_scope(agent.tenant_id):
                async with db.session() as session:
                    forced = await supervision.force_state(
                        session,
                        principal_of(request),
                        user_id,
                        form.get("state", ""),
                        form.get("reason"),
                    )
        except NotFound:
            raise
        except DomainError as exc:
            refused(request, exc)
        else:
            done = FORCED_NOW if forced.applied else FORCED_AFTER_CALL
            flash(request, done[forced.status])
        return Redirect(path=CONSOLE)

    @post("/agents/{user_id:uuid}/monitor")
    async def monitor(
        self,
        request: Req,
        user_id: FromPath[UUID],
        db: NamedDependency[Database],
        providers: NamedDependency[Providers],
    ) -> Redirect:
        async with db.session() as session:
            agent = await supervision.find_agent(session, user_id)  # another tenant's: 404
        mode = (await form_of(request)).get("mode", "")
        try:
            with tenant_scope(agent.tenant_id):
                async with db.session() as session:
                    await supervision.monitor(
                        session, providers, principal_of(request), user_id, mode
                    )
        except NotFound:
            raise
        except DomainError as exc:
            refused(request, exc)
        else:
            flash(request, MONITORING[mode])
        return Redirect(path=CONSOLE)


class FloorApi(Controller):
    path = "/api/v1/contact-center"
    tags = ["contact center"]
    guards = [requires(*MANAGERS)]

    @get(
        "/floor",
        summary="Today's figures per queue and every agent's state (the supervisor console)",
    )
    async def floor(self, db: NamedDependency[Database]) -> FloorOut:
        async with db.session() as session:
            floor = await wallboard.floor(session)
        return FloorOut.model_validate(floor)

    @get(
        "/floor/events",
        summary="The floor's changes as Server-Sent Events (agent states, calls)",
    )
    async def floor_events(
        self, request: Req, db: NamedDependency[Database], redis: NamedDependency[Redis]
    ) -> ServerSentEvent:
        """The floor channels of the acting tenant and its branches (an HQ sees theirs)."""
        acting = principal_of(request).acting_tenant_id
        async with db.session() as session:
            visible = await TenantRepository(session).visible_tenant_ids()
        # A platform admin sees every tenant: follow the acting one and at most 50 others.
        tenants = [acting, *[t for t in visible if t != acting][:FLOOR_CHANNELS_MAX]]
        channels = [realtime.floor_channel(tenant_id) for tenant_id in tenants]
        return realtime.sse(redis, channels, realtime.last_event_id(request))
