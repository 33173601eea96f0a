"""HTTP for end-customer profiles: the JSON API under /api/v1/customers and the pages under
/customers. Thin: the service decides. Reads of a client's customer data by an outsourced
agent (on a client's seat, which is the only way to act for the client) are put on record."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any
from uuid import UUID

from litestar import Controller, Response, get, patch, post
from litestar.datastructures import UploadFile
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.response import Redirect, Template
from sqlmodel.ext.asyncio.session import AsyncSession

from customers import service
from customers.import_files import COLUMNS, MAX_FILE_BYTES
from customers.models import CustomerImport, Tier
from customers.schemas import (
    AddressIn,
    CallerCard,
    ContactOut,
    CustomerIn,
    CustomerOut,
    CustomerPatch,
    HitOut,
    ImportOut,
    MergeIn,
)
from depotline import i18n
from depotline.auth import Principal, principal_of, requires
from depotline.config import Settings
from depotline.db import Database
from depotline.errors import DomainError, InvalidInput, NotFound
from depotline.pages import Req, attempt, flash, form_of, render
from tenant.models import Role
from tenant.routes import SUPERVISORS, client_ip, provide_principal, provide_session

#: Who works with customer data: everyone of a client's staff but depot users and billing.
STAFF = (Role.TENANT_ADMIN, Role.SUPERVISOR, Role.AGENT, Role.READ_ONLY)
EDITORS = (Role.TENANT_ADMIN, Role.SUPERVISOR, Role.AGENT)
#: Bulk changes (imports, merges) are for admins and supervisors.
MANAGERS = SUPERVISORS
#: Room for the form fields around the file.
UPLOAD_LIMIT = MAX_FILE_BYTES + 256 * 1024
IMPORT_TEMPLATE = (
    "name,phone,tier,tags,notes,language,label,line1,line2,district,city,postal_code,country\r\n"
    "王芳,+8613800138000;020-38001234,vip,frequent;e-commerce,Calls after 6 pm,zh_Hans,"
    "Home,天河路 385 号,12 楼,天河区,广州,510620,CN\r\n"
)


async def _customer_out(
    session: AsyncSession, customer_id: UUID, actor: Principal, ip: str | None
) -> CustomerOut:
    found = await service.profile(session, customer_id, actor=actor, ip=ip, timeline=0)
    return CustomerOut.of(found.customer, found.phones, found.addresses)


async def _upload(request: Req) -> tuple[str, bytes, str]:
    form = await request.form()
    upload = form.get("file")
    if not isinstance(upload, UploadFile) or not upload.filename:
        raise InvalidInput("Choose a CSV or XLSX file", field="file")
    content = await upload.read()
    return upload.filename, content, str(form.get("default_region") or "CN")


@lru_cache(maxsize=4)
def _catalogs(locale_dir: Path) -> i18n.Catalogs:
    return i18n.Catalogs(locale_dir)


def _report_response(run: CustomerImport, settings: Settings) -> Response[str]:
    text = service.report_csv(run, _catalogs(settings.frontend_dir / "locale").gettext)
    # An ASCII name: the uploaded file's own name may be Chinese, and headers are Latin-1.
    name = f"rejected-rows-{run.created_at:%Y%m%d-%H%M}.csv"
    return Response(
        "\ufeff" + text,  # a BOM, so Excel reads the UTF-8 (Chinese) right
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="{name}"'},
    )


# -- JSON API -----------------------------------------------------------------------------------
class CustomersApi(Controller):
    path = "/api/v1/customers"
    tags = ["customers"]
    guards = [requires(*STAFF)]
    dependencies = {
        "session": Provide(provide_session),
        "principal": Provide(provide_principal, sync_to_thread=False),
    }

    @get("/", summary="Search customers by name, tag, address or a fragment of a number")
    async def search(
        self,
        request: Req,
        session: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
        q: FromQuery[str] = "",
        limit: FromQuery[int] = 50,
    ) -> list[HitOut]:
        hits = await service.search(session, q, limit=limit, actor=principal, ip=client_ip(request))
        return [HitOut.of(hit) for hit in hits]

    @post("/", guards=[requires(*EDITORS)], summary="Create a customer (at least one number)")
    async def create(
        self,
        session: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
        data: JSONBody[CustomerIn],
    ) -> CustomerOut:
        customer = await service.create_customer(session, principal, data)
        found = await service.profile(session, customer.id, timeline=0)
        return CustomerOut.of(found.customer, found.phones, found.addresses)

    @get("/caller-card", summary="The screen pop for a caller's number")
    async def caller_card(
        self,
        request: Req,
        session: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
        phone: FromQuery[str],
        recent: FromQuery[int] = service.RECENT_ON_CARD,
    ) -> CallerCard:
        return await service.caller_card_for(
            session,
            principal,
            phone,
            ip=client_ip(request),
            recent=max(0, min(recent, 50)),
            language=i18n.current_locale.get(),
        )

    @get("/{customer_id:uuid}")
    async def customer(
        self,
        request: Req,
        session: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
        customer_id: FromPath[UUID],
    ) -> CustomerOut:
        return await _customer_out(session, customer_id, principal, client_ip(request))

    @patch("/{customer_id:uuid}", guards=[requires(*EDITORS)], summary="Change the fields sent")
    async def change(
        self,
        request: Req,
        session: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
        customer_id: FromPath[UUID],
        data: JSONBody[CustomerPatch],
    ) -> CustomerOut:
        await service.update_customer(session, principal, customer_id, data)
        return await _customer_out(session, customer_id, principal, client_ip(request))

    @get("/{customer_id:uuid}/timeline", summary="Every contact, newest first")
    async def timeline(
        self,
        request: Req,
        session: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
        customer_id: FromPath[UUID],
        limit: FromQuery[int] = service.TIMELINE_LENGTH,
    ) -> list[ContactOut]:
        found = await service.profile(
            session,
            customer_id,
            actor=principal,
            ip=client_ip(request),
            timeline=max(1, min(limit, 1000)),
        )
        return [ContactOut(**vars(c)) for c in found.timeline]

    @post(
        "/{customer_id:uuid}/merge",
        guards=[requires(*MANAGERS)],
        summary="Merge another profile (its id or number) into this one",
    )
    async def merge(
        self,
        request: Req,
        session: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
        customer_id: FromPath[UUID],
        data: JSONBody[MergeIn],
    ) -> CustomerOut:
        await service.merge_by_reference(session, principal, customer_id, data.duplicate)
        return await _customer_out(session, customer_id, principal, client_ip(request))

    @post(
        "/imports",
        guards=[requires(*MANAGERS)],
        request_max_body_size=UPLOAD_LIMIT,
        summary="Import customers from a CSV or XLSX file (multipart: file, default_region)",
    )
    async def start_import(
        self,
        request: Req,
        session: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
    ) -> ImportOut:
        file_name, content, region = await _upload(request)
        run = await service.start_import(
            session, principal, file_name=file_name, content=content, default_region=region
        )
        return ImportOut.of(run)

    @get("/imports", guards=[requires(*MANAGERS)], summary="Recent imports")
    async def imports(self, session: NamedDependency[AsyncSession]) -> list[ImportOut]:
        return [ImportOut.of(run) for run in await service.recent_imports(session)]

    @get("/imports/{import_id:uuid}", guards=[requires(*MANAGERS)], summary="Progress and report")
    async def import_status(
        self, session: NamedDependency[AsyncSession], import_id: FromPath[UUID]
    ) -> ImportOut:
        return ImportOut.of(await service.get_import(session, import_id))

    @get(
        "/imports/{import_id:uuid}/report.csv",
        guards=[requires(*MANAGERS)],
        media_type="text/csv",
        summary="The rejected rows as CSV: row, field, value, reason",
    )
    async def import_report(
        self,
        session: NamedDependency[AsyncSession],
        settings: NamedDependency[Settings],
        import_id: FromPath[UUID],
    ) -> Response[str]:
        return _report_response(await service.get_import(session, import_id), settings)


# -- pages --------------------------------------------------------------------------------------
def _may(principal: Principal, roles: tuple[str, ...]) -> bool:
    return principal.role in roles or principal.is_platform_admin


def _patch_from(form: dict[str, str]) -> CustomerPatch:
    """The fields the edit form sent (a form that sent none changes nothing)."""
    sent: dict[str, Any] = {
        name: form[name] for name in ("name", "tier", "notes", "language") if name in form
    }
    if "tags" in form:
        sent["tags"] = service.TAG_SEPARATORS.split(form["tags"])
    return CustomerPatch(**sent)


def _address_from(form: dict[str, str]) -> AddressIn:
    try:
        lat = float(form["lat"]) if form.get("lat") else None
        lon = float(form["lon"]) if form.get("lon") else None
    except ValueError:
        raise InvalidInput(service.POSITION_INVALID, field="lat") from None
    fields = ("label", "line1", "line2", "district", "city", "postal_code", "country")
    return AddressIn(**{name: form.get(name, "") for name in fields}, lat=lat, lon=lon)


class CustomerPages(Controller):
    path = "/customers"
    include_in_schema = False
    guards = [requires(*STAFF)]

    @get("/", name="customers")
    async def search(
        self, request: Req, db: NamedDependency[Database], q: FromQuery[str] = ""
    ) -> Template:
        principal = principal_of(request)
        async with db.session() as session:
            hits = await service.search(session, q, actor=principal, ip=client_ip(request))
        return render(
            request,
            "customers/search.html",
            q=q,
            hits=hits,
            can_edit=_may(principal, EDITORS),
            can_manage=_may(principal, MANAGERS),
        )

    @get("/new", guards=[requires(*EDITORS)])
    async def new_form(self, request: Req, phone: FromQuery[str] = "") -> Template:
        return render(request, "customers/new.html", values={"phones": phone}, **_choices())

    @post("/new", guards=[requires(*EDITORS)])
    async def create(self, request: Req, db: NamedDependency[Database]) -> Redirect | Template:
        form = await form_of(request)
        try:
            place = ("label", "line1", "line2", "district", "city", "postal_code", "lat", "lon")
            address = _address_from(form) if any(form.get(k) for k in place) else None
            data = CustomerIn(
                name=form.get("name"),
                phones=service.PHONE_SEPARATORS.split(form.get("phones", "")),
                tier=form.get("tier") or "standard",
                tags=service.TAG_SEPARATORS.split(form.get("tags", "")),
                notes=form.get("notes", ""),
                language=form.get("language") or "en",
                addresses=[address] if address else [],
            )
            async with db.session() as session:
                customer = await service.create_customer(session, principal_of(request), data)
        except DomainError as exc:
            return render(
                request,
                "customers/new.html",
                400,
                error=exc.detail,
                error_field=exc.field,
                values=form,
                **_choices(),
            )
        flash(request, "Customer created")
        return Redirect(path=f"/customers/{customer.id}")

    @get("/{customer_id:uuid}")
    async def profile(
        self, request: Req, db: NamedDependency[Database], customer_id: FromPath[UUID]
    ) -> Template | Redirect:
        principal = principal_of(request)
        async with db.session() as session:
            found = await service.profile(
                session, customer_id, actor=principal, ip=client_ip(request)
            )
        if found.customer.merged_into is not None:
            flash(request, "This profile was merged into the one shown here")
            return Redirect(path=f"/customers/{found.customer.merged_into}")
        return render(
            request,
            "customers/profile.html",
            profile=found,
            can_edit=_may(principal, EDITORS),
            can_manage=_may(principal, MANAGERS),
            **_choices(),
        )

    @post("/{customer_id:uuid}", guards=[requires(*EDITORS)])
    async def update(
        self, request: Req, db: NamedDependency[Database], customer_id: FromPath[UUID]
    ) -> Redirect:
        form = await form_of(request)

        async def action() -> None:
            async with db.session() as session:
                await service.update_customer(
                    session, principal_of(request), customer_id, _patch_from(form)
                )

        return await attempt(request, action, "Customer saved", f"/customers/{customer_id}")

    @post("/{customer_id:uuid}/phones", guards=[requires(*EDITORS)])
    async def add_phone(
        self, request: Req, db: NamedDependency[Database], customer_id: FromPath[UUID]
    ) -> Redirect:
        form = await form_of(request)

        async def action() -> None:
            async with db.session() as session:
                await service.add_phone(
                    session, principal_of(request), customer_id, form.get("phone", "")
                )

        return await attempt(request, action, "Number added", f"/customers/{customer_id}")

    @post("/{customer_id:uuid}/phones/remove", guards=[requires(*EDITORS)])
    async def remove_phone(
        self, request: Req, db: NamedDependency[Database], customer_id: FromPath[UUID]
    ) -> Redirect:
        form = await form_of(request)

        async def action() -> None:
            async with db.session() as session:
                await service.remove_phone(
                    session, principal_of(request), customer_id, form.get("phone", "")
                )

        return await attempt(request, action, "Number removed", f"/customers/{customer_id}")

    @post("/{customer_id:uuid}/addresses", guards=[requires(*EDITORS)])
    async def add_address(
        self, request: Req, db: NamedDependency[Database], customer_id: FromPath[UUID]
    ) -> Redirect:
        form = await form_of(request)

        async def action() -> None:
            async with db.session() as session:
                customer = await service.get_customer(session, customer_id)
                await service.add_address(
                    session, principal_of(request), customer.id, _address_from(form)
                )

        return await attempt(request, action, "Address added", f"/customers/{customer_id}")

    @post("/{customer_id:uuid}/addresses/remove", guards=[requires(*EDITORS)])
    async def remove_address(
        self, request: Req, db: NamedDependency[Database], customer_id: FromPath[UUID]
    ) -> Redirect:
        form = await form_of(request)

        async def action() -> None:
            async with db.session() as session:
                customer = await service.get_customer(session, customer_id)
                try:
                    address_id = UUID(form.get("address_id", ""))
                except ValueError:
                    raise NotFound("The customer has no such address", field="address_id") from None
                await service.remove_address(
                    session, principal_of(request), customer.id, address_id
                )

        return await attempt(request, action, "Address removed", f"/customers/{customer_id}")

    @post("/{customer_id:uuid}/merge", guards=[requires(*MANAGERS)])
    async def merge(
        self, request: Req, db: NamedDependency[Database], customer_id: FromPath[UUID]
    ) -> Redirect:
        form = await form_of(request)

        async def action() -> None:
            async with db.session() as session:
                await service.merge_by_reference(
                    session, principal_of(request), customer_id, form.get("duplicate", "")
                )

        return await attempt(request, action, "Profiles merged", f"/customers/{customer_id}")

    @get("/import", guards=[requires(*MANAGERS)])
    async def import_form(self, request: Req, db: NamedDependency[Database]) -> Template:
        async with db.session() as session:
            runs = await service.recent_imports(session)
        return render(request, "customers/import.html", runs=runs, columns=list(COLUMNS))

    @post("/import", guards=[requires(*MANAGERS)], request_max_body_size=UPLOAD_LIMIT)
    async def upload(self, request: Req, db: NamedDependency[Database]) -> Redirect | Template:
        try:
            file_name, content, region = await _upload(request)
            async with db.session() as session:
                run = await service.start_import(
                    session,
                    principal_of(request),
                    file_name=file_name,
                    content=content,
                    default_region=region,
                )
        except DomainError as exc:
            async with db.session() as session:
                runs = await service.recent_imports(session)
            return render(
                request,
                "customers/import.html",
                400,
                error=exc.detail,
                runs=runs,
                columns=list(COLUMNS),
            )
        return Redirect(path=f"/customers/imports/{run.id}")

    @get("/import/template.csv", guards=[requires(*MANAGERS)], media_type="text/csv")
    async def import_template(self) -> Response[str]:
        return Response(
            "\ufeff" + IMPORT_TEMPLATE,
            media_type="text/csv; charset=utf-8",
            headers={"content-disposition": 'attachment; filename="customers-template.csv"'},
        )

    @get("/imports/{import_id:uuid}", guards=[requires(*MANAGERS)])
    async def import_progress(
        self, request: Req, db: NamedDependency[Database], import_id: FromPath[UUID]
    ) -> Template:
        async with db.session() as session:
            run = await service.get_import(session, import_id)
        return render(request, "customers/import_progress.html", run=ImportOut.of(run))


def _choices() -> dict[str, Any]:
    return {"tiers": [t.value for t in Tier], "languages": list(i18n.LOCALES)}
