"""Business rules of the carrier gateway: numbers and accounts, sending SMS exactly once,
opt-outs, taking in carrier events once, and the usage facts billing counts."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID

import phonenumbers
import structlog
from sqlmodel.ext.asyncio.session import AsyncSession

from depotline import crypto, outbox
from depotline.auth import Principal
from depotline.db import utcnow
from depotline.errors import Conflict, InvalidInput
from telephony_gateway import events as ev
from telephony_gateway.commands import (
    Command,
    Monitor,
    MonitorMode,
    SendSms,
    Unsupported,
)
from telephony_gateway.models import (
    CarrierAccount,
    PhoneNumber,
    ProviderName,
    SmsDirection,
    SmsMessage,
    UsageKind,
)
from telephony_gateway.providers.base import CarrierRefused, OutcomeUnknown, SmsProvider, SmsReceipt
from telephony_gateway.repository import GatewayRepository
from telephony_gateway.sms_encoding import shape

if TYPE_CHECKING:
    from telephony_gateway.providers.registry import Providers

log = structlog.get_logger(__name__)

SMS_REQUESTED = "sms.requested"
SMS_RECEIVED = "sms.received"
CARRIER_EVENT = "carrier.event"
MAX_SMS_ATTEMPTS = 5
OPT_OUT_KEYWORDS = frozenset({"STOP", "UNSUBSCRIBE", "退订", "退訂", "取消"})
CREDENTIALS = "carrier credentials"
#: How far along a message is; a report never moves it backwards (a late 'sent' after
#: 'delivered' changes nothing), and final states never change.
PROGRESS = {
    "pending": 0,
    "sending": 0,
    "queued": 1,
    "sent": 2,
    "delivered": 3,
    "undelivered": 3,
    "failed": 3,
}
FINAL = frozenset({"delivered", "undelivered", "failed", "opted_out", "received"})


def e164(raw: str, region: str = "CN", *, field: str = "to") -> str:
    """A phone number in E.164, or a 400 naming the field."""
    try:
        parsed = phonenumbers.parse(raw.strip(), region)
    except phonenumbers.NumberParseException:
        raise InvalidInput(f"'{raw}' is not a phone number", field=field) from None
    if not phonenumbers.is_possible_number(parsed):
        raise InvalidInput(f"'{raw}' is not a possible phone number", field=field)
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def backoff(attempt: int) -> timedelta:
    """2, 4, 8, 16 ... seconds, at most five minutes."""
    return timedelta(seconds=min(300, 2**attempt))


#: A delivery report can overtake the worker recording the carrier's answer (Kannel reports
#: within milliseconds of taking a message; Twilio may answer a send slowly): such a report is
#: applied later, first after EARLY_REPORT_DELAY, then twice as long each time, at most
#: EARLY_REPORT_ATTEMPTS times (5 + 10 + 20 + 40 + 80 s) before it is dropped, logged.
EARLY_REPORT_DELAY = timedelta(seconds=5)
EARLY_REPORT_ATTEMPTS = 5


async def before_its_message(session: AsyncSession, event: ev.SmsStatus) -> bool:
    """A status report on a message not yet known by the carrier's id: the worker that handed
    it over has not recorded the carrier's answer yet (or it is not ours)."""
    repo = GatewayRepository(session)
    return await repo.sms_by_provider_id(event.provider, event.message_id) is None


def defer_report(session: AsyncSession, event: ev.SmsStatus, attempt: int) -> bool:
    """Hand a report on a message not recorded yet to the worker, to be applied later (its
    event id is not taken in: taken in now, it would find no message and be lost for good).
    False, and logged, once it has been tried EARLY_REPORT_ATTEMPTS times: then it is dropped."""
    where = {"provider": event.provider, "provider_event_id": event.provider_event_id}
    if attempt > EARLY_REPORT_ATTEMPTS:
        log.warning("status report dropped: its message was never recorded", **where)
        return False
    delay = EARLY_REPORT_DELAY * 2 ** (attempt - 1)
    outbox.publish(
        session, CARRIER_EVENT, {**event_payload(event), "attempt": attempt}, delay=delay
    )
    log.info(
        "status report before its message is recorded: applied later", attempt=attempt, **where
    )
    return True


