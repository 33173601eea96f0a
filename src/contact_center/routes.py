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
from litestar.response import Redirect, Template
from pydantic import ValidationError

from contact_center import ivr, service
from contact_center.calendar import BusinessHours
from contact_center.models import AgentStatus, ContactCenterSettings, Strategy
from contact_center.repository import ContactCenterRepository
from contact_center.voice import LOOKUPS
from depotline.auth import principal_of, requires, signed_in
from depotline.db import Database, utcnow
from depotline.errors import InvalidInput
from depotline.pages import Req, attempt, form_of, render
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
            flow_json=ivr.to_json(ivr.DEMO_FLOW),
            problems=request.session.pop("ivr_problems", None) if request.session else None,
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
                repo.add(current)

        return await attempt(request, action, "Settings saved", "/contact-center/settings")

    @post("/ivr/validate", guards=[requires(*MANAGERS)])
    async def validate_flow(self, request: Req) -> Redirect:
        """Check an edited flow before it may go live: every problem, named by node."""
        text = (await form_of(request)).get("flow", "")
        try:
            problems = ivr.validate(ivr.from_json(text), lookups=set(ivr_lookups()))
        except (ValidationError, ValueError) as exc:
            problems = [f"Not a flow: {str(exc).splitlines()[0]}"]
        request.session["ivr_problems"] = problems or ["OK: the flow can be published."]
        return Redirect(path="/contact-center/settings")


def ivr_lookups() -> list[str]:
    return list(LOOKUPS)
