"""Pickup notifications: the SMS a depot gets with each offer (and a reminder when it stays
silent), what a depot answers by SMS, and the SMS a customer gets at each step, from the
tenant's own texts or the defaults, in the customer's language. No HTTP here.

Every SMS leaves through `telephony_gateway.service.send_sms` with a message id derived from
what caused it (the order and the outbox event, the offer, the inbound SMS), so handling an
event again never sends a second SMS. An opted-out number is recorded and not sent to.

Depots answer with a code and the ref (the order's sequence number, "123", or the whole order
number) that their SMS quoted; case, full-width characters and extra spaces do not matter:

    Y 123            accept              N 123 reason     reject (the order goes to another depot)
    D 123 name       driver assigned     P 123            picked up
    F 123 reason     attempt failed      OK 123           delivered

Anything else from a depot's number gets an SMS explaining the codes; SMS from other numbers
are not pickup's business.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import structlog
from sqlmodel.ext.asyncio.session import AsyncSession

from depotline import outbox
from depotline.db import require_tenant, utcnow
from depotline.errors import Conflict, DomainError, InvalidInput, NotFound
from pickup import service
from pickup.models import Depot, Order, OrderKind, OrderStatus
from pickup.notification_models import NotificationSettings, SmsTemplate
from pickup.notification_repository import NotificationRepository
from pickup.repository import PickupRepository
from pickup.schemas import LANGUAGES
from pickup.service import Actor
from telephony_gateway import service as gateway
from telephony_gateway.models import SmsMessage
from telephony_gateway.sms_encoding import shape

log = structlog.get_logger(__name__)

#: A delayed event: the depot's time to answer an offer is up (stage "remind", then "escalate").
DEPOT_ANSWER_DUE = "pickup.depot_answer_due"
NOTIFIER = Actor.system("notifications")
S = OrderStatus

# -- customers' SMS -------------------------------------------------------------------------------
#: The SMS a customer gets, in the order they come. "depot_assigned" goes out when the depot
#: accepts the order (an offer it may still reject is not news to the customer).
CUSTOMER_KINDS = (
    "booked",
    "depot_assigned",
    "driver_assigned",
    "picked_up",
    "attempt_failed",
    "rescheduled",
    "delivered",
    "cancelled",
)
#: The status changes that make a customer SMS, named as the status reached.
STATUS_KINDS = frozenset(
    {"driver_assigned", "picked_up", "attempt_failed", "rescheduled", "delivered", "cancelled"}
)
VARIABLES = ("number", "code", "window", "depot", "driver", "reason", "link")
MAX_BODY = 480  # UCS-2: at most 8 segments, GSM-7 at most 4
PLACEHOLDER = re.compile(r"\{(\w*)\}")

DEFAULT_TEXTS: dict[str, dict[str, str]] = {
    "booked": {
        "en": "Pickup {number} is booked for {window}. Your code: {code}. Track it: {link}",
        "zh_Hans": "您的取件预约{number}已确认，时间{window}，确认码{code}。查询：{link}",
        "zh_Hant": "您的收件預約{number}已確認，時間{window}，確認碼{code}。查詢：{link}",
    },
    "depot_assigned": {
        "en": "{depot} will handle {number} on {window}. Track it: {link}",
        "zh_Hans": "{depot}将于{window}处理您的订单{number}。查询：{link}",
        "zh_Hant": "{depot}將於{window}處理您的訂單{number}。查詢：{link}",
    },
    "driver_assigned": {
        "en": "Driver {driver} is assigned to {number} ({window}). Track it: {link}",
        "zh_Hans": "司机{driver}已接单{number}（{window}）。查询：{link}",
        "zh_Hant": "司機{driver}已接單{number}（{window}）。查詢：{link}",
    },
    "picked_up": {
        "en": "{number} has been picked up. Track it: {link}",
        "zh_Hans": "{number}已取件。查询：{link}",
        "zh_Hant": "{number}已收件。查詢：{link}",
    },
    "attempt_failed": {
        "en": "We could not complete {number}: {reason}. We will arrange a new time. {link}",
        "zh_Hans": "{number}上门未成功：{reason}。我们会与您重新预约。查询：{link}",
        "zh_Hant": "{number}上門未成功：{reason}。我們會與您重新預約。查詢：{link}",
    },
    "rescheduled": {
        "en": "{number} is rescheduled to {window}. Track it: {link}",
        "zh_Hans": "{number}已改约至{window}。查询：{link}",
        "zh_Hant": "{number}已改約至{window}。查詢：{link}",
    },
    "delivered": {
        "en": "{number} has been delivered. Thank you! {link}",
        "zh_Hans": "{number}已签收，谢谢！查询：{link}",
        "zh_Hant": "{number}已簽收，謝謝！查詢：{link}",
    },
    "cancelled": {
        "en": "{number} has been cancelled. {link}",
        "zh_Hans": "{number}已取消。查询：{link}",
        "zh_Hant": "{number}已取消。查詢：{link}",
    },
}

#: What a customer (and a depot) reads for each status; also the tracking page's words.
STATUS_WORDS: dict[str, dict[str, str]] = {
    "en": {
        S.BOOKED: "Booked",
        S.DEPOT_ASSIGNED: "With the depot",
        S.DRIVER_ASSIGNED: "Driver assigned",
        S.EN_ROUTE: "Driver on the way",
        S.PICKED_UP: "Picked up",
        S.OUT_FOR_DELIVERY: "Out for delivery",
        S.DELIVERED: "Delivered",
        S.ATTEMPT_FAILED: "Attempt failed",
        S.RESCHEDULED: "Rescheduled",
        S.FAILED: "Could not be completed",
        S.CANCEL_REQUESTED: "Cancellation requested",
        S.CANCELLED: "Cancelled",
        S.UNSERVICEABLE: "Being arranged",
        "accepted": "Confirmed by the depot",
    },
    "zh_Hans": {
        S.BOOKED: "已预约",
        S.DEPOT_ASSIGNED: "网点处理中",
        S.DRIVER_ASSIGNED: "已派司机",
        S.EN_ROUTE: "司机在途",
        S.PICKED_UP: "已取件",
        S.OUT_FOR_DELIVERY: "派送中",
        S.DELIVERED: "已签收",
        S.ATTEMPT_FAILED: "上门未成功",
        S.RESCHEDULED: "已改约",
        S.FAILED: "未能完成",
        S.CANCEL_REQUESTED: "取消中",
        S.CANCELLED: "已取消",
        S.UNSERVICEABLE: "安排中",
        "accepted": "网点已确认",
    },
    "zh_Hant": {
        S.BOOKED: "已預約",
        S.DEPOT_ASSIGNED: "網點處理中",
        S.DRIVER_ASSIGNED: "已派司機",
        S.EN_ROUTE: "司機在途",
        S.PICKED_UP: "已收件",
        S.OUT_FOR_DELIVERY: "派送中",
        S.DELIVERED: "已簽收",
        S.ATTEMPT_FAILED: "上門未成功",
        S.RESCHEDULED: "已改約",
        S.FAILED: "未能完成",
        S.CANCEL_REQUESTED: "取消中",
        S.CANCELLED: "已取消",
        S.UNSERVICEABLE: "安排中",
        "accepted": "網點已確認",
    },
}

#: Made-up values for a template's preview, per language.
SAMPLES: dict[str, dict[str, str]] = {
    "en": {"depot": "Guangzhou North", "driver": "Wang Wei", "reason": "nobody at home"},
    "zh_Hans": {"depot": "广州北站", "driver": "王伟", "reason": "无人在家"},
    "zh_Hant": {"depot": "廣州北站", "driver": "王偉", "reason": "無人在家"},
}
#: As long as a real token (secrets.token_urlsafe(24)).
SAMPLE_TOKEN = "Xq3vN8sLw2RkT5yZb7HcJd4FmPa9Ue6G"  # noqa: S105 (an example, no secret)


def language_of(value: str | None) -> str:
    return value if value in LANGUAGES else "zh_Hans"


def tracking_url(public_url: str, token: str) -> str:
    return f"{public_url.rstrip('/')}/track/{token}"


def window_text(order: Order, language: str) -> str:
    """The order's window in its own time zone, kept to GSM-7 characters in English."""
    tz = ZoneInfo(order.timezone)
    start, end = order.window_start.astimezone(tz), order.window_end.astimezone(tz)
    if language == "en":
        return f"{start.day} {start:%b} {start:%H:%M}-{end:%H:%M}"
    return f"{start.month}月{start.day}日 {start:%H:%M}-{end:%H:%M}"


