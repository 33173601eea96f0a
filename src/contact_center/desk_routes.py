"""The agent desktop (/desk): the page an agent keeps open all day, its real-time stream, and
the actions it posts (state, offers, call controls, wrap-up), plus the tenant's code lists.

Every action is an ordinary form post (CSRF field, redirect back with a message) so the page
works without JavaScript; desk.js sends the same forms with fetch (CSRF header, Accept JSON) and
gets the desk's new state back, or a problem (4xx, the field named, the message translated).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from uuid import UUID

from litestar import Controller, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import Redirect, ServerSentEvent, Template
from redis.asyncio import Redis
from sqlmodel.ext.asyncio.session import AsyncSession

from contact_center import desk, service
from contact_center.models import DeskCodeKind
from depotline import i18n, realtime
from depotline.auth import Principal, principal_of, requires, scope_for, signed_in
from depotline.config import Settings
from depotline.db import Database, tenant_scope, utcnow
from depotline.errors import DomainError, InvalidInput, NotFound
from depotline.pages import Req, flash, form_of, refused, render
from telephony_gateway.providers.registry import Providers
from tenant.repository import TenantRepository
from tenant.routes import client_ip, leave_seat_for, take_seat_for

MANAGERS = ("tenant_admin", "supervisor")
DESK = "/desk"
#: Keys of the frequent actions; the page lists them, desk.js binds them.
SHORTCUTS = (
    ("a", "Accept the call"),
    ("d", "Decline the call"),
    ("h", "Hold or resume"),
    ("t", "Transfer"),
    ("c", "Three-way call"),
    ("x", "Hang up"),
    ("w", "Wrap-up code"),
    ("r", "Ready"),
    ("n", "Not ready"),
    ("?", "Show these keys"),
)


@lru_cache(maxsize=4)
def _catalogs(locale_dir: Path) -> i18n.Catalogs:
    return i18n.Catalogs(locale_dir)


def _agent(request: Req) -> tuple[Principal, UUID]:
    principal = principal_of(request)
    if principal.user_id is None:  # an API key has no desk
        raise NotFound("The desk is for people signed in")
    return principal, principal.user_id


def _seconds_left(until: datetime | None) -> int | None:
    return None if until is None else max(0, int((until - utcnow()).total_seconds()))


def _wants_json(request: Req) -> bool:
    return "application/json" in request.headers.get("accept", "")


def _uuid(value: str | None, field: str, what: str) -> UUID:
    try:
        return UUID(value or "")
    except ValueError:
        raise InvalidInput(f"Choose {what}", field=field) from None


Action = Callable[[AsyncSession, Principal], Awaitable[object]]
FloorAction = Callable[[AsyncSession, int], Awaitable[object]]


def _floors(principal: Principal) -> list[UUID]:
    """The floors this desk works: every client whose seat the agent holds (the one the browser
    acts for first), else the acting tenant's own."""
    if not principal.seats:
        return [principal.acting_tenant_id]
    held = [seat.tenant_id for seat in principal.seats]
    return sorted(held, key=lambda floor: floor != principal.acting_tenant_id)


def _tenants(principal: Principal) -> list[UUID]:
    """Where a call this desk acts on may live: the acting tenant and every client served."""
    return list(dict.fromkeys([principal.acting_tenant_id, *_floors(principal)]))


async def _desk(db: Database, principal: Principal, user_id: UUID) -> desk.DeskState:
    """The desk across the agent's floors: the one with a call on it (one at a time, see
    `seating`), else the first."""
    first: desk.DeskState | None = None
    for floor in _floors(principal):
        with scope_for(principal, floor):
            async with db.session() as session:
                state = await desk.desk_state(session, user_id)
        if state.busy:
            return state
        first = first or state
    assert first is not None
    return first


async def _route_other_floors(db: Database, principal: Principal, done: UUID) -> None:
    """The agent is free of the call on `done`: calls waiting on their other floors may go to
    them now (those floors' routing skipped them while they were busy)."""
    for floor in _floors(principal):
        if floor != done:
            with scope_for(principal, floor):
                async with db.session() as session:
                    await service.route(session)


