"""OpenID Connect sign-in against a tenant's identity provider: authorization code + PKCE (S256).

This module only speaks the protocol. The tenant domain owns the per-tenant settings (issuer,
client id, client secret) and decides which user an `OidcIdentity` belongs to. The flow:

    url, login_state = await begin_login(config, redirect_uri)
    session["oidc"] = login_state.to_dict()      # server-side session: it holds the PKCE verifier
    # ... redirect the browser to `url`; the provider sends it back to `redirect_uri` ...
    login_state = LoginState.from_dict(session.pop("oidc"))   # one use only
    identity = await complete_login(config, login_state, request.query_params)

Discovery and the provider's keys are fetched on every call (no cache), so a provider that
rotates its signing key is followed at once; a sign-in is rare enough for that to be cheap.
Every refusal is an `OidcError` whose message says what went wrong and what to do about it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import quote

import httpx
from authlib.common.security import is_secure_transport  # type: ignore[import-untyped]
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri  # type: ignore[import-untyped]
from authlib.oauth2.rfc7636 import create_s256_code_challenge  # type: ignore[import-untyped]
from joserfc import jwt
from joserfc.errors import (
    BadSignatureError,
    ClaimError,
    ExpiredTokenError,
    InvalidKeyIdError,
    JoseError,
    MissingClaimError,
    UnsupportedAlgorithmError,
)
from joserfc.jwk import KeySet, KeySetSerialization

__all__ = [
    "LoginState",
    "OidcClientConfig",
    "OidcError",
    "OidcIdentity",
    "begin_login",
    "complete_login",
    "discover",
]

HTTP_TIMEOUT = 10.0
# Clock skew tolerated on exp/iat/nbf between us and the provider.
CLOCK_LEEWAY_SECONDS = 60
# Signature algorithms an ID token may use. Asymmetric only: "none" is never acceptable, and HS*
# would make the client secret a signing key (we do not support that registration option).
SUPPORTED_SIGNING_ALGORITHMS = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
)
DEFAULT_SCOPES = ("openid", "email", "profile")


class OidcError(Exception):
    """The sign-in was refused; the message says why and what to do about it."""


@dataclass(frozen=True)
class OidcClientConfig:
    """One tenant's registration at its identity provider."""

    issuer: str
    client_id: str
    client_secret: str
    scopes: tuple[str, ...] = DEFAULT_SCOPES