def check_body(body: str) -> str:
    """A tenant's text, stripped, or InvalidInput naming `body`."""
    text = body.strip()
    if not text:
        raise InvalidInput("The text is empty", field="body")
    if len(text) > MAX_BODY:
        raise InvalidInput(f"At most {MAX_BODY} characters", field="body")
    names = PLACEHOLDER.findall(text)
    unknown = [name for name in names if name not in VARIABLES]
    if unknown:
        known = ", ".join("{" + name + "}" for name in VARIABLES)
        raise InvalidInput(f"There is no variable {{{unknown[0]}}}; use {known}", field="body")
    rest = PLACEHOLDER.sub("", text)
    if "{" in rest or "}" in rest:
        raise InvalidInput("Curly braces are for variables only, such as {number}", field="body")
    if "link" not in names:
        raise InvalidInput("Every SMS carries the tracking link: put {link} in it", field="body")
    return text


def render(body: str, values: Mapping[str, str]) -> str:
    return PLACEHOLDER.sub(lambda found: values.get(found.group(1), found.group(0)), body)


@dataclass(frozen=True)
class Preview:
    text: str
    encoding: str  # GSM-7 or UCS-2
    units: int  # characters as the network counts them
    segments: int
    per_segment: int


def preview(body: str, language: str, public_url: str) -> Preview:
    """The text as a customer would get it (with sample values) and what it costs."""
    if language not in LANGUAGES:
        raise InvalidInput(f"Language is one of: {', '.join(LANGUAGES)}", field="language")
    values = {
        **SAMPLES[language],
        "number": "SF-2026-000123",
        "code": "482913",
        "window": "26 Nov 10:00-12:00" if language == "en" else "11月26日 10:00-12:00",
        "link": tracking_url(public_url, SAMPLE_TOKEN),
    }
    text = render(check_body(body), values)
    form = shape(text)
    return Preview(text, form.encoding, form.units, form.segments, form.per_segment)