class DeskPages(Controller):
    path = DESK
    include_in_schema = False
    guards = [signed_in]

    async def _answer(
        self,
        request: Req,
        db: Database,
        settings: Settings,
        run: Callable[[], Awaitable[object]],
        success: str,
    ) -> Response[Any] | Redirect:
        """Run an action; answer with the desk's new state (fetch) or go back to the desk with
        its outcome (a form). Someone else's call is a 404 either way."""
        principal, user_id = _agent(request)
        try:
            await run()
        except NotFound:
            raise
        except DomainError as exc:
            if _wants_json(request):
                catalogs = _catalogs(settings.frontend_dir / "locale")
                raise type(exc)(catalogs.gettext(exc.detail), field=exc.field) from None
            refused(request, exc)
            return Redirect(path=DESK)
        if not _wants_json(request):
            flash(request, success)
            return Redirect(path=DESK)
        state = await _desk(db, principal, user_id)
        return Response(content={"ok": True, "state": state.as_json()}, status_code=200)

    async def _act(
        self,
        request: Req,
        db: Database,
        settings: Settings,
        action: Action,
        success: str,
        call_id: UUID,
        *,
        frees_agent: bool = False,
    ) -> Response[Any] | Redirect:
        """Act on a call, in one transaction under the call's own tenant: the acting tenant or
        a client whose seat the agent holds (found before anything in the form is looked at).
        `frees_agent`: afterwards the agent may take calls of their other floors."""
        principal, _ = _agent(request)

        async def run() -> None:
            for tenant_id in _tenants(principal):
                with scope_for(principal, tenant_id) as acting:
                    async with db.session() as session:
                        if not await desk.call_exists(session, call_id):
                            continue
                        await action(session, acting)
                if frees_agent:
                    await _route_other_floors(db, principal, tenant_id)
                return
            raise NotFound("No such call")

        return await self._answer(request, db, settings, run, success)

    async def _on_every_floor(
        self, request: Req, db: Database, settings: Settings, action: FloorAction, success: str
    ) -> Response[Any] | Redirect:
        """A change of the agent's own (state, auto-answer) on each floor they work, the busy
        one first (where a call may refuse it), one transaction per floor."""
        principal, user_id = _agent(request)

        async def run() -> None:
            busy = (await _desk(db, principal, user_id)).tenant_id
            floors = sorted(_floors(principal), key=lambda floor: floor != busy)
            for n, floor in enumerate(floors):
                with scope_for(principal, floor):
                    async with db.session() as session:
                        await action(session, n)

        return await self._answer(request, db, settings, run, success)

    # -- the page, its stream and its state -------------------------------------------------
    @get("/")
    async def page(
        self, request: Req, db: NamedDependency[Database], settings: NamedDependency[Settings]
    ) -> Template:
        principal, user_id = _agent(request)
        with tenant_scope(principal.home_tenant_id):
            async with db.session() as session:
                tenants = TenantRepository(session)
                mine = [a for a in await tenants.assignments() if a.user_id == user_id]
                clients = await tenants.tenants_by_ids([a.client_id for a in mine])
        state = await _desk(db, principal, user_id)
        with scope_for(principal, state.tenant_id or principal.acting_tenant_id) as acting:
            async with db.session() as session:
                reasons = await desk.code_labels(session, DeskCodeKind.NOT_READY)
                wrap_codes = await desk.code_labels(session, DeskCodeKind.WRAP_UP)
                targets = await desk.transfer_targets(session, user_id)
                shown = state.offer.call_id if state.offer else None
                shown = shown or (state.call.id if state.call else None)
                shown = shown or (state.wrap_up_call.id if state.wrap_up_call else None)
                pop = (
                    await desk.screen_pop(
                        session,
                        acting,
                        shown,
                        language=i18n.current_locale.get(),
                        ip=client_ip(request),
                    )
                    if shown
                    else None
                )
        serving = [seat.tenant_name for seat in principal.seats] or [principal.acting_tenant_name]
        return render(
            request,
            "contact_center/desk.html",
            state=state,
            state_json=state.as_json(),
            reasons=reasons,
            reason_words={
                r: _catalogs(settings.frontend_dir / "locale").gettext(r) for r in reasons
            },
            wrap_codes=wrap_codes,
            queues=state.queues,
            targets=targets,
            serving=serving,
            seats=principal.seats,
            joinable=sorted(
                (c for c in clients.values() if c.id not in principal.serving),
                key=lambda t: t.name,
            ),
            pop=pop,
            shortcuts=SHORTCUTS,
            offer_left=_seconds_left(state.offer_expires_at),
            wrap_left=_seconds_left(state.wrap_up_ends_at),
        )

    @get("/events")
    async def events(self, request: Req, redis: NamedDependency[Redis]) -> ServerSentEvent:
        """The agent's own channel: offers and state changes from any replica or worker, of
        every floor they work."""
        _, user_id = _agent(request)
        return realtime.sse(
            redis, [realtime.agent_channel(user_id)], realtime.last_event_id(request)
        )

    @get("/state")
    async def state(self, request: Req, db: NamedDependency[Database]) -> dict[str, Any]:
        """What the desk shows now (a desktop asks on every (re)connect: no offer is lost)."""
        principal, user_id = _agent(request)
        return (await _desk(db, principal, user_id)).as_json()

    @get("/agents")
    async def agents(self, request: Req, db: NamedDependency[Database]) -> list[dict[str, str]]:
        """Ready agents the current call can be transferred to (on the call's floor)."""
        principal, user_id = _agent(request)
        floor = (await _desk(db, principal, user_id)).tenant_id or principal.acting_tenant_id
        with scope_for(principal, floor):
            async with db.session() as session:
                targets = await desk.transfer_targets(session, user_id)
        return [{"id": str(agent_id), "name": name} for agent_id, name in targets]

    @get("/calls/{call_id:uuid}/pop")
    async def pop(
        self, request: Req, call_id: FromPath[UUID], db: NamedDependency[Database]
    ) -> Template:
        """The screen pop, as an HTML fragment the desk puts in place: read under the call's
        own tenant (the acting one or a client served), audited there."""
        principal, _ = _agent(request)
        for tenant_id in _tenants(principal):
            with scope_for(principal, tenant_id) as acting:
                async with db.session() as session:
                    if not await desk.call_exists(session, call_id):
                        continue
                    found = await desk.screen_pop(
                        session,
                        acting,
                        call_id,
                        language=i18n.current_locale.get(),
                        ip=client_ip(request),
                    )
            # Not `render`: a fragment must not take the page's flash messages with it.
            return Template(template_name="contact_center/_screen_pop.html", context={"pop": found})
        raise NotFound("No such call")

    # -- the agent's state -----------------------------------------------------------------
    @post("/status")
    async def status(
        self,
        request: Req,
        db: NamedDependency[Database],
        settings: NamedDependency[Settings],
    ) -> Response[Any] | Redirect:
        """Ready, not ready or signed out on every floor the agent works."""
        principal, user_id = _agent(request)
        form = await form_of(request)

        async def action(session: AsyncSession, n: int) -> object:
            return await desk.change_status(
                session,
                user_id,
                principal.home_tenant_id,
                form.get("status", ""),
                form.get("reason") or None,
                reason_checked=n > 0,  # the first floor checked it
            )

        return await self._on_every_floor(request, db, settings, action, "Status changed")

    @post("/auto-answer")
    async def auto_answer(
        self,
        request: Req,
        db: NamedDependency[Database],
        settings: NamedDependency[Settings],
    ) -> Response[Any] | Redirect:
        principal, user_id = _agent(request)
        on = (await form_of(request)).get("auto_answer") in ("on", "true", "1")

        async def action(session: AsyncSession, n: int) -> object:
            return await desk.set_auto_answer(session, user_id, principal.home_tenant_id, on)

        return await self._on_every_floor(request, db, settings, action, "Saved")

    # -- the clients served ------------------------------------------------------------------
    @post("/seat")
    async def seat(self, request: Req, db: NamedDependency[Database]) -> Redirect:
        """Serve one more client: a seat of theirs, and their floor in the state the desk is in
        (ready stays ready). The agent's own tenant instead: leave every seat."""
        principal, user_id = _agent(request)
        form = await form_of(request)
        try:
            client_id = _uuid(form.get("client_id"), "client_id", "a client")
            if client_id == principal.home_tenant_id:
                for floor in _floors(principal):
                    await self._leave_floor(db, principal, user_id, floor)
                await leave_seat_for(request, db)
            else:
                status = (await _desk(db, principal, user_id)).as_json()["status"]
                await take_seat_for(request, db, client_id)
                with scope_for(principal_of(request), client_id):
                    async with db.session() as session:
                        if status == "ready":
                            await desk.change_status(
                                session, user_id, principal.home_tenant_id, "ready"
                            )
                        else:
                            await service.agent_signs_in(session, user_id, principal.home_tenant_id)
        except NotFound:
            raise
        except DomainError as exc:
            refused(request, exc)
        else:
            flash(request, "You are on a seat")
        return Redirect(path=DESK)

    @post("/seat/leave")
    async def leave_seat(self, request: Req, db: NamedDependency[Database]) -> Redirect:
        """Stop serving one client: off their floor (not mid-call), their seat given back."""
        principal, user_id = _agent(request)
        form = await form_of(request)
        try:
            client_id = _uuid(form.get("client_id"), "client_id", "a client")
            if client_id not in principal.serving:
                raise NotFound("You hold no seat of that client")
            await self._leave_floor(db, principal, user_id, client_id)
            await leave_seat_for(request, db, client_id)
        except NotFound:
            raise
        except DomainError as exc:
            refused(request, exc)
        else:
            flash(request, "Seat released")
        return Redirect(path=DESK)

    @staticmethod
    async def _leave_floor(db: Database, principal: Principal, user_id: UUID, floor: UUID) -> None:
        with scope_for(principal, floor):
            async with db.session() as session:
                await desk.leave_floor(session, user_id)

    # -- offers and call controls ------------------------------------------------------------
    @post("/calls/{call_id:uuid}/accept")
    async def accept(
        self,
        request: Req,
        call_id: FromPath[UUID],
        db: NamedDependency[Database],
        settings: NamedDependency[Settings],
    ) -> Response[Any] | Redirect:
        _, user_id = _agent(request)

        async def action(session: AsyncSession, acting: Principal) -> object:
            return await desk.accept(session, user_id, call_id)

        return await self._act(request, db, settings, action, "Call accepted", call_id)

    @post("/calls/{call_id:uuid}/decline")
    async def decline(
        self,
        request: Req,
        call_id: FromPath[UUID],
        db: NamedDependency[Database],
        settings: NamedDependency[Settings],
    ) -> Response[Any] | Redirect:
        _, user_id = _agent(request)

        async def action(session: AsyncSession, acting: Principal) -> object:
            return await desk.decline(session, user_id, call_id)

        return await self._act(
            request, db, settings, action, "Call declined", call_id, frees_agent=True
        )

    @post("/calls/{call_id:uuid}/hold")
    async def hold(
        self,
        request: Req,
        call_id: FromPath[UUID],
        db: NamedDependency[Database],
        settings: NamedDependency[Settings],
        providers: NamedDependency[Providers],
    ) -> Response[Any] | Redirect:
        _, user_id = _agent(request)

        async def action(session: AsyncSession, acting: Principal) -> object:
            return await desk.hold(session, providers, user_id, call_id)

        return await self._act(request, db, settings, action, "The caller is on hold", call_id)

    @post("/calls/{call_id:uuid}/resume")
    async def resume(
        self,
        request: Req,
        call_id: FromPath[UUID],
        db: NamedDependency[Database],
        settings: NamedDependency[Settings],
        providers: NamedDependency[Providers],
    ) -> Response[Any] | Redirect:
        _, user_id = _agent(request)

        async def action(session: AsyncSession, acting: Principal) -> object:
            return await desk.resume(session, providers, user_id, call_id)

        return await self._act(request, db, settings, action, "The caller is back", call_id)

    @post("/calls/{call_id:uuid}/hang-up")
    async def hang_up(
        self,
        request: Req,
        call_id: FromPath[UUID],
        db: NamedDependency[Database],
        settings: NamedDependency[Settings],
        providers: NamedDependency[Providers],
    ) -> Response[Any] | Redirect:
        _, user_id = _agent(request)

        async def action(session: AsyncSession, acting: Principal) -> object:
            return await desk.hang_up(session, providers, user_id, call_id)

        return await self._act(request, db, settings, action, "Call ended", call_id)

    @post("/calls/{call_id:uuid}/transfer")
    async def transfer(
        self,
        request: Req,
        call_id: FromPath[UUID],
        db: NamedDependency[Database],
        settings: NamedDependency[Settings],
        providers: NamedDependency[Providers],
    ) -> Response[Any] | Redirect:
        """To a queue ("queue:<id>") or to a ready agent ("agent:<user id>"), with a note."""
        _, user_id = _agent(request)
        form = await form_of(request)

        async def action(session: AsyncSession, acting: Principal) -> object:
            kind, _, target = form.get("to", "").partition(":")
            note = form.get("note")
            if kind == "queue":
                queue_id = _uuid(target, "to", "a queue or an agent")
                return await desk.transfer_to_queue(
                    session, providers, user_id, call_id, queue_id, note
                )
            if kind == "agent":
                agent_id = _uuid(target, "to", "a queue or an agent")
                return await desk.transfer_to_agent(
                    session, providers, user_id, call_id, agent_id, note
                )
            raise InvalidInput("Choose a queue or an agent", field="to")

        return await self._act(request, db, settings, action, "Call transferred", call_id)

    @post("/calls/{call_id:uuid}/conference")
    async def conference(
        self,
        request: Req,
        call_id: FromPath[UUID],
        db: NamedDependency[Database],
        settings: NamedDependency[Settings],
        providers: NamedDependency[Providers],
    ) -> Response[Any] | Redirect:
        _, user_id = _agent(request)
        number = (await form_of(request)).get("number", "")

        async def action(session: AsyncSession, acting: Principal) -> object:
            return await desk.conference(session, providers, user_id, call_id, number)

        return await self._act(request, db, settings, action, "Three-way call started", call_id)

    @post("/calls/{call_id:uuid}/wrap-up")
    async def wrap_up(
        self,
        request: Req,
        call_id: FromPath[UUID],
        db: NamedDependency[Database],
        settings: NamedDependency[Settings],
    ) -> Response[Any] | Redirect:
        _, user_id = _agent(request)
        form = await form_of(request)

        async def action(session: AsyncSession, acting: Principal) -> object:
            return await desk.wrap_up(
                session, user_id, call_id, form.get("code", ""), form.get("notes", "")
            )

        return await self._act(
            request, db, settings, action, "Wrap-up saved", call_id, frees_agent=True
        )

    # -- the tenant's codes ------------------------------------------------------------------
    @get("/codes", guards=[requires(*MANAGERS)])
    async def codes(self, request: Req, db: NamedDependency[Database]) -> Template:
        async with db.session() as session:
            own = {kind: await desk.own_codes(session, kind) for kind in DeskCodeKind}
        return render(
            request, "contact_center/desk_codes.html", own=own, defaults=desk.DEFAULT_CODES
        )

    @post("/codes", guards=[requires(*MANAGERS)])
    async def add_code(self, request: Req, db: NamedDependency[Database]) -> Redirect:
        form = await form_of(request)
        try:
            async with db.session() as session:
                await desk.add_code(
                    session, principal_of(request), form.get("kind", ""), form.get("label", "")
                )
        except DomainError as exc:
            refused(request, exc)
        else:
            flash(request, "Code added")
        return Redirect(path=f"{DESK}/codes")

    @post("/codes/{code_id:uuid}/retire", guards=[requires(*MANAGERS)])
    async def retire_code(
        self, request: Req, code_id: FromPath[UUID], db: NamedDependency[Database]
    ) -> Redirect:
        async with db.session() as session:
            await desk.retire_code(session, principal_of(request), code_id)
        flash(request, "Code removed")
        return Redirect(path=f"{DESK}/codes")