@dataclass(frozen=True)
class LoginState:
    """What must survive between the redirect to the provider and the callback.

    Keep it server-side (the code verifier is a secret) and use it once.
    """

    state: str
    nonce: str
    code_verifier: str
    redirect_uri: str

    def to_dict(self) -> dict[str, str]:
        return {
            "state": self.state,
            "nonce": self.nonce,
            "code_verifier": self.code_verifier,
            "redirect_uri": self.redirect_uri,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LoginState:
        values: dict[str, str] = {}
        for name in ("state", "nonce", "code_verifier", "redirect_uri"):
            value = data.get(name)
            if not isinstance(value, str) or not value:
                raise OidcError(
                    f"the saved sign-in state has no {name}; the session was lost or altered, "
                    "start the sign-in again"
                )
            values[name] = value
        return cls(**values)


@dataclass(frozen=True)
class OidcIdentity:
    """Who the provider says signed in. (issuer, subject) is the stable key for a person;
    the email can change at the provider and is only trustworthy when `email_verified`."""

    issuer: str
    subject: str
    email: str | None
    email_verified: bool
    name: str | None


async def discover(issuer: str, *, http: httpx.AsyncClient | None = None) -> dict[str, Any]:
    """The provider's discovery document, checked to belong to `issuer`."""
    _require_secure_url(issuer, "issuer")
    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    async with _client(http) as client:
        metadata = await _get_json(client, url, "discovery document")
    # OpenID Connect Discovery 1.0 §4.3: the document must name exactly the issuer it was
    # fetched for, or a provider could speak for another.
    advertised = metadata.get("issuer")
    if advertised != issuer:
        raise OidcError(
            f"the discovery document at {url} names the issuer {advertised!r}, but the "
            f"configured issuer is {issuer!r}; set the issuer to exactly the provider's value"
        )
    for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        value = metadata.get(name)
        if not isinstance(value, str) or not value:
            raise OidcError(f"the discovery document at {url} has no {name}")
        _require_secure_url(value, name)
    return metadata


async def begin_login(
    config: OidcClientConfig, redirect_uri: str, *, http: httpx.AsyncClient | None = None
) -> tuple[str, LoginState]:
    """The URL to send the browser to, and the state to keep for `complete_login`."""
    _require_secure_url(redirect_uri, "redirect_uri")
    metadata = await discover(config.issuer, http=http)
    login_state = LoginState(
        state=secrets.token_urlsafe(32),
        nonce=secrets.token_urlsafe(32),
        # 64 characters of [A-Za-z0-9_-]: inside RFC 7636's 43..128 unreserved characters.
        code_verifier=secrets.token_urlsafe(48),
        redirect_uri=redirect_uri,
    )
    scopes = config.scopes if "openid" in config.scopes else ("openid", *config.scopes)
    url = prepare_grant_uri(
        metadata["authorization_endpoint"],
        client_id=config.client_id,
        response_type="code",
        redirect_uri=redirect_uri,
        scope=" ".join(scopes),
        state=login_state.state,
        nonce=login_state.nonce,
        code_challenge=create_s256_code_challenge(login_state.code_verifier),
        code_challenge_method="S256",
    )
    return str(url), login_state


async def complete_login(
    config: OidcClientConfig,
    login_state: LoginState,
    callback_params: Mapping[str, str],
    *,
    http: httpx.AsyncClient | None = None,
) -> OidcIdentity:
    """Check the provider's callback, redeem the code and return the verified identity."""
    error = callback_params.get("error")
    if error:
        description = callback_params.get("error_description")
        detail = f" ({description})" if description else ""
        raise OidcError(f"provider returned error: {error}{detail}")
    # The state binds the callback to the browser session that started the sign-in (CSRF).
    if not _same(callback_params.get("state"), login_state.state):
        raise OidcError(
            "state does not match: this callback does not belong to the sign-in started in "
            "this browser session (it may have been started again in another tab); start the "
            "sign-in again"
        )
    # RFC 9207: a provider that names itself in the callback must be the one we sent the user to.
    returned_issuer = callback_params.get("iss")
    if returned_issuer is not None and returned_issuer != config.issuer:
        raise OidcError(
            f"the callback comes from issuer {returned_issuer!r}, not the configured "
            f"{config.issuer!r}; start the sign-in again"
        )
    code = callback_params.get("code")
    if not code:
        raise OidcError(
            "the provider's callback has no authorization code; start the sign-in again"
        )

    async with _client(http) as client:
        metadata = await discover(config.issuer, http=client)
        tokens = await _redeem_code(client, metadata, config, login_state, code)
        id_token = tokens.get("id_token")
        if not isinstance(id_token, str) or not id_token:
            raise OidcError(
                "the token response has no ID token; the provider did not treat this as an "
                "OpenID Connect sign-in (check that the client may use the 'openid' scope)"
            )
        keys = await _provider_keys(client, metadata["jwks_uri"])
    claims = _verify_id_token(id_token, keys, metadata, config, login_state, tokens)

    email = claims.get("email")
    name = claims.get("name")
    # Some providers send email_verified as the string "true".
    verified = claims.get("email_verified")
    return OidcIdentity(
        issuer=claims["iss"],
        subject=claims["sub"],
        email=email if isinstance(email, str) and email else None,
        email_verified=verified is True or verified == "true",
        name=name if isinstance(name, str) and name else None,
    )


@asynccontextmanager
async def _client(http: httpx.AsyncClient | None) -> AsyncIterator[httpx.AsyncClient]:
    if http is not None:
        yield http
        return
    async with httpx.AsyncClient(timeout=HTTP_TIMEOUT) as client:
        yield client


def _require_secure_url(url: str, what: str) -> None:
    # Plain http would let anyone on the path swap the keys or read the code; authlib allows it
    # only for loopback addresses (local development and tests).
    if not is_secure_transport(url):
        raise OidcError(f"the {what} {url!r} must be an https URL")


def _same(received: str | None, expected: str) -> bool:
    return received is not None and hmac.compare_digest(received.encode(), expected.encode())


async def _get_json(client: httpx.AsyncClient, url: str, what: str) -> dict[str, Any]:
    try:
        response = await client.get(url, headers={"Accept": "application/json"})
    except httpx.HTTPError as exc:
        raise OidcError(f"could not fetch the provider's {what} from {url}: {exc!r}") from exc
    if response.status_code != 200:
        raise OidcError(f"the provider's {what} at {url} answered HTTP {response.status_code}")
    return _json_object(response, f"the provider's {what} at {url}")


def _json_object(response: httpx.Response, what: str) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError as exc:
        raise OidcError(f"{what} is not JSON (HTTP {response.status_code})") from exc
    if not isinstance(body, dict):
        raise OidcError(f"{what} is not a JSON object")
    return body


async def _redeem_code(
    client: httpx.AsyncClient,
    metadata: Mapping[str, Any],
    config: OidcClientConfig,
    login_state: LoginState,
    code: str,
) -> dict[str, Any]:
    url: str = metadata["token_endpoint"]
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": login_state.redirect_uri,
        # PKCE: only the party that started the sign-in knows the verifier behind the challenge.
        "code_verifier": login_state.code_verifier,
    }
    headers = {"Accept": "application/json"}
    # Discovery 1.0: without the field the provider supports client_secret_basic.
    methods = metadata.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
    if "client_secret_basic" in methods:
        # RFC 6749 §2.3.1: id and secret are form-encoded before the Basic encoding.
        pair = f"{quote(config.client_id, safe='')}:{quote(config.client_secret, safe='')}"
        headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
    elif "client_secret_post" in methods:
        form["client_id"] = config.client_id
        form["client_secret"] = config.client_secret
    else:
        raise OidcError(
            "the provider's token endpoint accepts neither client_secret_basic nor "
            f"client_secret_post (it offers {methods!r}); Depotline cannot authenticate to it"
        )
    try:
        response = await client.post(url, data=form, headers=headers)
    except httpx.HTTPError as exc:
        raise OidcError(f"could not reach the provider's token endpoint {url}: {exc!r}") from exc
    body = _json_object(response, f"the token endpoint's answer (HTTP {response.status_code})")
    if response.status_code != 200 or "error" in body:
        error = body.get("error", f"HTTP {response.status_code}")
        description = body.get("error_description")
        detail = f" ({description})" if description else ""
        hint = (
            "; check the client id and secret"
            if error == "invalid_client"
            else "; start the sign-in again"
        )
        raise OidcError(f"the provider refused to redeem the code: {error}{detail}{hint}")
    return body