# -- templates and settings -----------------------------------------------------------------------
@dataclass(frozen=True)
class TemplateRow:
    kind: str
    language: str
    body: str
    custom: bool  # the tenant's own text, not the default


async def template_text(session: AsyncSession, tenant_id: UUID, kind: str, language: str) -> str:
    own = await NotificationRepository(session).template(tenant_id, kind, language)
    return own.body if own is not None else DEFAULT_TEXTS[kind][language]


async def templates(session: AsyncSession, language: str | None = None) -> list[TemplateRow]:
    """Every customer SMS of the tenant (in one language, or all), its own or the default."""
    tenant = require_tenant()
    own = {(t.kind, t.language): t for t in await NotificationRepository(session).templates(tenant)}
    rows = []
    for kind in CUSTOMER_KINDS:
        for lang in [language] if language else LANGUAGES:
            mine = own.get((kind, lang))
            body = mine.body if mine else DEFAULT_TEXTS[kind][lang]
            rows.append(TemplateRow(kind, lang, body, mine is not None))
    return rows


def _check_kind(kind: str, language: str) -> None:
    if kind not in CUSTOMER_KINDS:
        raise InvalidInput(f"The SMS is one of: {', '.join(CUSTOMER_KINDS)}", field="kind")
    if language not in LANGUAGES:
        raise InvalidInput(f"Language is one of: {', '.join(LANGUAGES)}", field="language")


async def save_template(
    session: AsyncSession, kind: str, language: str, body: str, by: str
) -> TemplateRow:
    """The tenant's own text for one SMS; an empty text (or the default's) means the default."""
    _check_kind(kind, language)
    tenant = require_tenant()
    repo = NotificationRepository(session)
    existing = await repo.template(tenant, kind, language)
    if not body.strip() or body.strip() == DEFAULT_TEXTS[kind][language]:
        if existing is not None:
            await repo.delete(existing)
        return TemplateRow(kind, language, DEFAULT_TEXTS[kind][language], False)
    text = check_body(body)
    row = existing or SmsTemplate(tenant_id=tenant, kind=kind, language=language, body=text)
    row.body, row.updated_by, row.updated_at = text, by, utcnow()
    repo.add(row)
    await repo.flush()
    return TemplateRow(kind, language, text, True)


async def notification_settings(
    session: AsyncSession, tenant_id: UUID | None = None
) -> NotificationSettings:
    tenant = tenant_id or require_tenant()
    found = await NotificationRepository(session).settings(tenant)
    return found if found is not None else NotificationSettings(tenant_id=tenant)


