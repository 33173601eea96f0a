"""The assembly: the one place that imports every domain and wires routes, jobs and handlers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import click
from arq.worker import Worker
from jinja2 import Environment, FileSystemLoader, select_autoescape
from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide
from litestar.exceptions import HTTPException
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.plugins.prometheus import PrometheusConfig, PrometheusController
from litestar.static_files import create_static_files_router
from litestar.stores.redis import RedisStore
from litestar.template import TemplateConfig
from redis.asyncio import Redis
from swagger_ui import __file__ as swagger_ui_module

from contact_center import demo as contact_center_demo
from contact_center import jobs as contact_center_jobs
from contact_center import voice as contact_center_voice
from contact_center.desk_routes import DeskPages
from contact_center.ivr_routes import IvrPages
from contact_center.routes import ConsolePages, ContactCenterPages, FloorApi
from customers import demo as customers_demo
from customers import jobs as customers_jobs
from customers import service as customers_service
from customers.routes import CustomerPages, CustomersApi
from depotline import __version__, i18n, realtime
from depotline.auth import authentication_middleware, check_request
from depotline.config import Settings, get_settings
from depotline.db import Database
from depotline.errors import DomainError
from depotline.jobs import build_worker, create_job_pool
from depotline.observability import configure_logging, request_id_middleware
from depotline.outbox import Handler
from depotline.problems import (
    domain_error_handler,
    http_exception_handler,
    unhandled_exception_handler,
)
from depotline.routes import HealthController, HomeController
from depotline.sessions import ChangedOnlySessionConfig
from pickup import demo as pickup_demo
from pickup import jobs as pickup_jobs
from pickup import notification_jobs as pickup_notification_jobs
from pickup import voice as pickup_voice
from pickup.notification_routes import NotificationApi, NotificationPages
from pickup.routes import PickupApi, PickupPages
from pickup.tracking import TrackingPages
from telephony_gateway import demo as gateway_demo
from telephony_gateway import jobs as gateway_jobs
from telephony_gateway import simulate as gateway_simulate
from telephony_gateway.providers.registry import Providers
from telephony_gateway.routes import GatewayApi, GatewayPages, WebhookRoutes
from tenant import demo as tenant_demo
from tenant import pages as tenant_pages
from tenant.pages import (
    AdminPages,
    AuthPages,
    InvitationPages,
    PlatformPages,
    SeatPages,
    SsoPages,
)
from tenant.routes import PlatformApi, SeatApi, TenantApi, resolve_principal

SWAGGER_UI_ASSETS = Path(swagger_ui_module).parent / "static"
SESSION_COOKIE = "depotline_session"

# The contact center answers the calls the carrier gateway brings in.
gateway_simulate.use_voice_flow(contact_center_voice.answer)
# Callers ask the IVR for their order's status; pickup answers.
contact_center_voice.LOOKUPS["order_status"] = pickup_voice.order_status

#: Every domain's arq job functions.
JOB_FUNCTIONS: Sequence[Callable[..., Any]] = ()


def merge_handlers(*domains: Mapping[str, Sequence[Handler]]) -> dict[str, list[Handler]]:
    """Several domains may follow one topic (a call event feeds routing and the customer
    timeline): their handlers run one after another, in the order the domains are given."""
    merged: dict[str, list[Handler]] = {}
    for handlers in domains:
        for topic, topic_handlers in handlers.items():
            merged.setdefault(topic, []).extend(topic_handlers)
    return merged


#: Outbox topic -> handlers run by the worker, in order.
OUTBOX_HANDLERS: Mapping[str, Sequence[Handler]] = merge_handlers(
    # Customers first: the caller's profile exists before anything else looks, and the timeline
    # is written before the gateway hands an SMS to the carrier (never after a send).
    customers_jobs.HANDLERS,
    gateway_jobs.HANDLERS,
    contact_center_jobs.HANDLERS,
    pickup_jobs.HANDLERS,
    # After dispatch: SMS to the depot an order went to, and to the customer.
    pickup_notification_jobs.HANDLERS,
)
#: Demo data loaders, in dependency order; each returns lines to print for the user.
DEMO_SEEDERS: Sequence[Callable[[Database], Awaitable[list[str]]]] = (
    tenant_demo.seed,
    customers_demo.seed,
    gateway_demo.seed,
    contact_center_demo.seed,
    pickup_demo.seed,
)
#: Every domain's `depotline` subcommands; the kernel's cli adds them to its group.
CLI_COMMANDS: Sequence[click.Command] = (*gateway_simulate.COMMANDS,)


def template_environment(settings: Settings) -> Environment:
    catalogs = i18n.Catalogs(settings.frontend_dir / "locale")
    env = Environment(
        loader=FileSystemLoader(settings.frontend_dir / "templates"),
        autoescape=select_autoescape(["html", "xml"]),
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_callables(  # type: ignore[attr-defined]
        catalogs.gettext, catalogs.ngettext, newstyle=True
    )
    env.filters["label"] = tenant_pages.label

    def term(identifier: object) -> str:
        """A stored identifier (queue strategy, agent or SMS state) as words: the catalog's
        translation where there is one, else the identifier made readable."""
        value = str(getattr(identifier, "value", identifier))
        translated = catalogs.gettext(value)
        return translated if translated != value else value.replace("_", " ").capitalize()

    env.filters["term"] = term

    def say(
        message: str, params: Mapping[str, str] | None = None, terms: Sequence[str] = ()
    ) -> str:
        """A catalog message with parameters (a `DomainError`'s, a flash) in the reader's
        language: translated, then filled; the parameters named in `terms` translated too."""
        translated = catalogs.gettext(message)
        if not params:
            return translated
        values = {name: catalogs.gettext(v) if name in terms else v for name, v in params.items()}
        try:
            return translated % values
        except (KeyError, ValueError, TypeError):  # a translation that lost a placeholder
            return message % params

    env.globals["say"] = say
    env.globals.update(
        version=__version__,
        locales=i18n.LOCALES,
        locale_names=i18n.LOCALE_NAMES,
        current_locale=i18n.current_locale.get,
        html_lang=lambda: i18n.HTML_LANG[i18n.current_locale.get()],
    )
    return env


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or get_settings()
    configure_logging(settings.log_level, settings.log_format)

    async def open_connections(app: Litestar) -> None:
        app.state.db = Database(settings.app_url, pool_size=settings.db_pool_size)
        app.state.redis = Redis.from_url(
            settings.required_redis_url, socket_timeout=2, socket_connect_timeout=2
        )
        app.state.jobs = await create_job_pool(settings.required_redis_url)
        # State changes committed here (an offer, an agent's state) reach the desks at once.
        realtime.announce_commits(app.state.db, app.state.redis)
        app.state.providers = Providers(
            settings.session_secret(),
            settings.public_url,
            app.state.redis,
            contact_center_voice.answer,
        )
        # The first screen pop of an unknown number must not wait seconds for these tables.
        await asyncio.to_thread(customers_service.load_number_data)

    async def close_connections(app: Litestar) -> None:
        await realtime.flush_pending()  # pushes of the last commits still on their way
        await app.state.providers.aclose()
        await app.state.jobs.aclose()
        await app.state.redis.aclose()
        await app.state.db.dispose()

    def provide_db(state: State) -> Database:
        db: Database = state.db
        return db

    def provide_redis(state: State) -> Redis:
        redis: Redis = state.redis
        return redis

    # Written back only when changed: a page polling its state must not overwrite a flash
    # message (or a seat taken) that another request saved meanwhile.
    sessions = ChangedOnlySessionConfig(
        key=SESSION_COOKIE,
        httponly=True,
        samesite="lax",
        secure=settings.environment == "production",  # behind TLS; plain http in development
        max_age=12 * 3600,
        renew_on_access=True,
        # Probes and assets never touch the session store: /readyz must answer with Redis down.
        exclude=["^/healthz", "^/readyz", "^/metrics", "^/static/", "^/vendor/", "^/webhooks/"],
    )
    session_store = RedisStore(
        Redis.from_url(settings.required_redis_url),
        namespace="depotline:sessions",
        handle_client_shutdown=True,
    )

    def provide_providers(state: State) -> Providers:
        providers: Providers = state.providers
        return providers

    prometheus = PrometheusConfig(app_name="depotline", prefix="depotline", group_path=True)
    openapi = OpenAPIConfig(
        title="Depotline",
        version=__version__,
        path="/schema",
        render_plugins=[
            SwaggerRenderPlugin(
                js_url="/vendor/swagger-ui/swagger-ui-bundle.js",
                css_url="/vendor/swagger-ui/swagger-ui.css",
                standalone_preset_js_url="/vendor/swagger-ui/swagger-ui-standalone-preset.js",
                favicon="<link rel='icon' type='image/svg+xml' href='/static/favicon.svg'>",
            )
        ],
    )
    app = Litestar(
        route_handlers=[
            HealthController,
            HomeController,
            PrometheusController,
            TenantApi,
            PlatformApi,
            SeatApi,
            AuthPages,
            SsoPages,
            InvitationPages,
            AdminPages,
            SeatPages,
            PlatformPages,
            GatewayApi,
            GatewayPages,
            ContactCenterPages,
            IvrPages,
            ConsolePages,
            DeskPages,
            FloorApi,
            CustomersApi,
            CustomerPages,
            PickupApi,
            PickupPages,
            NotificationApi,
            NotificationPages,
            TrackingPages,
            WebhookRoutes,
            create_static_files_router(
                path="/static", directories=[settings.frontend_dir / "static"], name="static"
            ),
            create_static_files_router(
                path="/vendor/swagger-ui",
                directories=[SWAGGER_UI_ASSETS],
                name="swagger-ui",
                include_in_schema=False,
            ),
        ],
        dependencies={
            "db": Provide(provide_db, sync_to_thread=False),
            "redis": Provide(provide_redis, sync_to_thread=False),
            "settings": Provide(lambda: settings, sync_to_thread=False),
            "providers": Provide(provide_providers, sync_to_thread=False),
        },
        stores={"sessions": session_store},
        state=State({"resolve_principal": resolve_principal}),
        middleware=[sessions.middleware, authentication_middleware, prometheus.middleware],
        before_request=check_request,
        on_startup=[open_connections],
        on_shutdown=[close_connections],
        exception_handlers={
            DomainError: domain_error_handler,
            HTTPException: http_exception_handler,
            Exception: unhandled_exception_handler,
        },
        template_config=TemplateConfig(
            engine=JinjaTemplateEngine.from_environment(template_environment(settings))
        ),
        openapi_config=openapi,
        logging_config=None,
        debug=False,
    )
    # Outside Litestar's router, so that even a 404 for an unknown path carries a request id and
    # is answered in the caller's language (route middleware runs only for routes that exist).
    app.asgi_handler = request_id_middleware(
        i18n.locale_middleware(settings.default_locale)(app.asgi_handler)
    )
    return app


def create_worker(settings: Settings | None = None, *, burst: bool = False) -> Worker:
    settings = settings or get_settings()
    configure_logging(settings.log_level, settings.log_format)

    async def add_providers(ctx: dict[str, Any]) -> None:
        realtime.announce_commits(ctx["db"], ctx["redis"])
        ctx["providers"] = Providers(
            settings.session_secret(),
            settings.public_url,
            ctx["redis"],
            contact_center_voice.answer,
        )

    return build_worker(
        settings,
        functions=JOB_FUNCTIONS,
        handlers=OUTBOX_HANDLERS,
        burst=burst,
        on_startup=add_providers,
    )
