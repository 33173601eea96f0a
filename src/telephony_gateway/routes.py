"""HTTP for the carrier gateway: carriers' webhooks, the JSON API and the portal pages."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import quote
from uuid import UUID, uuid4

import structlog
from litestar import Controller, Request, Response, get, post, route
from litestar.di import NamedDependency
from litestar.exceptions import PermissionDeniedException
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.response import Redirect, Template
from pydantic import BaseModel, Field
from sqlmodel.ext.asyncio.session import AsyncSession

from depotline.auth import principal_of, requires, signed_in
from depotline.config import Settings
from depotline.db import Database, tenant_scope
from depotline.errors import DomainError, InvalidInput, NotFound
from depotline.pages import attempt, form_of, refused, render
from telephony_gateway import events as ev
from telephony_gateway import service
from telephony_gateway.commands import Command
from telephony_gateway.models import CarrierAccount
from telephony_gateway.providers.base import InboundRequest
from telephony_gateway.providers.registry import Providers
from telephony_gateway.providers.simulator import call_legs, handset_key, signed_form
from telephony_gateway.repository import GatewayRepository

log = structlog.get_logger(__name__)
ADMINS = ("tenant_admin",)
#: A queue's wait URL (Twilio's Enqueue waitUrl): asked what to play while a caller waits.
WAIT_KIND = "wait"
#: Webhooks the carrier wants an answer to: what the caller hears next.
VOICE_KINDS = frozenset({"voice", "gather", WAIT_KIND, "queue-left"})


# -- webhooks -----------------------------------------------------------------------------------
async def locate_account(db: Database, inbound: InboundRequest) -> CarrierAccount | None:
    """The account a webhook is for: named in the callback URLs we hand out, or found from
    the dialled number. Nothing is changed before the signature is checked."""
    async with db.session() as session:
        return await account_in(session, inbound)


async def account_in(session: AsyncSession, inbound: InboundRequest) -> CarrierAccount | None:
    """`locate_account` inside the caller's transaction, which it leaves in the account's
    tenant scope (row-level security): the rest of the webhook runs in the same transaction."""
    repo = GatewayRepository(session)
    tenant, account = inbound.query.get("tenant"), inbound.query.get("account")
    if tenant and account:
        try:
            tenant_id, account_id = UUID(tenant), UUID(account)
        except ValueError:
            return None
        return await repo.account_in_scope_of(tenant_id, account_id)
    dialled = inbound.form.get("To") or inbound.form.get("to") or inbound.query.get("to")
    if not dialled:
        return None
    return await service.account_for_number(session, dialled)


async def take_in(
    db: Database, providers: Providers, provider_name: str, kind: str, inbound: InboundRequest
) -> tuple[str, str]:
    """Verify, de-duplicate, apply; return the answer for the carrier (media type, body).

    One transaction from the account lookup to the answer (a round trip to PostgreSQL saved is
    most of what a webhook costs); it writes nothing before the signature is checked."""
    commands: list[Command] = []
    retried_answer: tuple[str, str] | None = None
    async with db.session() as session:
        account = await account_in(session, inbound)
        if account is None or account.provider != provider_name:
            log.warning("webhook for no known account", provider=provider_name, kind=kind)
            raise PermissionDeniedException("Unknown or unsigned webhook")
        handler: Any = providers.for_account(account)
        if not handler.verify(inbound):
            log.warning(
                "forged or unsigned webhook refused",
                provider=provider_name,
                kind=kind,
                account_id=str(account.id),
            )
            raise PermissionDeniedException("Unknown or unsigned webhook")
        wait_twiml = _wait_answer(handler, provider_name) if kind == WAIT_KIND else None
        try:
            events: Sequence[ev.CarrierEvent] = handler.parse(kind, inbound)
        except (KeyError, ValueError) as exc:
            raise InvalidInput(f"Cannot read this {kind} webhook: {exc}") from None
        with tenant_scope(account.tenant_id):
            for event in events:
                if isinstance(event, ev.SmsStatus) and await service.before_its_message(
                    session, event
                ):
                    service.defer_report(session, event, attempt=1)
                    continue
                if await service.first_sighting(session, event):
                    await service.apply_event(session, account.tenant_id, account.id, event)
                    if kind in VOICE_KINDS:
                        commands += await providers.voice_flow(session, account.tenant_id, event)
                elif kind in VOICE_KINDS:
                    retried_answer = await _earlier_answer(providers, event)
    if kind in VOICE_KINDS:
        if retried_answer is not None:
            return retried_answer  # a retried voice webhook gets the same answer again
        if wait_twiml is not None:
            media_type, body = wait_twiml(inbound, commands)  # then the hold music
        else:
            media_type, body = handler.render(commands)
        await _remember_answer(providers, events, media_type, body)
        return media_type, body
    if provider_name == "twilio":
        return "application/xml", "<Response/>"
    return "text/plain", "OK"


ANSWER_KEPT_SECONDS = 600


def _answer_key(event: ev.CarrierEvent) -> str:
    return f"depotline:voice-answer:{event.provider}:{event.provider_event_id}"


async def _remember_answer(
    providers: Providers, events: Sequence[ev.CarrierEvent], media_type: str, body: str
) -> None:
    """Keep what we answered, so a carrier retrying the same webhook hears the same thing
    (and the IVR does not take the same keys twice)."""
    if providers.redis is not None and events:
        await providers.redis.set(
            _answer_key(events[0]), json.dumps([media_type, body]), ex=ANSWER_KEPT_SECONDS
        )


async def _earlier_answer(providers: Providers, event: ev.CarrierEvent) -> tuple[str, str] | None:
    if providers.redis is None:
        return None
    kept = await providers.redis.get(_answer_key(event))
    if kept is None:
        return None
    media_type, body = json.loads(kept)
    return str(media_type), str(body)


WaitAnswer = Callable[[InboundRequest, Sequence[Command]], tuple[str, str]]


def _wait_answer(handler: object, provider_name: str) -> WaitAnswer:
    """How the provider answers a queue's wait URL: what the contact center says to the waiting
    caller, then hold music until the carrier asks again."""
    wait_twiml: WaitAnswer | None = getattr(handler, "wait_twiml", None)
    if wait_twiml is None:
        raise InvalidInput(f"{provider_name} has no queue wait webhook")
    return wait_twiml


class WebhookRoutes(Controller):
    """Where carriers call in. Configure numbers at your carrier with these URLs:
    Twilio voice `/webhooks/twilio/voice` (gather, status and recording callbacks and queue
    wait URLs are set by Depotline), Twilio SMS `/webhooks/twilio/sms`, Kannel sms-service
    get-url `/webhooks/kannel/sms` (delivery reports are set per message)."""

    path = "/webhooks"
    tags = ["carrier webhooks"]

    @route("/{provider:str}/{kind:str}", http_method=["GET", "POST"], status_code=200)
    async def receive(
        self,
        request: Request[Any, Any, Any],
        provider: FromPath[str],
        kind: FromPath[str],
        db: NamedDependency[Database],
        providers: NamedDependency[Providers],
    ) -> Response[str]:
        form: dict[str, str] = {}
        if request.method == "POST":
            form = {key: str(value) for key, value in (await request.form()).items()}
        inbound = InboundRequest(
            url=str(request.url),
            method=request.method,
            headers=dict(request.headers),
            query={key: value for key, value in request.query_params.items()},
            form=form,
        )
        media_type, body = await take_in(db, providers, provider, kind, inbound)
        return Response(body, media_type=media_type)


# -- API ----------------------------------------------------------------------------------------
class AccountIn(BaseModel):
    provider: str
    label: str = ""
    settings: dict[str, str] = Field(default_factory=dict)
    credentials: dict[str, str] = Field(default_factory=dict)
    sender_id: str | None = None
    sms_per_second: float = 10.0


class AccountOut(BaseModel):
    id: UUID
    provider: str
    label: str
    settings: dict[str, Any]
    sender_id: str | None
    sms_per_second: float


class NumberIn(BaseModel):
    number: str
    account_id: UUID
    label: str = ""
    voice: bool = True
    sms: bool = True


class NumberOut(BaseModel):
    id: UUID
    e164: str
    account_id: UUID
    label: str
    voice: bool
    sms: bool


class SmsIn(BaseModel):
    to: str
    body: str = Field(max_length=1600)
    message_id: str | None = Field(default=None, max_length=200)


class SmsOut(BaseModel):
    id: UUID
    message_id: str
    direction: str
    provider: str
    from_number: str
    to_number: str
    body: str
    encoding: str
    segments: int
    state: str
    error_code: str | None
    error: str | None
    attempts: int


def _account_out(account: CarrierAccount) -> AccountOut:
    return AccountOut.model_validate(account, from_attributes=True)


class GatewayApi(Controller):
    path = "/api/v1"
    tags = ["carriers and SMS"]
    guards = [signed_in]

    @get("/carrier-accounts", guards=[requires(*ADMINS)])
    async def accounts(self, db: NamedDependency[Database]) -> list[AccountOut]:
        async with db.session() as session:
            return [_account_out(a) for a in await GatewayRepository(session).accounts()]

    @post(
        "/carrier-accounts",
        guards=[requires(*ADMINS)],
        summary="Add a carrier account (credentials are never shown again)",
    )
    async def create_account(
        self,
        request: Request[Any, Any, Any],
        db: NamedDependency[Database],
        settings: NamedDependency[Settings],
        data: JSONBody[AccountIn],
    ) -> AccountOut:
        async with db.session() as session:
            account = await service.create_account(
                session,
                principal_of(request),
                provider=data.provider,
                label=data.label,
                settings=data.settings,
                credentials=data.credentials,
                sender_id=data.sender_id,
                sms_per_second=data.sms_per_second,
                secret=settings.session_secret(),
            )
        return _account_out(account)

    @get("/phone-numbers")
    async def numbers(self, db: NamedDependency[Database]) -> list[NumberOut]:
        async with db.session() as session:
            return [
                NumberOut.model_validate(n, from_attributes=True)
                for n in await GatewayRepository(session).numbers()
            ]

    @post("/phone-numbers", guards=[requires(*ADMINS)])
    async def add_number(
        self,
        request: Request[Any, Any, Any],
        db: NamedDependency[Database],
        data: JSONBody[NumberIn],
    ) -> NumberOut:
        async with db.session() as session:
            number = await service.add_number(
                session,
                principal_of(request),
                number=data.number,
                account_id=data.account_id,
                label=data.label,
                voice=data.voice,
                sms=data.sms,
            )
        return NumberOut.model_validate(number, from_attributes=True)

    @get("/sms")
    async def sms_log(
        self, db: NamedDependency[Database], phone: FromQuery[str | None] = None
    ) -> list[SmsOut]:
        async with db.session() as session:
            return [
                SmsOut.model_validate(m, from_attributes=True)
                for m in await service.sms_log(session, phone)
            ]

    @get("/sms/{message_id:str}")
    async def sms(self, db: NamedDependency[Database], message_id: FromPath[str]) -> SmsOut:
        async with db.session() as session:
            found = await GatewayRepository(session).sms_by_message_id(message_id)
        if found is None:
            raise NotFound("No such message")
        return SmsOut.model_validate(found, from_attributes=True)

    @post(
        "/sms",
        guards=[requires("tenant_admin", "supervisor", "agent")],
        summary="Send an SMS (idempotent by message_id)",
    )
    async def send(
        self, request: Request[Any, Any, Any], db: NamedDependency[Database], data: JSONBody[SmsIn]
    ) -> SmsOut:
        message_id = data.message_id or request.headers.get("idempotency-key") or uuid4().hex
        async with db.session() as session:
            sms = await service.send_sms(session, to=data.to, body=data.body, message_id=message_id)
        return SmsOut.model_validate(sms, from_attributes=True)

    @get(
        "/usage",
        guards=[requires("tenant_admin", "billing_admin")],
        summary="Billable usage: call seconds, SMS segments",
    )
    async def usage(self, db: NamedDependency[Database]) -> dict[str, int]:
        async with db.session() as session:
            return await service.usage_summary(session)


# -- pages --------------------------------------------------------------------------------------
class GatewayPages(Controller):
    path = "/"
    include_in_schema = False
    guards = [signed_in]

    @get("/carriers", guards=[requires(*ADMINS)])
    async def carriers(
        self, request: Request[Any, Any, Any], db: NamedDependency[Database]
    ) -> Template:
        async with db.session() as session:
            repo = GatewayRepository(session)
            accounts, numbers = await repo.accounts(), await repo.numbers()
        return render(
            request, "telephony_gateway/carriers.html", accounts=accounts, numbers=numbers
        )

    @post("/carriers/accounts", guards=[requires(*ADMINS)])
    async def add_account(
        self,
        request: Request[Any, Any, Any],
        db: NamedDependency[Database],
        settings: NamedDependency[Settings],
    ) -> Redirect:
        form = await form_of(request)

        async def action() -> None:
            provider = form.get("provider", "")
            account_settings = {
                k: form[k]
                for k in ("account_sid", "api_base", "sendsms_url", "username", "smsc_id")
                if form.get(k)
            }
            credentials = {k: form[k] for k in ("auth_token", "password") if form.get(k)}
            try:
                rate = float(form.get("sms_per_second") or 10)
            except ValueError:
                raise InvalidInput(
                    "A number of messages a second", field="sms_per_second"
                ) from None
            async with db.session() as session:
                await service.create_account(
                    session,
                    principal_of(request),
                    provider=provider,
                    label=form.get("label", ""),
                    settings=account_settings,
                    credentials=credentials,
                    sender_id=form.get("sender_id"),
                    sms_per_second=rate,
                    secret=settings.session_secret(),
                )

        return await attempt(request, action, "Carrier account added", "/carriers")

    @post("/carriers/numbers", guards=[requires(*ADMINS)])
    async def add_number(
        self, request: Request[Any, Any, Any], db: NamedDependency[Database]
    ) -> Redirect:
        form = await form_of(request)

        async def action() -> None:
            try:
                account_id = UUID(form.get("account_id", ""))
            except ValueError:
                raise InvalidInput("Choose a carrier account", field="account_id") from None
            async with db.session() as session:
                await service.add_number(
                    session,
                    principal_of(request),
                    number=form.get("number", ""),
                    account_id=account_id,
                    label=form.get("label", ""),
                )

        return await attempt(request, action, "Number added", "/carriers")

    @get("/sms")
    async def sms(
        self,
        request: Request[Any, Any, Any],
        db: NamedDependency[Database],
        phone: FromQuery[str | None] = None,
    ) -> Template:
        async with db.session() as session:
            messages = await service.sms_log(session, phone or None)
        return render(request, "telephony_gateway/sms.html", messages=messages, phone=phone or "")

    @post("/sms")
    async def send(
        self, request: Request[Any, Any, Any], db: NamedDependency[Database]
    ) -> Redirect:
        form = await form_of(request)

        async def action() -> None:
            async with db.session() as session:
                await service.send_sms(
                    session,
                    to=form.get("to", ""),
                    body=form.get("body", ""),
                    message_id=form.get("message_id") or uuid4().hex,
                )

        return await attempt(request, action, "SMS queued", "/sms")

    @get("/simulator")
    async def simulator(
        self,
        request: Request[Any, Any, Any],
        db: NamedDependency[Database],
        providers: NamedDependency[Providers],
        caller: FromQuery[str] = "+8613800138000",
        flow_version: FromQuery[int | None] = None,
    ) -> Template:
        """`flow_version`: the IVR editor's "try it": the next call dialled hears that version
        of the tenant's flow instead of the published one."""
        async with db.session() as session:
            numbers = [n for n in await GatewayRepository(session).numbers()]
        handset: list[Any] = []
        if providers.redis is not None:
            handset = [
                json.loads(item)
                for item in await providers.redis.lrange(handset_key(caller), 0, 19)  # type: ignore[misc]
            ]
        transcript = request.session.get("simulator_transcript", []) if request.session else []
        call = request.session.get("simulator_call")
        # Supervisors the network brought onto the call (listen, whisper, barge).
        legs = await call_legs(providers.redis, call["call_id"]) if call and providers.redis else []
        return render(
            request,
            "telephony_gateway/simulator.html",
            numbers=numbers,
            caller=caller,
            handset=handset,
            transcript=transcript,
            call=call,
            legs=legs,
            trial=flow_version,
        )

    @post("/simulator/{action:str}")
    async def simulate(
        self,
        request: Request[Any, Any, Any],
        action: FromPath[str],
        db: NamedDependency[Database],
        providers: NamedDependency[Providers],
    ) -> Redirect:
        """The console plays the caller: it signs requests exactly as the simulated carrier does."""
        form = await form_of(request)
        caller, number = form.get("caller", "+8613800138000"), form.get("number", "")
        call = request.session.get("simulator_call") or {}
        dialled = {"call_id": f"SIMCALL{uuid4().hex}", "from": caller, "to": number}
        if form.get("flow_version", "").isdecimal():
            dialled["flow_version"] = form["flow_version"]
        on_call = {"call_id": call.get("call_id", ""), "to": call.get("to", "")}
        payloads = {
            "dial": ("voice", dialled),
            "wait": ("wait", dict(on_call)),  # the caller holds on: what do they hear now?
            "digits": (
                "gather",
                {
                    "call_id": call.get("call_id", ""),
                    "digits": form.get("digits", ""),
                    "to": call.get("to", ""),
                },
            ),
            "hangup": (
                "status",
                {
                    "call_id": call.get("call_id", ""),
                    "reason": "completed",
                    "duration": form.get("duration", "30"),
                    "to": call.get("to", ""),
                },
            ),
            "sms": (
                "sms",
                {
                    "message_id": uuid4().hex,
                    "from": caller,
                    "to": number,
                    "body": form.get("body", ""),
                },
            ),
        }
        if action not in payloads:
            raise NotFound("No such simulator action")
        kind, fields = payloads[action]
        fields["event_id"] = uuid4().hex
        steps: list[dict[str, Any]] = []
        try:
            account = await locate_account(db, InboundRequest("", "POST", {}, {}, fields))
            if account is None:
                raise InvalidInput(
                    "That number is not one of this tenant's numbers", field="number"
                )
            if account.tenant_id != principal_of(request).acting_tenant_id:
                raise NotFound("No such number")
            secret = providers.webhook_secret(account)
            todo = [(action, kind, fields)]
            while todo and len(steps) < MAX_CONSOLE_STEPS:
                step, kind, fields = todo.pop(0)
                body, headers = signed_form(secret, fields)
                answer = await take_in(
                    db, providers, "simulator", kind, InboundRequest("", "POST", headers, {}, body)
                )
                heard = json.loads(answer[1]) if answer[0] == "application/json" else []
                detail = fields.get("digits") or fields.get("body") or fields.get("to")
                steps.append({"you": step, "detail": detail, "heard": heard})
                todo += network_follow_ups(heard, fields.get("call_id", ""), fields.get("to", ""))
        except DomainError as exc:
            if isinstance(exc, NotFound):
                raise
            refused(request, exc)
            return Redirect(path=f"/simulator?caller={quote(caller)}")
        transcript = list(request.session.get("simulator_transcript", []))[-30:]
        transcript += steps
        request.session["simulator_transcript"] = transcript
        if action == "dial":
            request.session["simulator_call"] = {"call_id": fields["call_id"], "to": number}
        elif action == "hangup":
            request.session["simulator_call"] = None
        return Redirect(path=f"/simulator?caller={quote(caller)}")


#: Requests one press of a console button may make (the press and what the network does next).
MAX_CONSOLE_STEPS = 4


def network_follow_ups(
    heard: Sequence[dict[str, Any]], call_id: str, to: str
) -> list[tuple[str, str, dict[str, str]]]:
    """What the simulated network does on its own after an answer, as a carrier would: a Leave
    takes the caller out of the queue (and asks what next); a Record records a short message
    from the caller (and reports it)."""
    follow: list[tuple[str, str, dict[str, str]]] = []
    for command in heard:
        if command.get("command") == "leave":
            follow.append(
                ("left_queue", "queue-left", {"call_id": call_id, "to": to, "result": "leave"})
            )
        elif command.get("command") == "record":
            recording = f"SIMREC{uuid4().hex}"
            fields = {
                "call_id": call_id,
                "to": to,
                "recording_id": recording,
                "url": f"https://simulator.invalid/recordings/{recording}.wav",
                "duration": "8",
            }
            follow.append(("recorded", "recording", fields))
    for _, _, fields in follow:
        fields["event_id"] = uuid4().hex
    return follow
