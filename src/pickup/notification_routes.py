"""HTTP for pickup notifications: the customer SMS texts per language with their preview
(encoding and segments), and how long depots have to answer an offer. A page under
/pickup/notifications and the JSON API under /api/v1/pickup/notifications."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get, post, put
from litestar.di import NamedDependency
from litestar.params import FromQuery, JSONBody
from litestar.response import Redirect, Template
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from depotline import i18n
from depotline.auth import principal_of, requires
from depotline.config import Settings
from depotline.db import Database
from depotline.errors import DomainError, InvalidInput
from depotline.pages import Req, attempt, form_of, render
from pickup import notifications
from pickup.schemas import LANGUAGES

MANAGERS = ("tenant_admin", "supervisor")
PAGE = "/pickup/notifications"


class TemplateIn(BaseModel):
    """An empty body puts the default text back."""

    model_config = ConfigDict(extra="forbid")

    kind: str
    language: str
    body: Annotated[str, StringConstraints(max_length=2000)] = ""


class PreviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    body: Annotated[str, StringConstraints(max_length=2000)]
    language: str = "en"


class PreviewOut(BaseModel):
    text: str
    encoding: str
    characters: int
    segments: int
    per_segment: int

    @classmethod
    def of(cls, preview: notifications.Preview) -> PreviewOut:
        return cls(
            text=preview.text,
            encoding=preview.encoding,
            characters=preview.units,
            segments=preview.segments,
            per_segment=preview.per_segment,
        )


class TemplateOut(BaseModel):
    kind: str
    language: str
    body: str
    custom: bool
    preview: PreviewOut


class NotificationSettingsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    depot_answer_minutes: Annotated[int, Field(ge=1, le=1440)]


class NotificationSettingsOut(BaseModel):
    depot_answer_minutes: int


def _out(row: notifications.TemplateRow, public_url: str) -> TemplateOut:
    preview = notifications.preview(row.body, row.language, public_url)
    return TemplateOut(
        kind=row.kind,
        language=row.language,
        body=row.body,
        custom=row.custom,
        preview=PreviewOut.of(preview),
    )


class NotificationApi(Controller):
    path = "/api/v1/pickup/notifications"
    tags = ["pickup"]
    guards = [requires(*MANAGERS)]

    @get("/templates", summary="Customer SMS texts: the tenant's own or the defaults")
    async def templates(
        self,
        db: NamedDependency[Database],
        settings: NamedDependency[Settings],
        language: FromQuery[str | None] = None,
    ) -> list[TemplateOut]:
        if language is not None and language not in LANGUAGES:
            raise InvalidInput(f"Language is one of: {', '.join(LANGUAGES)}", field="language")
        async with db.session() as session:
            rows = await notifications.templates(session, language)
        return [_out(row, settings.public_url) for row in rows]

    @put("/templates", summary="Set a customer SMS text (an empty body puts the default back)")
    async def save_template(
        self,
        request: Req,
        db: NamedDependency[Database],
        settings: NamedDependency[Settings],
        data: JSONBody[TemplateIn],
    ) -> TemplateOut:
        async with db.session() as session:
            row = await notifications.save_template(
                session, data.kind, data.language, data.body, principal_of(request).name
            )
        return _out(row, settings.public_url)

    @post(
        "/templates/preview",
        status_code=200,
        summary="A text as the customer gets it, its encoding (GSM-7 or UCS-2) and segments",
    )
    async def preview(
        self, settings: NamedDependency[Settings], data: JSONBody[PreviewIn]
    ) -> PreviewOut:
        return PreviewOut.of(notifications.preview(data.body, data.language, settings.public_url))

    @get("/settings", summary="How long a depot has to answer an offer")
    async def settings(self, db: NamedDependency[Database]) -> NotificationSettingsOut:
        async with db.session() as session:
            current = await notifications.notification_settings(session)
        return NotificationSettingsOut(depot_answer_minutes=current.depot_answer_minutes)

    @put("/settings")
    async def save_settings(
        self, db: NamedDependency[Database], data: JSONBody[NotificationSettingsIn]
    ) -> NotificationSettingsOut:
        async with db.session() as session:
            saved = await notifications.save_settings(session, data.depot_answer_minutes)
        return NotificationSettingsOut(depot_answer_minutes=saved.depot_answer_minutes)


class NotificationPages(Controller):
    path = PAGE
    include_in_schema = False
    guards = [requires(*MANAGERS)]

    async def _page(
        self,
        request: Req,
        db: Database,
        settings: Settings,
        language: str,
        *,
        draft: tuple[str, str] | None = None,
        error: DomainError | None = None,
        status_code: int = 200,
    ) -> Template:
        """The texts of one language; `draft` (kind, body) is shown unsaved with its preview
        (or its `error`) in place of that kind's text."""
        async with db.session() as session:
            rows = await notifications.templates(session, language)
            current = await notifications.notification_settings(session)
        cards = []
        for row in rows:
            body = draft[1] if draft and draft[0] == row.kind else row.body
            problem = error.detail if error and draft and draft[0] == row.kind else None
            shown = None
            if problem is None:
                try:
                    shown = notifications.preview(body, language, settings.public_url)
                except DomainError as exc:
                    problem = exc.detail
            cards.append(
                {
                    "kind": row.kind,
                    "body": body,
                    "custom": row.custom,
                    "draft": bool(draft and draft[0] == row.kind),
                    "preview": shown,
                    "error": problem,
                }
            )
        return render(
            request,
            "pickup/notifications.html",
            status_code=status_code,
            language=language,
            languages=LANGUAGES,
            cards=cards,
            variables=notifications.VARIABLES,
            depot_answer_minutes=current.depot_answer_minutes,
        )

    @get("/")
    async def page(
        self,
        request: Req,
        db: NamedDependency[Database],
        settings: NamedDependency[Settings],
        language: FromQuery[str] = "",
    ) -> Template:
        # First the texts of the language the page is read in.
        chosen = language if language in LANGUAGES else i18n.current_locale.get()
        return await self._page(request, db, settings, chosen)

    @post("/templates")
    async def save_template(
        self, request: Req, db: NamedDependency[Database], settings: NamedDependency[Settings]
    ) -> Template | Redirect:
        """One form per text: Preview shows it unsaved; Save keeps it; Default puts the
        default back."""
        form = await form_of(request)
        kind, language = form.get("kind", ""), form.get("language", "")
        body, action = form.get("body", ""), form.get("action", "save")
        if language not in LANGUAGES or kind not in notifications.CUSTOMER_KINDS:
            field = "language" if language not in LANGUAGES else "kind"
            raise InvalidInput("Choose one of the texts on the page", field=field)
        back = f"{PAGE}/?language={language}#sms-{kind}"
        if action == "default":
            body = ""
        elif action == "preview" or body.strip():
            try:
                notifications.check_body(body)
            except DomainError as exc:
                return await self._page(
                    request, db, settings, language, draft=(kind, body), error=exc, status_code=400
                )
        if action == "preview":
            return await self._page(request, db, settings, language, draft=(kind, body))

        async def save() -> None:
            async with db.session() as session:
                await notifications.save_template(
                    session, kind, language, body, principal_of(request).name
                )

        done = "SMS text saved" if body.strip() else "The default text is back"
        return await attempt(request, save, done, back)

    @post("/settings")
    async def save_settings(self, request: Req, db: NamedDependency[Database]) -> Redirect:
        form = await form_of(request)

        async def save() -> None:
            try:
                minutes = int(form.get("depot_answer_minutes", ""))
            except ValueError:
                raise InvalidInput(
                    "Between 1 and 1440 minutes", field="depot_answer_minutes"
                ) from None
            async with db.session() as session:
                await notifications.save_settings(session, minutes)

        language = form.get("language", "")
        back = f"{PAGE}/?language={language}" if language in LANGUAGES else f"{PAGE}/"
        return await attempt(request, save, "Notification settings saved", back)
