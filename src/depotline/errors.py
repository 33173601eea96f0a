"""Business-rule errors raised by services (no HTTP there); `problems` turns them into 4xx."""

from __future__ import annotations


class DomainError(Exception):
    status = 400

    def __init__(self, detail: str, *, field: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
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
