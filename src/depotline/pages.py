"""Helpers every domain's pages share: rendering with the session's CSRF token and messages,
reading forms, and running a form's action with its outcome shown on the next page."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from litestar import Request
from litestar.response import Redirect, Template

from depotline.auth import new_csrf_token
from depotline.errors import DomainError, NotFound

Req = Request[Any, Any, Any]


def flash(request: Req, message: str, kind: str = "ok") -> None:
    request.session.setdefault("flash", []).append({"kind": kind, "message": message})


def refused(request: Req, exc: DomainError) -> None:
    """The rule an action broke, for the next page, in the reader's language (`DomainError`)."""
    request.session.setdefault("flash", []).append(
        {"kind": "error", "message": exc.template, "params": exc.params, "terms": exc.terms}
    )


def csrf(request: Req) -> str:
    token = request.session.get("csrf")
    if not token:
        token = request.session["csrf"] = new_csrf_token()
    return str(token)


def render(request: Req, template: str, status_code: int = 200, **context: Any) -> Template:
    messages = request.session.pop("flash", []) if request.session else []
    principal = request.scope.get("user")
    return Template(
        template_name=template,
        context={
            "principal": principal,
            "csrf_value": csrf(request),
            "flashes": messages,
            **context,
        },
        status_code=status_code,
    )


async def form_of(request: Req) -> dict[str, str]:
    form = await request.form()
    return {key: str(value) for key, value in form.items()}


async def attempt(
    request: Req, action: Callable[[], Awaitable[Any]], success: str, to: str
) -> Redirect:
    """Run a form's action; show its outcome (or the rule it broke) on the page we go back to."""
    try:
        await action()
    except NotFound:
        raise  # someone else's (or no) record: the 404 page, exactly as for a link to it
    except DomainError as exc:
        refused(request, exc)
    else:
        flash(request, success)
    return Redirect(path=to)