async def _provider_keys(client: httpx.AsyncClient, jwks_uri: str) -> KeySet:
    document = await _get_json(client, jwks_uri, "signing keys (JWKS)")
    try:
        return KeySet.import_key_set(cast(KeySetSerialization, document))
    except (JoseError, KeyError, TypeError, ValueError) as exc:
        raise OidcError(f"the provider's JWKS at {jwks_uri} holds no usable key") from exc


def _signing_algorithms(metadata: Mapping[str, Any]) -> list[str]:
    advertised = metadata.get("id_token_signing_alg_values_supported") or ["RS256"]
    algorithms = [alg for alg in SUPPORTED_SIGNING_ALGORITHMS if alg in advertised]
    if not algorithms:
        raise OidcError(
            f"the provider signs ID tokens only with {advertised!r}; Depotline accepts "
            f"{', '.join(SUPPORTED_SIGNING_ALGORITHMS)} (configure RS256 at the provider)"
        )
    return algorithms


def _verify_id_token(
    id_token: str,
    keys: KeySet,
    metadata: Mapping[str, Any],
    config: OidcClientConfig,
    login_state: LoginState,
    tokens: Mapping[str, Any],
) -> dict[str, Any]:
    # OpenID Connect Core 1.0 §3.1.3.7, in its order: signature, iss, aud/azp, exp/iat, nonce.
    algorithms = _signing_algorithms(metadata)
    try:
        token = jwt.decode(id_token, keys, algorithms=algorithms)
    except BadSignatureError as exc:
        raise OidcError(
            "ID token signature invalid: no key the provider publishes signed it; the token "
            "was forged or altered"
        ) from exc
    except InvalidKeyIdError as exc:
        raise OidcError(
            "ID token signature invalid: it names a signing key the provider does not publish"
        ) from exc
    except UnsupportedAlgorithmError as exc:
        raise OidcError(
            f"ID token signature invalid: signed with an algorithm outside {algorithms!r}"
        ) from exc
    except (JoseError, ValueError) as exc:
        raise OidcError(f"ID token could not be read: {exc}") from exc
    claims = token.claims

    registry = jwt.JWTClaimsRegistry(
        leeway=CLOCK_LEEWAY_SECONDS,
        iss={"essential": True, "value": config.issuer},
        sub={"essential": True},
        aud={"essential": True, "value": config.client_id},
        exp={"essential": True},
        iat={"essential": True},
    )
    try:
        registry.validate(claims)
    except ExpiredTokenError as exc:
        raise OidcError(
            "ID token has expired; start the sign-in again (if this repeats, check that this "
            "server's clock is right)"
        ) from exc
    except MissingClaimError as exc:
        raise OidcError(f"ID token lacks the required claim(s) {exc.claim}") from exc
    except ClaimError as exc:
        raise OidcError(_claim_problem(exc.claim, claims, config)) from exc

    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    azp = claims.get("azp")
    if (azp is not None or len(audiences) > 1) and azp != config.client_id:
        raise OidcError(
            f"ID token was issued to client {azp!r}, not to this client {config.client_id!r}"
        )
    # The nonce binds the ID token to this sign-in, so a token captured elsewhere is no use.
    nonce = claims.get("nonce")
    if not isinstance(nonce, str) or not _same(nonce, login_state.nonce):
        raise OidcError(
            "nonce mismatch: the ID token was not issued for this sign-in (a replayed or "
            "injected token); start the sign-in again"
        )
    at_hash = claims.get("at_hash")
    access_token = tokens.get("access_token")
    if (
        isinstance(at_hash, str)
        and isinstance(access_token, str)
        and not _same(at_hash, _half_hash(access_token, token.header["alg"]))
    ):
        raise OidcError("ID token does not match the access token issued with it (at_hash)")
    return claims


def _claim_problem(claim: str, claims: Mapping[str, Any], config: OidcClientConfig) -> str:
    if claim == "iss":
        return (
            f"ID token issuer {claims.get('iss')!r} is not the configured issuer {config.issuer!r}"
        )
    if claim == "aud":
        return (
            f"ID token is not meant for this client: its audience {claims.get('aud')!r} does "
            f"not contain the client id {config.client_id!r}"
        )
    if claim in ("iat", "nbf"):
        return f"ID token claim {claim} lies in the future; check that this server's clock is right"
    return f"ID token claim {claim} is invalid"


def _half_hash(value: str, alg: str) -> str:
    # OpenID Connect Core 1.0 §3.1.3.6: left half of the alg's SHA-2 digest, base64url.
    digest = hashlib.new(f"sha{alg[2:]}", value.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode()