async def save_settings(session: AsyncSession, depot_answer_minutes: int) -> NotificationSettings:
    if not 1 <= depot_answer_minutes <= 1440:
        raise InvalidInput("Between 1 and 1440 minutes", field="depot_answer_minutes")
    tenant = require_tenant()
    repo = NotificationRepository(session)
    current = await repo.settings(tenant) or NotificationSettings(tenant_id=tenant)
    current.depot_answer_minutes, current.updated_at = depot_answer_minutes, utcnow()
    repo.add(current)
    await repo.flush()
    return current


# -- sending --------------------------------------------------------------------------------------
async def _send(
    session: AsyncSession,
    to: str,
    text: str,
    message_id: str,
    *,
    order: Order | None = None,
    what: str = "SMS",
) -> SmsMessage | None:
    """Queue one SMS; note it in the order's timeline. An SMS that cannot go (a number the
    carrier cannot take, no SMS number at all) never fails the whole event."""
    asked = utcnow()
    try:
        # No savepoint needed: send_sms refuses (DomainError) before it writes anything.
        sms = await gateway.send_sms(session, to=to, body=text, message_id=message_id)
    except DomainError as refused:
        log.warning("pickup sms not sent", message_id=message_id, reason=refused.detail)
        # A tenant without an SMS number sends none at all: not news on every order.
        if order is not None and refused.field != "from":
            service.note_on(
                session, order, NOTIFIER, f"{what} not sent: {refused.detail}", sms=message_id
            )
        return None
    if order is not None and sms.created_at >= asked:  # not an SMS asked for before
        outcome = "not sent: the number opted out" if sms.state == "opted_out" else "queued"
        service.note_on(session, order, NOTIFIER, f"{what} {outcome}", sms=message_id)
    return sms


async def tell_customer(
    session: AsyncSession,
    order_id: UUID,
    kind: str,
    message_id: str,
    public_url: str,
    *,
    reason: str = "",
) -> SmsMessage | None:
    """The customer's SMS of this kind, in their language, with the tracking link; None when
    the order asked for no SMS or has no number."""
    order = await service.get_order(session, order_id)
    if not order.notify_sms or not order.contact_phone:
        return None
    language = language_of(order.language)
    body = await template_text(session, order.tenant_id, kind, language)
    depot = None
    if order.depot_id and "{depot}" in body:  # most texts do not name it: no read
        depot = await PickupRepository(session).get_depot(order.depot_id)
    values = {
        "number": order.number,
        "code": order.confirmation_code,
        "window": window_text(order, language),
        "depot": depot.name if depot else "",
        "driver": order.driver_name or "",
        "reason": reason,
        "link": tracking_url(public_url, order.tracking_token),
    }
    return await _send(
        session,
        order.contact_phone,
        render(body, values),
        message_id,
        order=order,
        what=f"SMS to the customer ({kind.replace('_', ' ')})",
    )


async def tell_customer_depot_confirmed(
    session: AsyncSession, order_id: UUID, depot_id: UUID, message_id: str, public_url: str
) -> SmsMessage | None:
    """The depot said yes: the customer hears who will come, unless the order has moved on
    already (a depot that reports a driver or a failed visit says yes on the way, and the
    customer gets that newer news instead)."""
    order = await service.get_order(session, order_id)
    if order.status != S.DEPOT_ASSIGNED or order.depot_id != depot_id:
        return None
    return await tell_customer(session, order_id, "depot_assigned", message_id, public_url)


async def tell_window_moved(
    session: AsyncSession, payload: Mapping[str, Any], public_url: str
) -> None:
    """An order's window moved before its visit: the customer gets the "rescheduled" SMS and the
    depot holding the order (if any) a short note, each once per move."""
    order_id, change = UUID(payload["order_id"]), payload["change_id"]
    await tell_customer(
        session,
        order_id,
        "rescheduled",
        f"pickup:{order_id}:moved:{change}",
        public_url,
        reason=payload.get("reason") or "",
    )
    if not payload.get("depot_id"):
        return
    order, depot = await _order_and_depot(session, order_id, UUID(payload["depot_id"]))
    if depot is None or order.depot_id != depot.id:
        return  # the order went to another depot meanwhile; that depot has the new window
    language = language_of(depot.language)
    text = _depot_text(
        depot.language,
        "moved",
        number=order.number,
        ref=order.seq,
        window=window_text(order, language),
    )
    for contact in depot.sms_contacts:
        message_id = f"pickup:{order.id}:moved:{change}:{contact}"
        await _send(session, contact, text, message_id, order=order, what=f"SMS to {depot.name}")


