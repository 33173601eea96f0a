"""Business-rule errors raised by services (no HTTP there); `problems` turns them into 4xx."""

from __future__ import annotations


class Term(str):
    """A parameter of a refusal that is itself a word of the message catalogs (an order's
    status, say): pages translate it along with the message."""


class DomainError(Exception):
    """`detail` is English. With `params`, it is a message-catalog template (``%(name)s``):
    the API answers with it filled in English, pages show `template` translated and then
    filled, `Term` parameters translated too."""

    status = 400

    def __init__(self, detail: str, *, field: str | None = None, **params: str) -> None:
        self.template = detail
        self.params = {name: str(value) for name, value in params.items()}
        self.terms = sorted(name for name, value in params.items() if isinstance(value, Term))
        self.detail = detail % self.params if params else detail
        super().__init__(self.detail)
        self.field = field


class InvalidInput(DomainError):
    status = 400


class NotPermitted(DomainError):
    status = 403


class NotFound(DomainError):
    """Also what another tenant's record looks like: never 403, which would leak that it exists."""

    status = 404


class Conflict(DomainError):
    status = 409


class Gone(DomainError):
    status = 410


class TooManyAttempts(DomainError):
    status = 429
