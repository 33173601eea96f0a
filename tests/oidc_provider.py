"""A real OpenID provider for tests: authlib's authorization server, served over HTTP.

authlib's AuthorizationServer + AuthorizationCodeGrant with CodeChallenge(required=True) and
OpenIDCode, wired to a small Litestar app and run by uvicorn on 127.0.0.1 (a free port) in a
background thread. Clients, codes and tokens live in memory. /authorize has no login form: it
signs in `provider.user` at once (or, with `user = None`, answers access_denied).

A test configures it through the fixture:

    oidc_provider.client = RegisteredClient(...)            # id, secret, redirect URIs
    oidc_provider.user = ProviderUser(sub=..., email=..., name=...)
    oidc_provider.tamper_next_id_token(Tamper.NONCE)        # the next ID token only
    oidc_provider.token_auth_methods = ("client_secret_post",)

Register the fixture (named `oidc_provider`) in a test module by importing it:
`from tests.oidc_provider import oidc_provider_fixture  # noqa: F401`.
"""

from __future__ import annotations

import hmac
import json
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import parse_qsl

import pytest
import uvicorn
from authlib.common.security import generate_token  # type: ignore[import-untyped]
from authlib.oauth2.rfc6749 import (  # type: ignore[import-untyped]
    AuthorizationServer,
    OAuth2Error,
    OAuth2Payload,
    OAuth2Request,
)
from authlib.oauth2.rfc6749.grants import (  # type: ignore[import-untyped]
    AuthorizationCodeGrant,
)
from authlib.oauth2.rfc6750 import BearerTokenGenerator  # type: ignore[import-untyped]
from authlib.oauth2.rfc7636 import CodeChallenge  # type: ignore[import-untyped]
from authlib.oidc.core import UserInfo  # type: ignore[import-untyped]
from authlib.oidc.core.grants import OpenIDCode  # type: ignore[import-untyped]
from joserfc.jwk import KeySet, RSAKey
from litestar import Litestar, Request, Response, get, post

from depotline.oidc import OidcClientConfig

SCOPES = ("openid", "email", "profile")
CODE_LIFETIME_SECONDS = 600
DEFAULT_REDIRECT_URI = "https://depotline.test/sso/callback"


@dataclass(frozen=True)
class RegisteredClient:
    client_id: str = "depotline"
    client_secret: str = "depotline-client-secret"
    redirect_uris: tuple[str, ...] = (DEFAULT_REDIRECT_URI,)


@dataclass(frozen=True)
class ProviderUser:
    sub: str = "user-0001"
    email: str = "ada@example.com"
    name: str = "Ada Lovelace"
    email_verified: bool = True


class Tamper(StrEnum):
    """What to spoil in the next ID token."""

    NONCE = "nonce"  # a nonce the client never sent
    SIGNATURE = "signature"  # signed by a key the provider does not publish (same kid)
    AUDIENCE = "audience"  # issued to another client
    ISSUER = "issuer"  # names another issuer
    EXPIRED = "expired"  # exp an hour ago


@dataclass
class AuthorizationCode:
    """A code as authlib's grants and OpenIDCode read it (AuthorizationCodeMixin)."""

    code: str
    client_id: str
    redirect_uri: str | None
    scope: str
    user: ProviderUser
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    auth_time: int = field(default_factory=lambda: int(time.time()))

    def get_redirect_uri(self) -> str | None:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.auth_time

    def get_acr(self) -> str | None:
        return None

    def get_amr(self) -> list[str] | None:
        return None

    def is_expired(self) -> bool:
        return time.time() > self.auth_time + CODE_LIFETIME_SECONDS


