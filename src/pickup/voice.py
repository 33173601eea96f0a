"""Self-service by phone: "the status of my order", keyed in as the digits of its number.

Registered as the IVR's `order_status` lookup by depotline.app. A caller keys the number's
digits: year and sequence (SF-2026-000123 -> 2026000123) or the sequence alone (000123 or 123
with leading zeros up to six digits); the answer is spoken in the caller's language.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from sqlmodel.ext.asyncio.session import AsyncSession

from pickup.models import Order, OrderStatus
from pickup.repository import PickupRepository

S = OrderStatus
MANDARIN, CANTONESE = "cmn-CN", "yue-HK"

#: What each status sounds like: (Mandarin, Cantonese, English).
PHRASES: dict[OrderStatus, tuple[str, str, str]] = {
    S.BOOKED: (
        "已预约，正在安排网点",
        "已經預約，正在安排網點",
        "is booked and being assigned to a depot",
    ),
    S.DEPOT_ASSIGNED: ("已安排网点处理", "已經安排網點處理", "is with our local depot"),
    S.DRIVER_ASSIGNED: ("已安排司机", "已經安排司機", "has a driver assigned"),
    S.EN_ROUTE: ("司机正在前往取件", "司機正前往收件", "has a driver on the way to collect it"),
    S.PICKED_UP: ("已取件", "已經收件", "has been picked up"),
    S.OUT_FOR_DELIVERY: ("正在派送", "正在派送", "is out for delivery"),
    S.DELIVERED: ("已签收", "已經簽收", "has been delivered"),
    S.ATTEMPT_FAILED: (
        "上门未成功，我们会与您重新预约",
        "上門唔成功，我哋會同你重新預約",
        "could not be completed on our last visit; we will arrange a new time",
    ),
    S.RESCHEDULED: ("已重新预约", "已經重新預約", "has been rescheduled"),
    S.FAILED: (
        "未能完成，请联系客服",
        "未能完成，請聯絡客戶服務",
        "could not be completed; please speak to an agent",
    ),
    S.CANCEL_REQUESTED: ("正在取消", "正在取消", "is being cancelled"),
    S.CANCELLED: ("已取消", "已經取消", "has been cancelled"),
    S.UNSERVICEABLE: (
        "正在安排中，客服会与您联系",
        "正在安排中，客戶服務會同你聯絡",
        "is being arranged; an agent will contact you",
    ),
}
#: Statuses where the caller wants to hear when we come.
WINDOW_MATTERS = frozenset(
    {S.BOOKED, S.DEPOT_ASSIGNED, S.DRIVER_ASSIGNED, S.EN_ROUTE, S.RESCHEDULED}
)


def spoken_digits(number: str) -> str:
    """The number as a caller hears it, digit by digit (text-to-speech reads '2026' as a year)."""
    return " ".join(ch for ch in number if ch.isalnum())


def say_status(order: Order, language: str) -> str:
    cmn, yue, en = PHRASES[OrderStatus(order.status)]
    tz = ZoneInfo(order.timezone)
    start, end = order.window_start.astimezone(tz), order.window_end.astimezone(tz)
    window = order.status in WINDOW_MATTERS
    if language == MANDARIN:
        when = f"预约时间{start.month}月{start.day}日{start:%H:%M}至{end:%H:%M}。" if window else ""
        return f"运单{spoken_digits(order.number)}{cmn}。{when}"
    if language == CANTONESE:
        when = f"預約時間{start.month}月{start.day}日{start:%H:%M}至{end:%H:%M}。" if window else ""
        return f"運單{spoken_digits(order.number)}{yue}。{when}"
    when = f" The time window is {start:%-d %B}, {start:%H:%M} to {end:%H:%M}." if window else ""
    return f"Order {spoken_digits(order.number)} {en}.{when}"


def parse_digits(digits: str) -> tuple[int | None, int] | None:
    """(year, sequence) from what the caller keyed; None when it cannot be an order number."""
    digits = digits.strip().removesuffix("#")
    if not digits.isdecimal():
        return None
    if len(digits) == 10:
        return int(digits[:4]), int(digits[4:])
    if len(digits) <= 6:
        return None, int(digits)
    return None


async def order_status(session: AsyncSession, digits: str, language: str) -> str | None:
    """The IVR's `order_status` lookup: text to say, or None for an unknown number."""
    parsed = parse_digits(digits)
    if parsed is None:
        return None
    order = await PickupRepository(session).order_by_seq(*parsed)
    return say_status(order, language) if order is not None else None