# -- accounts and numbers -----------------------------------------------------------------------
async def create_account(
    session: AsyncSession,
    actor: Principal,
    *,
    provider: str,
    label: str,
    settings: Mapping[str, Any],
    credentials: Mapping[str, str],
    sender_id: str | None,
    sms_per_second: float,
    secret: bytes,
) -> CarrierAccount:
    try:
        name = ProviderName(provider)
    except ValueError:
        raise InvalidInput("Use simulator, twilio or kannel", field="provider") from None
    required = {ProviderName.TWILIO: ("auth_token",), ProviderName.KANNEL: ("password",)}.get(
        name, ()
    )
    missing = [key for key in required if not credentials.get(key)]
    if missing:
        raise InvalidInput(f"{name.value} needs {', '.join(missing)}", field="credentials")
    if not 0 < sms_per_second <= 1000:
        raise InvalidInput("Between 0 and 1000 messages a second", field="sms_per_second")
    account = CarrierAccount(
        provider=name,
        label=label.strip() or name.value,
        settings=dict(settings),
        credentials_encrypted=crypto.encrypt(secret, CREDENTIALS, json.dumps(dict(credentials))),
        sender_id=(sender_id or "").strip() or None,
        sms_per_second=sms_per_second,
    )
    GatewayRepository(session).add(account)
    return account


def account_credentials(account: CarrierAccount, secret: bytes) -> dict[str, str]:
    if not account.credentials_encrypted:
        return {}
    loaded: dict[str, str] = json.loads(
        crypto.decrypt(secret, CREDENTIALS, account.credentials_encrypted)
    )
    return loaded


async def add_number(
    session: AsyncSession,
    actor: Principal,
    *,
    number: str,
    account_id: UUID,
    label: str = "",
    voice: bool = True,
    sms: bool = True,
) -> PhoneNumber:
    repo = GatewayRepository(session)
    normalised = e164(number, field="number")
    if await repo.get_account(account_id) is None:
        raise InvalidInput("No such carrier account", field="account_id")
    if await repo.number_by_e164(normalised) is not None:
        raise Conflict(f"{normalised} is already in use", field="number")
    phone = PhoneNumber(e164=normalised, account_id=account_id, label=label, voice=voice, sms=sms)
    repo.add(phone)
    await repo.flush()
    return phone


# -- sending SMS --------------------------------------------------------------------------------
async def send_sms(
    session: AsyncSession,
    *,
    to: str,
    body: str,
    message_id: str,
    from_number: str | None = None,
) -> SmsMessage:
    """Queue an SMS. The same `message_id` never makes a second SMS: asking again returns the
    first one. An opted-out recipient is recorded and not sent to. A refusal (DomainError)
    comes before anything is written: callers need no savepoint around it."""
    repo = GatewayRepository(session)
    if not message_id.strip():
        raise InvalidInput("A message id is required", field="message_id")
    if not body.strip():
        raise InvalidInput("The message is empty", field="body")
    existing = await repo.sms_by_message_id(message_id)
    if existing is not None:
        return existing
    recipient = e164(to)
    found = await repo.first_sms_number() if from_number is None else None
    number, account = found if found else (None, None)
    sender = from_number or (number.e164 if number else None)
    if account is None or sender is None:
        raise Conflict("This tenant has no SMS number yet: add one under Carriers", field="from")
    sender = account.sender_id or sender
    form = shape(body)
    opted_out = await repo.opted_out(recipient)
    sms = SmsMessage(
        message_id=message_id,
        direction=SmsDirection.OUTBOUND,
        account_id=account.id,
        provider=account.provider,
        from_number=sender,
        to_number=recipient,
        body=body,
        encoding=form.encoding,
        segments=form.segments,
        state="opted_out" if opted_out else "pending",
    )
    repo.add(sms)
    await repo.flush()
    if not opted_out:
        # `to` and the start of `body` are for followers of the topic (the customer timeline).
        outbox.publish(
            session,
            SMS_REQUESTED,
            {"sms_id": str(sms.id), "to": recipient, "body": body[:160]},
            priority=outbox.SOON,
        )
    return sms