class OidcProvider:
    """The provider's state; every attribute may be changed by a test between requests."""

    def __init__(self) -> None:
        self.client = RegisteredClient()
        self.user: ProviderUser | None = ProviderUser()
        self.token_auth_methods: tuple[str, ...] = ("client_secret_basic", "client_secret_post")
        # Keys of the discovery document to replace (e.g. a wrong "issuer").
        self.discovery_overrides: dict[str, Any] = {}
        self.key_id = "provider-key-1"
        self.signing_key = RSAKey.generate_key(
            2048, parameters={"use": "sig", "alg": "RS256", "kid": self.key_id}
        )
        self.codes: dict[str, AuthorizationCode] = {}
        # What the provider received, for tests that check what the client sent.
        self.authorization_requests: list[dict[str, str]] = []
        self.token_requests: list[dict[str, str]] = []
        self.token_auth_used: list[str] = []
        self.issuer = ""
        self._tamper: Tamper | None = None
        self._server = _AuthorizationServer(self)
        self._uvicorn: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    # -- configuration ---------------------------------------------------------------------

    def tamper_next_id_token(self, tamper: Tamper) -> None:
        self._tamper = tamper

    def take_tamper(self) -> Tamper | None:
        tamper, self._tamper = self._tamper, None
        return tamper

    def client_config(self) -> OidcClientConfig:
        """The Depotline-side settings that match the registered client."""
        return OidcClientConfig(
            issuer=self.issuer,
            client_id=self.client.client_id,
            client_secret=self.client.client_secret,
        )

    # -- documents -------------------------------------------------------------------------

    def discovery_document(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "jwks_uri": f"{self.issuer}/jwks",
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": list(SCOPES),
            "token_endpoint_auth_methods_supported": list(self.token_auth_methods),
            "code_challenge_methods_supported": ["S256"],
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nonce", "email", "name"],
        }
        document.update(self.discovery_overrides)
        return document

    def public_keys(self) -> dict[str, Any]:
        return dict(KeySet([self.signing_key]).as_dict(private=False))

    # -- serving ---------------------------------------------------------------------------

    def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        self.issuer = f"http://127.0.0.1:{port}"
        config = uvicorn.Config(
            _asgi_app(self), log_level="warning", access_log=False, lifespan="off"
        )
        self._uvicorn = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._uvicorn.run, kwargs={"sockets": [sock]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._uvicorn.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test OpenID provider did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        if self._uvicorn is not None and self._thread is not None:
            self._uvicorn.should_exit = True
            self._thread.join(timeout=10)
        self._uvicorn = None
        self._thread = None

    # -- endpoints -------------------------------------------------------------------------

    def authorize(self, request: _HttpRequest) -> Response[bytes]:
        self.authorization_requests.append(dict(request.query))
        oauth_request = _OAuth2Request(request)
        try:
            grant = self._server.get_consent_grant(request=oauth_request, end_user=self.user)
        except OAuth2Error as error:
            response: Response[bytes] = self._server.handle_error_response(oauth_request, error)
            return response
        # No consent screen: the configured user approves at once; no user means "deny".
        approved: Response[bytes] = self._server.create_authorization_response(
            request=oauth_request, grant_user=self.user, grant=grant
        )
        return approved

    def token(self, request: _HttpRequest) -> Response[bytes]:
        self.token_requests.append(dict(request.form))
        response: Response[bytes] = self._server.create_token_response(_OAuth2Request(request))
        return response


@dataclass(frozen=True)
class _HttpRequest:
    """An HTTP request read in full, so authlib's synchronous code can use it."""

    method: str
    url: str
    headers: Mapping[str, str]
    query: Sequence[tuple[str, str]]
    form: Sequence[tuple[str, str]]


class _Payload(OAuth2Payload):  # type: ignore[misc]
    def __init__(self, pairs: Sequence[tuple[str, str]]) -> None:
        self._data: dict[str, str] = {}
        self._datalist: defaultdict[str, list[str]] = defaultdict(list)
        for key, value in pairs:
            self._data.setdefault(key, value)
            self._datalist[key].append(value)

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        return self._datalist


class _OAuth2Request(OAuth2Request):  # type: ignore[misc]
    def __init__(self, request: _HttpRequest) -> None:
        super().__init__(method=request.method, uri=request.url, headers=request.headers)
        self._args = dict(request.query)
        self._form = dict(request.form)
        self.payload = _Payload([*request.query, *request.form])

    @property
    def args(self) -> dict[str, str]:
        return self._args

    @property
    def form(self) -> dict[str, str]:
        return self._form


@dataclass(frozen=True)
class _ClientModel:
    """The registered client as authlib's ClientMixin."""

    registered: RegisteredClient
    token_auth_methods: tuple[str, ...]

    @property
    def client_id(self) -> str:
        return self.registered.client_id

    def get_client_id(self) -> str:
        return self.registered.client_id

    def get_default_redirect_uri(self) -> str | None:
        return self.registered.redirect_uris[0] if self.registered.redirect_uris else None

    def get_allowed_scope(self, scope: str | None) -> str:
        requested = (scope or "openid").split()
        return " ".join(s for s in requested if s in SCOPES)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.registered.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return hmac.compare_digest(client_secret.encode(), self.registered.client_secret.encode())

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return endpoint == "token" and method in self.token_auth_methods

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "authorization_code"


class _AuthorizationServer(AuthorizationServer):  # type: ignore[misc]
    def __init__(self, provider: OidcProvider) -> None:
        super().__init__(scopes_supported=list(SCOPES))
        self.provider = provider
        self.register_token_generator(
            "default", BearerTokenGenerator(lambda **_: generate_token(42))
        )
        self.register_grant(
            _CodeGrant, [CodeChallenge(required=True), _OpenIDCode(provider, require_nonce=True)]
        )

    def query_client(self, client_id: str) -> _ClientModel | None:
        if client_id != self.provider.client.client_id:
            return None
        return _ClientModel(self.provider.client, self.provider.token_auth_methods)

    def save_token(self, token: dict[str, Any], request: _OAuth2Request) -> None:
        self.provider.token_auth_used.append(request.auth_method)

    def create_oauth2_request(self, request: _OAuth2Request | _HttpRequest) -> _OAuth2Request:
        return request if isinstance(request, _OAuth2Request) else _OAuth2Request(request)

    def create_json_request(self, request: object) -> Any:
        raise NotImplementedError("the test provider has no JSON endpoints")

    def handle_response(
        self, status: int, body: Any, headers: Sequence[tuple[str, str]]
    ) -> Response[bytes]:
        content = body if isinstance(body, str) else json.dumps(body)
        return Response(content=content.encode(), status_code=status, headers=dict(headers))

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        # authlib signals are for framework hooks; nothing listens here.
        return None


class _CodeGrant(AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

    @property
    def provider(self) -> OidcProvider:
        provider: OidcProvider = self.server.provider
        return provider

    def save_authorization_code(self, code: str, request: _OAuth2Request) -> None:
        data = request.payload.data
        self.provider.codes[code] = AuthorizationCode(
            code=code,
            client_id=request.client.client_id,
            redirect_uri=data.get("redirect_uri"),
            scope=request.scope,
            user=request.user,
            nonce=data.get("nonce"),
            code_challenge=data.get("code_challenge"),
            code_challenge_method=data.get("code_challenge_method"),
        )

    def query_authorization_code(self, code: str, client: _ClientModel) -> AuthorizationCode | None:
        found = self.provider.codes.get(code)
        if found is None or found.client_id != client.client_id or found.is_expired():
            return None
        return found

    def delete_authorization_code(self, authorization_code: AuthorizationCode) -> None:
        self.provider.codes.pop(authorization_code.code, None)

    def authenticate_user(self, authorization_code: AuthorizationCode) -> ProviderUser:
        return authorization_code.user


class _OpenIDCode(OpenIDCode):  # type: ignore[misc]
    def __init__(self, provider: OidcProvider, *, require_nonce: bool) -> None:
        super().__init__(require_nonce=require_nonce)
        self.provider = provider
        self._tamper: Tamper | None = None
        self._rogue_key: RSAKey | None = None

    def encode_id_token(self, token: dict[str, Any], request: _OAuth2Request) -> str:
        self._tamper = self.provider.take_tamper()
        try:
            encoded: str = super().encode_id_token(token, request)
            return encoded
        finally:
            self._tamper = None

    def exists_nonce(self, nonce: str, request: _OAuth2Request) -> bool:
        return any(code.nonce == nonce for code in self.provider.codes.values())

    def resolve_client_private_key(self, client: _ClientModel) -> RSAKey:
        if self._tamper is Tamper.SIGNATURE:
            if self._rogue_key is None:
                # Same kid as the published key, so the client really checks the signature.
                self._rogue_key = RSAKey.generate_key(
                    2048, parameters={"kid": self.provider.key_id}
                )
            return self._rogue_key
        return self.provider.signing_key

    def get_client_algorithm(self, client: _ClientModel) -> str:
        return "RS256"

    def get_encode_header(self, client: _ClientModel) -> dict[str, str]:
        return {"alg": "RS256", "kid": self.provider.key_id}

    def get_client_claims(self, client: _ClientModel) -> dict[str, Any]:
        claims: dict[str, Any] = {"iss": self.provider.issuer, "aud": [client.get_client_id()]}
        if self._tamper is Tamper.ISSUER:
            claims["iss"] = "https://impostor.example"
        elif self._tamper is Tamper.AUDIENCE:
            claims["aud"] = ["some-other-client"]
        elif self._tamper is Tamper.EXPIRED:
            now = int(time.time())
            claims["iat"] = now - 7200
            claims["exp"] = now - 3600
        return claims

    def get_authorization_code_claims(
        self, authorization_code: AuthorizationCode
    ) -> dict[str, Any]:
        claims: dict[str, Any] = super().get_authorization_code_claims(authorization_code)
        if self._tamper is Tamper.NONCE:
            claims["nonce"] = "a-nonce-from-another-sign-in"
        return claims

    def generate_user_info(self, user: ProviderUser, scope: str) -> Any:
        info = UserInfo(
            sub=user.sub, name=user.name, email=user.email, email_verified=user.email_verified
        )
        return info.filter(scope)


def _asgi_app(provider: OidcProvider) -> Litestar:
    async def read(request: Request[Any, Any, Any]) -> _HttpRequest:
        body = await request.body()
        return _HttpRequest(
            method=request.method,
            url=str(request.url),
            headers=request.headers,
            query=parse_qsl(request.url.query, keep_blank_values=True),
            form=parse_qsl(body.decode(), keep_blank_values=True),
        )

    @get("/.well-known/openid-configuration")
    async def discovery() -> dict[str, Any]:
        return provider.discovery_document()

    @get("/jwks")
    async def jwks() -> dict[str, Any]:
        return provider.public_keys()

    @get("/authorize")
    async def authorize(request: Request[Any, Any, Any]) -> Response[bytes]:
        return provider.authorize(await read(request))

    @post("/token")
    async def token(request: Request[Any, Any, Any]) -> Response[bytes]:
        return provider.token(await read(request))

    return Litestar(
        route_handlers=[discovery, jwks, authorize, token],
        openapi_config=None,
        logging_config=None,
    )


@pytest.fixture(name="oidc_provider")
def oidc_provider_fixture() -> Iterator[OidcProvider]:
    """A running provider with a registered client (`provider.client_config()` matches it)."""
    provider = OidcProvider()
    provider.start()
    try:
        yield provider
    finally:
        provider.stop()


# The fixture is named `oidc_provider`; import `oidc_provider_fixture` so that test parameters
# called `oidc_provider` do not shadow the import (ruff F811). This alias serves plain imports.
oidc_provider = oidc_provider_fixture
