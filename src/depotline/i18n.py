"""Languages: English, Chinese (Simplified) and Chinese (Traditional), from the first page on.

Catalogs are gettext `.po` files under `frontend/locale/<locale>/LC_MESSAGES/messages.po`, read
with Babel and compiled in memory at start-up, so there is no build step and no stale `.mo`.
The locale of a request comes from `?lang=`, then the `lang` cookie, then Accept-Language.
"""

from __future__ import annotations

import gettext
from collections.abc import Callable
from contextvars import ContextVar
from io import BytesIO
from pathlib import Path
from typing import Final
from urllib.parse import parse_qs

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, Scope, Send

LOCALES: Final = ("en", "zh_Hans", "zh_Hant")
LOCALE_NAMES: Final = {"en": "English", "zh_Hans": "简体中文", "zh_Hant": "繁體中文"}
#: BCP 47 tags for the <html lang> attribute.
HTML_LANG: Final = {"en": "en", "zh_Hans": "zh-Hans", "zh_Hant": "zh-Hant"}
LANG_COOKIE: Final = "lang"

current_locale: ContextVar[str] = ContextVar("current_locale", default="en")


class Catalogs:
    def __init__(self, locale_dir: Path) -> None:
        self._translations: dict[str, gettext.NullTranslations] = {"en": gettext.NullTranslations()}
        for locale in LOCALES[1:]:
            po_path = locale_dir / locale / "LC_MESSAGES" / "messages.po"
            if not po_path.exists():
                raise FileNotFoundError(f"message catalog missing: {po_path}")
            with po_path.open("rb") as po_file:
                catalog = read_po(po_file, locale=locale)
            buffer = BytesIO()
            write_mo(buffer, catalog)
            buffer.seek(0)
            self._translations[locale] = gettext.GNUTranslations(buffer)

    def gettext(self, message: str) -> str:
        return self._translations[current_locale.get()].gettext(message)

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        return self._translations[current_locale.get()].ngettext(singular, plural, n)


def normalise(tag: str | None) -> str | None:
    """Map a language tag (zh-TW, zh-Hant, zh_CN, en-GB ...) to one of our locales."""
    if not tag:
        return None
    tag = tag.strip().replace("_", "-").lower()
    if tag in ("zh-hant", "zh-tw", "zh-hk", "zh-mo") or tag.startswith("zh-hant"):
        return "zh_Hant"
    if tag == "zh" or tag.startswith("zh-"):
        return "zh_Hans"
    if tag == "en" or tag.startswith("en-"):
        return "en"
    return None


def negotiate(accept_language: str) -> str | None:
    """The best of our locales for an Accept-Language header, honouring q-values."""
    choices: list[tuple[float, int, str]] = []
    for position, part in enumerate(accept_language.split(",")):
        tag, _, params = part.partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        locale = normalise(tag)
        if locale and quality > 0:
            choices.append((-quality, position, locale))
    return min(choices)[2] if choices else None


def locale_middleware(default: str) -> Callable[[ASGIApp], ASGIApp]:
    def factory(app: ASGIApp) -> ASGIApp:
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != ScopeType.HTTP:
                await app(scope, receive, send)
                return
            locale = _locale_of(scope) or default
            token = current_locale.set(locale)
            scope.setdefault("state", {})["locale"] = locale
            try:
                await app(scope, receive, send)
            finally:
                current_locale.reset(token)

        return middleware

    return factory


def _locale_of(scope: Scope) -> str | None:
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    if "lang" in query:
        found = normalise(query["lang"][0])
        if found:
            return found
    headers = dict(scope["headers"])
    cookie_header = headers.get(b"cookie", b"").decode("latin-1")
    for cookie in cookie_header.split(";"):
        name, _, value = cookie.strip().partition("=")
        if name == LANG_COOKIE:
            found = normalise(value)
            if found:
                return found
    return negotiate(headers.get(b"accept-language", b"").decode("latin-1"))
