"""Self-service by phone: a caller keys in the digits of an order number and hears its status in
their language, through the contact center's IVR (signed simulator webhooks, as a carrier's)."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from contact_center import voice
from contact_center.ivr import CANTONESE, ENGLISH, MANDARIN
from depotline.config import Settings
from pickup import service
from pickup.service import Actor
from pickup.voice import parse_digits
from telephony_gateway.providers.registry import Providers
from tests.contact_center.test_calls_end_to_end import Phone, prompt, spoken
from tests.pickup.conftest import Pickup, order_in
from tests.telephony_gateway.conftest import CALLER, Line
from tests.telephony_gateway.conftest import line as line

LANGUAGE_KEYS = {MANDARIN: "1", CANTONESE: "2", ENGLISH: "3"}


def digits(number: str) -> str:
    """SF-2026-000001 -> 2026000001: what a caller keys in."""
    return "".join(ch for ch in number if ch.isdigit())


async def ask(
    pickup: Pickup, line: Line, settings: Settings, language: str, keys: str
) -> list[tuple[str, str]]:
    providers = Providers(settings.session_secret(), settings.public_url, None, voice.answer)
    phone = Phone(pickup.db, providers, line, CALLER)
    await phone.dial()
    await phone.press(LANGUAGE_KEYS[language])
    await phone.press("1")  # track a parcel
    return spoken(await phone.press(f"{keys}#"))


async def test_a_caller_hears_the_status_of_their_order_in_their_language(
    pickup: Pickup, line: Line, settings: Settings
) -> None:
    order = await pickup.dispatched()
    north = Actor(kind="sms", name="Guangzhou North")
    await pickup.run(service.record_status, order.id, "picked_up", north)
    spoken_number = " ".join(ch for ch in order.number if ch.isalnum())

    english = await ask(pickup, line, settings, ENGLISH, digits(order.number))
    assert english[0] == (f"Order {spoken_number} has been picked up.", ENGLISH)
    assert english[1] == prompt("main", ENGLISH)  # back to the menu

    mandarin = await ask(pickup, line, settings, MANDARIN, digits(order.number))
    assert mandarin[0] == (f"运单{spoken_number}已取件。", MANDARIN)
    # The sequence alone (six digits) finds it too.
    cantonese = await ask(pickup, line, settings, CANTONESE, f"{order.seq:06d}")
    assert cantonese[0] == (f"運單{spoken_number}已經收件。", CANTONESE)


async def test_a_booked_order_tells_the_window_and_an_unknown_number_is_asked_again(
    pickup: Pickup, line: Line, settings: Settings
) -> None:
    order = await pickup.book(order_in())
    english = await ask(pickup, line, settings, ENGLISH, digits(order.number))
    start = order.window_start.astimezone(ZoneInfo(order.timezone))
    assert english[0][0].endswith(
        f"is booked and being assigned to a depot. The time window is "
        f"{start.day} {start:%B}, 10:00 to 12:00."
    )
    unknown = await ask(pickup, line, settings, ENGLISH, "2026999999")
    assert unknown == [
        ("Sorry, we could not find that order number. Please try again.", ENGLISH),
        prompt("track", ENGLISH),  # asked again
    ]


def test_what_a_caller_keys_is_read_as_year_and_sequence() -> None:
    assert parse_digits("2026000123") == (2026, 123)
    assert parse_digits("000123#") == (None, 123)
    assert parse_digits("12345678") is None  # neither a sequence nor year + sequence
    assert parse_digits("2026-1") is None