# -- depots' SMS ----------------------------------------------------------------------------------
DEPOT_TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "offer": "New {kind} {number} (ref {ref}): {window}, {address}. {parcels}.{cash} "
        "Reply Y {ref} to accept, N {ref} reason to reject.",
        "reminder": "Reminder: {number} (ref {ref}) still waits for your answer. "
        "Reply Y {ref} to accept, N {ref} reason to reject.",
        "accepted": "{number} is yours. Report progress: D {ref} name = driver assigned, "
        "P {ref} = picked up, F {ref} reason = failed, OK {ref} = delivered.",
        "rejected": "{number} rejected: it goes to another depot.",
        "moved": "{number} (ref {ref}) moved to {window}.",
        "status": "{number}: {status}, noted.",
        "not_found": "No order with ref {ref} is with your depot. Check the ref in our SMS.",
        "cannot": "{number} is now: {status}. This reply does not fit.",
        "reason": "Say why, e.g. F {ref} nobody home",
        "help": "Sorry, we did not understand. Reply Y 123 to accept, N 123 reason to reject, "
        "D 123 name = driver assigned, P 123 = picked up, F 123 reason = failed, "
        "OK 123 = delivered (123 = the ref in our SMS).",
        "pickup": "pickup",
        "delivery": "delivery",
        "pickup_and_delivery": "pickup and delivery",
        "parcels": "{count} parcel(s), {weight} kg",
        "cash": " Collect {amount} {currency}.",
    },
    "zh_Hans": {
        "offer": "新{kind}单{number}（编号{ref}）：{window}，{address}。{parcels}。{cash}"
        "回复 Y {ref} 接单，N {ref} 原因 拒单。",
        "reminder": "提醒：{number}（编号{ref}）仍待您答复。回复 Y {ref} 接单，N {ref} 原因 拒单。",
        "accepted": "已接单{number}。进度请回复：D {ref} 司机姓名＝已派司机，P {ref}＝已取件，"
        "F {ref} 原因＝未成功，OK {ref}＝已签收。",
        "rejected": "已拒单{number}，我们将转给其他网点。",
        "moved": "{number}（编号{ref}）改约至{window}。",
        "status": "{number}：{status}，已记录。",
        "not_found": "您的网点没有编号为{ref}的订单，请核对短信中的编号。",
        "cannot": "{number}目前：{status}，无法按此回复处理。",
        "reason": "请说明原因，例如：F {ref} 无人在家",
        "help": "未能识别您的回复。请回复：Y 123 接单，N 123 原因 拒单，D 123 司机姓名，"
        "P 123 已取件，F 123 原因 未成功，OK 123 已签收（123为短信中的编号）。",
        "pickup": "取件",
        "delivery": "派送",
        "pickup_and_delivery": "取派",
        "parcels": "{count}件，{weight}公斤",
        "cash": "代收{amount}{currency}。",
    },
    "zh_Hant": {
        "offer": "新{kind}單{number}（編號{ref}）：{window}，{address}。{parcels}。{cash}"
        "回覆 Y {ref} 接單，N {ref} 原因 拒單。",
        "reminder": "提醒：{number}（編號{ref}）仍待您答覆。回覆 Y {ref} 接單，N {ref} 原因 拒單。",
        "accepted": "已接單{number}。進度請回覆：D {ref} 司機姓名＝已派司機，P {ref}＝已收件，"
        "F {ref} 原因＝未成功，OK {ref}＝已簽收。",
        "rejected": "已拒單{number}，我們將轉給其他網點。",
        "moved": "{number}（編號{ref}）改約至{window}。",
        "status": "{number}：{status}，已記錄。",
        "not_found": "您的網點沒有編號為{ref}的訂單，請核對短訊中的編號。",
        "cannot": "{number}目前：{status}，無法按此回覆處理。",
        "reason": "請說明原因，例如：F {ref} 無人在家",
        "help": "未能識別您的回覆。請回覆：Y 123 接單，N 123 原因 拒單，D 123 司機姓名，"
        "P 123 已收件，F 123 原因 未成功，OK 123 已簽收（123為短訊中的編號）。",
        "pickup": "收件",
        "delivery": "派送",
        "pickup_and_delivery": "收派",
        "parcels": "{count}件，{weight}公斤",
        "cash": "代收{amount}{currency}。",
    },
}