@dataclass(frozen=True)
class SendOutcome:
    receipt: SmsReceipt | None = None
    refused: CarrierRefused | None = None
    unknown: OutcomeUnknown | None = None


async def claim_for_sending(session: AsyncSession, sms_id: UUID) -> SmsMessage | None:
    """Mark a pending SMS 'sending'. The caller commits this BEFORE calling the carrier: a
    worker that dies mid-call leaves 'sending', and nothing sends it again (at most one SMS
    per message id)."""
    return await GatewayRepository(session).claim_pending_sms(sms_id, utcnow())


async def hand_to_carrier(sms: SmsMessage, provider: SmsProvider, status_url: str) -> SendOutcome:
    command = SendSms(sms.message_id, sms.from_number, sms.to_number, sms.body)
    try:
        return SendOutcome(receipt=await provider.send_sms(command, status_url))
    except CarrierRefused as refused:
        return SendOutcome(refused=refused)
    except OutcomeUnknown as unknown:
        return SendOutcome(unknown=unknown)


async def record_outcome(
    session: AsyncSession, sms_id: UUID, outcome: SendOutcome
) -> SmsMessage | None:
    """What the carrier said. A refusal (nothing was sent) is retried with backoff while it is
    retryable; an unknown outcome never is."""
    repo = GatewayRepository(session)
    sms = await repo.get_sms(sms_id, lock=True)
    if sms is None or sms.state != "sending":
        return sms
    sms.updated_at = utcnow()  # with the rest of the change: one UPDATE
    if outcome.receipt is not None:
        receipt = outcome.receipt
        sms.state, sms.provider_message_id, sms.error = (
            receipt.state.value,
            receipt.provider_message_id,
            None,
        )
        await repo.record_usage(
            sms.tenant_id, UsageKind.SMS_SEGMENTS_OUTBOUND, sms.segments, f"sms:{sms.id}"
        )
        for delay, report in receipt.reports:
            outbox.publish(
                session, CARRIER_EVENT, event_payload(report), delay=timedelta(seconds=delay)
            )
    elif outcome.refused is not None:
        refused = outcome.refused
        sms.error, sms.error_code = str(refused), refused.error_code
        if refused.retryable and sms.attempts < MAX_SMS_ATTEMPTS:
            wait = backoff(sms.attempts)
            sms.state, sms.next_attempt_at = "pending", utcnow() + wait
            outbox.publish(
                session, SMS_REQUESTED, {"sms_id": str(sms.id)}, delay=wait, priority=outbox.SOON
            )
        else:
            sms.state = "failed"
    else:
        sms.state, sms.error = "failed", f"outcome unknown, not resent: {outcome.unknown}"
    repo.add(sms)
    log.info("sms handed to carrier", sms_id=str(sms.id), state=sms.state, attempts=sms.attempts)
    return sms


# -- carrier events in --------------------------------------------------------------------------
async def first_sighting(session: AsyncSession, event: ev.CarrierEvent) -> bool:
    return await GatewayRepository(session).first_sighting(
        event.provider, event.provider_event_id, type(event).__name__
    )


async def account_for_number(session: AsyncSession, number: str) -> CarrierAccount | None:
    """The carrier account serving a dialled number, in one transaction: the number lookup's
    narrow scope, then (set by the same statement) the number's tenant scope for its account."""
    try:
        normalised = e164(number)
    except InvalidInput:
        return None
    repo = GatewayRepository(session)
    phone = await repo.number_moving_into_its_tenant(normalised)
    return await repo.get_account(phone.account_id) if phone is not None else None


