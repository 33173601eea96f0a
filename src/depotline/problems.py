"""Errors as RFC 9457 problem details (application/problem+json), never with a stack trace.

Pages that a browser asks for get the same facts as an HTML page in the site's layout.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any
from urllib.parse import quote

import structlog
from litestar import Request, Response
from litestar.exceptions import HTTPException, NotAuthorizedException, ValidationException
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

from depotline.errors import DomainError

PROBLEM_JSON = "application/problem+json"
log = structlog.get_logger(__name__)


def _wants_html(request: Request[Any, Any, Any]) -> bool:
    if request.url.path.startswith(("/api/", "/webhooks/", "/schema")):
        return False
    return "text/html" in request.headers.get("accept", "")


def problem_response(
    request: Request[Any, Any, Any],
    status: int,
    title: str,
    detail: str,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response[Any]:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
        "request_id": request.scope.get("state", {}).get("request_id"),
    }
    if extra:
        body.update(extra)
    if _wants_html(request):
        return Template(
            template_name="error.html",
            context={"problem": body},
            status_code=status,
            headers=headers,
        )
    return Response(content=body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def http_exception_handler(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    if isinstance(exc, NotAuthorizedException) and _wants_html(request):
        # A browser that is not signed in goes to the sign-in page and comes back afterwards.
        return Redirect(path=f"/auth/sign-in?next={quote(request.url.path)}")
    extra: dict[str, Any] = {}
    detail = exc.detail
    if isinstance(exc, ValidationException):
        # Name every field that is wrong, where it came from and why.
        errors = exc.extra if isinstance(exc.extra, list) else []
        extra["errors"] = [
            {"field": e.get("key"), "source": e.get("source"), "message": e.get("message")}
            for e in errors
            if isinstance(e, dict)
        ]
        fields = ", ".join(str(e["field"]) for e in extra["errors"] if e["field"])
        if fields:
            detail = f"Invalid input: {fields}"
    elif isinstance(exc.extra, dict):
        extra.update(exc.extra)
    title = _title(exc.status_code)
    return problem_response(request, exc.status_code, title, detail, extra, exc.headers)


def domain_error_handler(request: Request[Any, Any, Any], exc: DomainError) -> Response[Any]:
    extra = {"errors": [{"field": exc.field, "message": exc.detail}]} if exc.field else None
    return problem_response(request, exc.status, _title(exc.status), exc.detail, extra)


def unhandled_exception_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.error("unhandled error", path=request.url.path, exc_info=exc)
    return problem_response(
        request,
        HTTP_500_INTERNAL_SERVER_ERROR,
        "Internal Server Error",
        "Something went wrong on our side. Quote the request id when reporting it.",
    )


def _title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