def _depot_text(language: str, key: str, **values: Any) -> str:
    return DEPOT_TEXTS[language_of(language)][key].format(**values)


def offer_text(order: Order, depot: Depot, currency: str) -> str:
    """The depot's SMS: order number, window, address, parcels, and the reply codes."""
    language = language_of(depot.language)
    words = DEPOT_TEXTS[language]
    address = " ".join(part for part in (order.service_address, order.service_postal_code) if part)
    cash = ""
    if order.cash_amount and order.cash_amount > Decimal(0):
        cash = words["cash"].format(amount=f"{order.cash_amount:.2f}", currency=currency)
    parcels = words["parcels"].format(count=order.parcel_count, weight=f"{order.weight_kg:g}")
    return _depot_text(
        language,
        "offer",
        kind=words[OrderKind(order.kind).value],
        number=order.number,
        ref=order.seq,
        window=window_text(order, language),
        address=address,
        parcels=parcels,
        cash=cash,
    )


async def _order_and_depot(
    session: AsyncSession, order_id: UUID, depot_id: UUID
) -> tuple[Order, Depot | None]:
    order = await service.get_order(session, order_id)
    return order, await PickupRepository(session).get_depot(depot_id)


async def offer_to_depot(
    session: AsyncSession, order_id: UUID, depot_id: UUID, assignment_id: UUID
) -> list[SmsMessage]:
    """`offer` for a `depot_assigned` event. An offer answered before this runs (on the depot
    page) needs no SMS."""
    assignment = await service.waiting_assignment(session, assignment_id)
    if assignment is None:
        return []
    order, depot = await _order_and_depot(session, order_id, depot_id)
    if depot is None:
        return []
    return await offer(session, service.Offer(order, depot, assignment))


async def offer(session: AsyncSession, offered: service.Offer) -> list[SmsMessage]:
    """SMS every contact of the depot the order was offered to, and set the clock for its
    answer."""
    order, depot, assignment_id = offered.order, offered.depot, offered.assignment.id
    rules = await service.booking_rules(session, order.tenant_id)
    text = offer_text(order, depot, rules.currency)
    sent = []
    for contact in depot.sms_contacts:
        message_id = f"pickup:{order.id}:offer:{assignment_id}:{contact}"
        sms = await _send(
            session, contact, text, message_id, order=order, what=f"SMS to {depot.name}"
        )
        if sms is not None:
            sent.append(sms)
    if not depot.sms_contacts:
        service.note_on(session, order, NOTIFIER, f"{depot.name} has no SMS contact")
    await _answer_due(session, order, assignment_id, depot.id, "remind")
    return sent


async def _answer_due(
    session: AsyncSession, order: Order, assignment_id: UUID, depot_id: UUID, stage: str
) -> None:
    minutes = (await notification_settings(session, order.tenant_id)).depot_answer_minutes
    outbox.publish(
        session,
        DEPOT_ANSWER_DUE,
        {
            "order_id": str(order.id),
            "assignment_id": str(assignment_id),
            "depot_id": str(depot_id),
            "stage": stage,
            "minutes": minutes,
        },
        tenant_id=order.tenant_id,
        delay=timedelta(minutes=minutes),
    )


async def depot_answer_due(session: AsyncSession, payload: Mapping[str, Any]) -> None:
    """The depot's time is up: remind it once; when it stays silent as long again, the order
    goes on the exceptions list. An offer answered meanwhile ends it."""
    assignment_id, depot_id = UUID(payload["assignment_id"]), UUID(payload["depot_id"])
    if await service.waiting_assignment(session, assignment_id) is None:
        return
    order, depot = await _order_and_depot(session, UUID(payload["order_id"]), depot_id)
    name = depot.name if depot else "The depot"
    if payload["stage"] == "remind":
        if depot is not None:
            text = _depot_text(depot.language, "reminder", number=order.number, ref=order.seq)
            for contact in depot.sms_contacts:
                message_id = f"pickup:{order.id}:reminder:{assignment_id}:{contact}"
                await _send(
                    session, contact, text, message_id, order=order, what=f"Reminder to {name}"
                )
        await _answer_due(session, order, assignment_id, depot_id, "escalate")
        return
    minutes = int(payload.get("minutes") or 0)
    await service.depot_silent(
        session,
        assignment_id,
        Actor.system("no answer from the depot"),
        f"{name} did not answer the offer, not even {minutes} minutes after a reminder",
    )