async def tenant_of_number(session: AsyncSession, number: str) -> PhoneNumber | None:
    try:
        normalised = e164(number)
    except InvalidInput:
        return None
    return await GatewayRepository(session).number_by_e164(normalised)


async def apply_sms_status(session: AsyncSession, event: ev.SmsStatus) -> SmsMessage | None:
    """Move a message's state forward (a late 'sent' never undoes 'delivered')."""
    sms = await GatewayRepository(session).sms_by_provider_id(event.provider, event.message_id)
    if sms is None:
        return None
    if sms.state in FINAL or PROGRESS[event.state.value] < PROGRESS.get(sms.state, 0):
        return sms
    sms.state, sms.updated_at = event.state.value, utcnow()
    if event.error_code:
        sms.error_code = event.error_code
    session.add(sms)
    return sms


async def receive_sms(
    session: AsyncSession, tenant_id: UUID, account_id: UUID, event: ev.SmsReceived
) -> SmsMessage:
    """Store an inbound SMS; an opt-out keyword is honoured from this moment on."""
    repo = GatewayRepository(session)
    sender = e164(event.from_number, field="from")
    form = shape(event.body)
    sms = SmsMessage(
        message_id=f"in:{event.provider}:{event.message_id}",
        direction=SmsDirection.INBOUND,
        account_id=account_id,
        provider=ProviderName(event.provider),
        from_number=sender,
        to_number=e164(event.to_number, field="to"),
        body=event.body,
        encoding=form.encoding,
        segments=form.segments,
        state="received",
        provider_message_id=event.message_id,
    )
    repo.add(sms)
    keyword = event.body.strip().upper()
    if keyword in OPT_OUT_KEYWORDS:
        await repo.record_opt_out(tenant_id, sender, keyword)
        log.info("sms opt-out", tenant_id=str(tenant_id), keyword=keyword)
    await repo.flush()
    await repo.record_usage(
        tenant_id, UsageKind.SMS_SEGMENTS_INBOUND, max(1, form.segments), f"sms:{sms.id}"
    )
    outbox.publish(
        session,
        SMS_RECEIVED,
        {"sms_id": str(sms.id), "from": sender, "body": event.body},
        priority=outbox.URGENT,  # a depot's reply, a customer's STOP
    )
    return sms


async def record_call_usage(
    session: AsyncSession, tenant_id: UUID, event: ev.CallEnded, direction: ev.Direction
) -> None:
    kind = (
        UsageKind.CALL_SECONDS_INBOUND
        if direction == ev.Direction.INBOUND
        else UsageKind.CALL_SECONDS_OUTBOUND
    )
    await GatewayRepository(session).record_usage(
        tenant_id, kind, event.duration_seconds, f"call:{event.provider}:{event.call_id}"
    )


CALL_EVENT = "call.event"


async def apply_event(
    session: AsyncSession, tenant_id: UUID, account_id: UUID | None, event: ev.CarrierEvent
) -> None:
    """Take in one (already de-duplicated) carrier event for a tenant. Runs in its scope."""
    if isinstance(event, ev.SmsStatus):
        await apply_sms_status(session, event)
    elif isinstance(event, ev.SmsReceived):
        assert account_id is not None
        await receive_sms(session, tenant_id, account_id, event)
    elif not isinstance(event, ANSWERED_ONLY):
        if isinstance(event, ev.CallEnded):
            await record_call_usage(session, tenant_id, event, event.direction)
        # Calls belong to the contact center; it (and the customer timeline) subscribes to these.
        outbox.publish(session, CALL_EVENT, event_payload(event), priority=outbox.URGENT)


