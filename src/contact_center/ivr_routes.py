"""The IVR editor: a tenant's flow versions, the selected version as a readable tree, a JSON
editor that checks and saves drafts, publishing, export and import of a flow's JSON, and a link
that dials a version from the simulator console before it goes live."""

from __future__ import annotations

from uuid import UUID

from litestar import Controller, Response, get, post
from litestar.datastructures import UploadFile
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Template

from contact_center import flows
from contact_center.models import FlowStatus, IvrFlowVersion
from contact_center.repository import ContactCenterRepository
from depotline.auth import principal_of, requires
from depotline.db import Database
from depotline.errors import DomainError, NotFound
from depotline.pages import Req, flash, form_of, refused, render
from tenant.repository import TenantRepository

EDITOR = "/contact-center/ivr"
MANAGERS = ("tenant_admin", "supervisor")
#: What the editor keeps between a form and the page it goes back to.
DRAFT_TEXT, PROBLEMS = "ivr_text", "ivr_problems"
OK = "OK: the flow can be published."


def _back(version: int | None = None) -> Redirect:
    return Redirect(path=f"{EDITOR}?version={version}" if version else EDITOR)


class IvrPages(Controller):
    path = EDITOR
    include_in_schema = False
    guards = [requires(*MANAGERS)]

    @get("/")
    async def editor(
        self,
        request: Req,
        db: NamedDependency[Database],
        version: FromQuery[int | None] = None,
    ) -> Template:
        async with db.session() as session:
            versions = list(await ContactCenterRepository(session).flow_versions())
            people = TenantRepository(session)
            ids = {v.author_id for v in versions} | {v.published_by for v in versions}
            names = {i: getattr(await people.get_user(i), "name", "") for i in ids if i}
        shown = _choose(versions, version)
        flow = flows.flow_of(shown) if shown else None
        root, unreachable = flows.outline(flow) if flow else (None, [])
        kept = request.session.pop(DRAFT_TEXT, None) if request.session else None
        problems = request.session.pop(PROBLEMS, None) if request.session else None
        return render(
            request,
            "contact_center/ivr.html",
            versions=versions,
            names=names,
            shown=shown,
            live=next((v for v in versions if v.status == FlowStatus.PUBLISHED), None),
            root=root,
            unreachable=unreachable,
            shown_problems=flows.problems_of(flow) if flow else [],
            text=kept if kept is not None else (flows.export(shown) if shown else ""),
            problems=problems,
        )

    @post("/")
    async def save(self, request: Req, db: NamedDependency[Database]) -> Redirect:
        """Check the edited JSON, or save it as a new draft (checked too)."""
        form = await form_of(request)
        text = form.get("flow", "")
        if form.get("action") != "save":
            return self._checked(request, text, flows.check(text))
        try:
            async with db.session() as session:
                saved = await flows.save_draft(
                    session, principal_of(request), text, note=form.get("note", "")
                )
        except flows.FlowRejected as rejected:
            return self._checked(request, text, rejected.problems)
        return self._saved(request, saved)

    @post("/validate")
    async def validate(self, request: Req) -> Redirect:
        """Check a flow without saving it (the Check button, and older links to it)."""
        text = (await form_of(request)).get("flow", "")
        return self._checked(request, text, flows.check(text))

    @post("/import")
    async def import_file(self, request: Req, db: NamedDependency[Database]) -> Redirect:
        """A flow's JSON file (an export) as a new draft."""
        upload = (await request.form()).get("file")
        if not isinstance(upload, UploadFile) or not upload.filename:
            flash(request, "Choose a JSON file to import", "error")
            return _back()
        data = await upload.read(flows.MAX_DOCUMENT_BYTES + 1)
        try:
            async with db.session() as session:
                saved = await flows.import_file(
                    session, principal_of(request), data, upload.filename
                )
        except flows.FlowRejected as rejected:
            text = data.decode(errors="replace")[: flows.MAX_DOCUMENT_BYTES]
            return self._checked(request, text, rejected.problems)
        return self._saved(request, saved)

    @get("/{version_id:uuid}/export")
    async def export(
        self, version_id: FromPath[UUID], db: NamedDependency[Database]
    ) -> Response[str]:
        async with db.session() as session:
            version = await ContactCenterRepository(session).flow_version(version_id)
        if version is None:
            raise NotFound("No such IVR flow version")
        return Response(
            flows.export(version),
            media_type="application/json",
            headers={
                "Content-Disposition": f'attachment; filename="ivr-flow-v{version.number}.json"'
            },
        )

    @post("/{version_id:uuid}/publish")
    async def publish(
        self, request: Req, version_id: FromPath[UUID], db: NamedDependency[Database]
    ) -> Redirect:
        try:
            async with db.session() as session:
                version = await flows.publish(session, principal_of(request), version_id)
        except NotFound:
            raise  # another tenant's version looks like none at all
        except flows.FlowRejected as rejected:
            request.session[PROBLEMS] = rejected.problems
            return _back()
        except DomainError as exc:
            refused(request, exc)
            return _back()
        flash(request, "Version published: new calls hear it")
        return _back(version.number)

    def _checked(self, request: Req, text: str, problems: list[str]) -> Redirect:
        request.session[DRAFT_TEXT] = text[: flows.MAX_DOCUMENT_BYTES]
        request.session[PROBLEMS] = problems or [OK]
        return _back()

    def _saved(self, request: Req, saved: flows.Saved) -> Redirect:
        if saved.problems:
            request.session[PROBLEMS] = saved.problems
            flash(request, "Draft saved; fix what is listed before publishing it")
        else:
            flash(request, "Draft saved: try it in the simulator, then publish it")
        return _back(saved.version.number)


def _choose(versions: list[IvrFlowVersion], number: int | None) -> IvrFlowVersion | None:
    """The version asked for, else the live one, else the newest."""
    by_number = {v.number: v for v in versions}
    if number is not None and number in by_number:
        return by_number[number]
    live = [v for v in versions if v.status == FlowStatus.PUBLISHED]
    return live[0] if live else (versions[0] if versions else None)