# -- depots answer by SMS -------------------------------------------------------------------------
@dataclass(frozen=True)
class DepotReply:
    code: str  # Y N D P F OK
    ref: int
    text: str  # the reason, or the driver's name


REPLY = re.compile(
    r"^(OK|YES|NO|Y|N|D|P|F)\s*[#:,.]?\s*"
    # The ref ends at a space, a punctuation mark, the end, or Chinese text ("N 123车坏了").
    r"(?:[A-Z]{1,6}-)?(?:\d{4}-)?(\d{1,9})(?=$|[\s,:;.]|[^\x00-\x7F])\s*[,:;.]?\s*(.*)$",
    re.IGNORECASE | re.DOTALL,
)
SYNONYMS = {"YES": "Y", "NO": "N"}


def parse_reply(body: str) -> DepotReply | None:
    """A depot's answer, however typed (full-width letters and digits, any case, extra
    spaces); None when it is not one."""
    text = " ".join(unicodedata.normalize("NFKC", body).split())
    found = REPLY.match(text)
    if found is None:
        return None
    code = found.group(1).upper()
    return DepotReply(SYNONYMS.get(code, code), int(found.group(2)), found.group(3).strip())


#: Codes that report a status, and the status.
REPORTS = {"D": S.DRIVER_ASSIGNED, "P": S.PICKED_UP, "F": S.ATTEMPT_FAILED, "OK": S.DELIVERED}


async def _apply(session: AsyncSession, order: Order, reply: DepotReply, by: Actor) -> None:
    if reply.code == "Y":
        await service.depot_accepts(session, order.id, by)
    elif reply.code == "N":
        await service.depot_rejects(session, order.id, by, reply.text)
    else:
        target = REPORTS[reply.code]
        if target == S.DELIVERED and order.status != S.OUT_FOR_DELIVERY:
            # "Delivered" says it went out for delivery first; the lifecycle wants both.
            allowed = service.allowed_next(order)
            if S.DELIVERED not in allowed and S.OUT_FOR_DELIVERY in allowed:
                await service.record_status(session, order.id, S.OUT_FOR_DELIVERY, by)
        driver = (reply.text or None) if target == S.DRIVER_ASSIGNED else None
        reason = reply.text if target == S.ATTEMPT_FAILED else ""
        await service.record_status(session, order.id, target, by, reason, driver_name=driver)


async def answer_depot_sms(
    session: AsyncSession, sms_id: str, sender: str, body: str
) -> SmsMessage | None:
    """Carry out an SMS from a depot's contact and answer it by SMS (what was noted, or why
    not, or the codes). None when the sender is no depot's contact."""
    depots = await PickupRepository(session).depots_with_contact(sender)
    if not depots:
        return None
    language = depots[0].language
    reply = parse_reply(body)
    if reply is None:
        answer = _depot_text(language, "help")
    else:
        answer = await _carry_out(session, sender, reply, language)
    return await _send(session, sender, answer, f"pickup:reply:{sms_id}")


async def _carry_out(session: AsyncSession, sender: str, reply: DepotReply, language: str) -> str:
    try:
        order, depot = await service.order_for_depot_reply(session, sender, reply.ref)
    except NotFound:
        return _depot_text(language, "not_found", ref=reply.ref)
    language = depot.language
    words = STATUS_WORDS[language_of(language)]
    try:
        # A refused reply leaves nothing half-done behind.
        async with session.begin_nested():
            await _apply(session, order, reply, Actor.depot_sms(depot, sender))
    except InvalidInput as refused:
        if refused.field == "reason":
            return _depot_text(language, "reason", ref=reply.ref)
        return _depot_text(language, "help")
    except (Conflict, NotFound):
        await session.refresh(order)
        status = words.get(order.status, order.status)
        return _depot_text(language, "cannot", number=order.number, status=status)
    if reply.code == "Y":
        return _depot_text(language, "accepted", number=order.number, ref=reply.ref)
    if reply.code == "N":
        return _depot_text(language, "rejected", number=order.number)
    await session.refresh(order)
    status = words[REPORTS[reply.code]]
    if reply.code == "D" and order.driver_name:
        status = f"{status} ({order.driver_name})"
    return _depot_text(language, "status", number=order.number, status=status)