#: Events that only ask the contact center what to say, answered in the webhook itself: nobody
#: follows them through the outbox (the IVR's keys, a waiting caller's carrier asking every
#: few seconds), so none is written there. Calls starting and ending, recordings: followed.
ANSWERED_ONLY = (ev.DigitsGathered, ev.QueueWait, ev.QueueLeft)


# -- commands on a live call ----------------------------------------------------------------------
async def monitor_call(
    session: AsyncSession,
    providers: Providers,
    *,
    number: str,
    call_id: str,
    supervisor_endpoint: str,
    mode: MonitorMode,
) -> str:
    """Bring a supervisor's leg onto the live call `call_id` (the carrier's id) that came in on
    `number`: listen (muted), whisper (only the agent hears) or barge (everyone hears); asked
    again, the leg changes mode. Returns the leg's id at the carrier.

    A provider carries this out with a `monitor` method (the simulator does). Twilio has none:
    its Monitor TwiML joins the conference named by the call, and Depotline does not bridge
    agents through conferences yet, so a leg would join an empty room; it raises Unsupported."""
    phone = await tenant_of_number(session, number)
    account = await GatewayRepository(session).get_account(phone.account_id) if phone else None
    if account is None:
        raise Conflict("No carrier account serves this call's number", field="number")
    command = Monitor(call_id, supervisor_endpoint, mode)
    carrier: Any = providers.for_account(account)
    monitor = getattr(carrier, "monitor", None)
    if monitor is None:
        raise Unsupported(carrier.name, command)
    leg: str = await monitor(command)
    return leg


async def control_call(
    session: AsyncSession, providers: Providers, *, number: str, call_id: str, command: Command
) -> None:
    """Have the carrier carry out `command` (hold, back to the agent, a queue, a conference, hang
    up) on the call in progress `call_id` (the carrier's id) that came in on `number`. Now, in
    the caller's transaction: if the carrier refuses, the change that asked for it is undone.
    A provider does this with a `control` method (the simulator does); without one it raises
    Unsupported."""
    phone = await tenant_of_number(session, number)
    account = await GatewayRepository(session).get_account(phone.account_id) if phone else None
    if account is None:
        raise Conflict("No carrier account serves this call's number", field="number")
    carrier: Any = providers.for_account(account)
    control = getattr(carrier, "control", None)
    if control is None:
        raise Unsupported(carrier.name, command)
    await control(call_id, command)


# -- events through the outbox --------------------------------------------------------------------
EVENT_TYPES: dict[str, type[ev.CarrierEvent]] = {
    cls.__name__: cls
    for cls in (
        ev.CallStarted,
        ev.DigitsGathered,
        ev.SpeechReady,
        ev.RecordingReady,
        ev.CallAnswered,
        ev.CallEnded,
        ev.QueueWait,
        ev.QueueLeft,
        ev.LegBridged,
        ev.SmsReceived,
        ev.SmsStatus,
    )
}


def event_payload(event: ev.CarrierEvent) -> dict[str, Any]:
    data = asdict(event)
    data["occurred_at"] = event.occurred_at.isoformat()
    return {"type": type(event).__name__, "event": data}


def event_from_payload(payload: Mapping[str, Any]) -> ev.CarrierEvent:
    cls = EVENT_TYPES[payload["type"]]
    data = dict(payload["event"])
    data["occurred_at"] = datetime.fromisoformat(data["occurred_at"])
    if "state" in data:
        data["state"] = ev.SmsState(data["state"])
    if "direction" in data:
        data["direction"] = ev.Direction(data["direction"])
    return cls(**data)


async def usage_summary(session: AsyncSession) -> dict[str, int]:
    totals: dict[str, int] = {}
    for record in await GatewayRepository(session).usage():
        totals[record.kind] = totals.get(record.kind, 0) + record.quantity
    return totals


async def sms_log(session: AsyncSession, phone: str | None = None) -> Sequence[SmsMessage]:
    return await GatewayRepository(session).sms_log(phone=phone)
