"""Server-side sessions written back only when a request changed them.

Litestar's server-side backend stores the whole session on every response. A page that polls
(the agent desk asks for its state, the console refreshes) then writes back the copy it loaded
when it started, and a flash message, CSRF token or seat change saved by a form post in the
meantime is lost. Here the store is written only when the session differs from what this request
loaded; the cookie is still sent on every response, so its lifetime keeps being renewed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from litestar.connection import ASGIConnection
from litestar.datastructures import Cookie, MutableScopeHeaders
from litestar.middleware.session.server_side import (
    ServerSideSessionBackend,
    ServerSideSessionConfig,
)
from litestar.types import Empty, Message, ScopeSession
from litestar.utils.dataclass import extract_dataclass_items

#: Where a request keeps the serialised session it loaded (in the ASGI scope's state).
LOADED = "depotline.session_loaded"


class ChangedOnlySessionBackend(ServerSideSessionBackend):
    async def load_from_connection(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> dict[str, Any]:
        data = await super().load_from_connection(connection)
        # Serialised the way `store_in_message` serialises, so equal sessions compare equal.
        connection.scope.setdefault("state", {})[LOADED] = self.serialize_data(
            data, connection.scope
        )
        return data

    async def store_in_message(
        self,
        scope_session: ScopeSession,
        message: Message,
        connection: ASGIConnection[Any, Any, Any, Any],
    ) -> None:
        if scope_session is not Empty and connection.cookies.get(self.config.key):
            loaded = connection.scope.get("state", {}).get(LOADED)
            if (
                loaded is not None
                and self.serialize_data(scope_session, connection.scope) == loaded
            ):
                # Unchanged: nothing to write. The stored copy's lifetime was renewed when it
                # was read (renew_on_access); the cookie's is renewed by sending it again.
                await self._send_cookie_only(message, connection)
                return
        await super().store_in_message(scope_session, message, connection)

    async def _send_cookie_only(
        self, message: Message, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> None:
        headers = MutableScopeHeaders.from_message(message)
        params = dict(
            extract_dataclass_items(self.config, exclude_none=True, include=Cookie.__dict__.keys())
        )
        session_id = self.get_session_id(connection)
        headers.add(
            "Set-Cookie",
            Cookie(value=session_id, key=self.config.key, **params).to_header(header=""),
        )


@dataclass
class ChangedOnlySessionConfig(ServerSideSessionConfig):
    """`ServerSideSessionConfig` whose backend writes a session back only when it changed."""

    _backend_class = ChangedOnlySessionBackend
