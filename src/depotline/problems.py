"""Errors as RFC 9457 problem details (application/problem+json), never with a stack trace.

Pages that a browser asks for get the same facts as an HTML page in the site's layout.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import structlog
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.response import Template
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

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
