"""OpenID Connect sign-in against a real provider (authlib's server) over real HTTP."""

from __future__ import annotations

import dataclasses
import re
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from authlib.oauth2.rfc7636 import create_s256_code_challenge  # type: ignore[import-untyped]

from depotline.oidc import (
    LoginState,
    OidcError,
    OidcIdentity,
    begin_login,
    complete_login,
    discover,
)
from tests.oidc_provider import (
    DEFAULT_REDIRECT_URI,
    OidcProvider,
    ProviderUser,
    Tamper,
    oidc_provider_fixture,  # noqa: F401 - registers the `oidc_provider` fixture
)


async def follow_authorization(url: str) -> dict[str, str]:
    """What a browser does: open the authorization URL and read where the provider sends it."""
    async with httpx.AsyncClient() as browser:
        response = await browser.get(url)
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.startswith(DEFAULT_REDIRECT_URI + "?")
    return dict(parse_qsl(urlsplit(location).query))


async def sign_in(provider: OidcProvider) -> tuple[dict[str, str], LoginState]:
    url, login_state = await begin_login(provider.client_config(), DEFAULT_REDIRECT_URI)
    return await follow_authorization(url), login_state


async def test_sign_in_returns_the_providers_user(oidc_provider: OidcProvider) -> None:
    oidc_provider.user = ProviderUser(sub="agent-42", email="grace@example.com", name="Grace H")
    config = oidc_provider.client_config()

    url, login_state = await begin_login(config, DEFAULT_REDIRECT_URI)
    callback = await follow_authorization(url)
    assert callback["state"] == login_state.state
    identity = await complete_login(config, login_state, callback)

    assert identity == OidcIdentity(
        issuer=oidc_provider.issuer,
        subject="agent-42",
        email="grace@example.com",
        email_verified=True,
        name="Grace H",
    )
    # The provider saw PKCE S256 with the verifier's challenge, and the verifier at the exchange.
    (authorization,) = oidc_provider.authorization_requests
    assert authorization["response_type"] == "code"
    assert authorization["scope"] == "openid email profile"
    assert authorization["nonce"] == login_state.nonce
    assert authorization["code_challenge_method"] == "S256"
    assert authorization["code_challenge"] == create_s256_code_challenge(login_state.code_verifier)
    (exchange,) = oidc_provider.token_requests
    assert exchange["code_verifier"] == login_state.code_verifier
    assert "client_secret" not in exchange
    assert oidc_provider.token_auth_used == ["client_secret_basic"]


async def test_client_secret_post_when_that_is_all_the_provider_offers(
    oidc_provider: OidcProvider,
) -> None:
    oidc_provider.token_auth_methods = ("client_secret_post",)
    callback, login_state = await sign_in(oidc_provider)

    identity = await complete_login(oidc_provider.client_config(), login_state, callback)

    assert identity.subject == "user-0001"
    assert oidc_provider.token_auth_used == ["client_secret_post"]


async def test_login_state_survives_a_session_round_trip(oidc_provider: OidcProvider) -> None:
    callback, login_state = await sign_in(oidc_provider)
    saved = login_state.to_dict()
    assert all(isinstance(value, str) for value in saved.values())

    identity = await complete_login(
        oidc_provider.client_config(), LoginState.from_dict(saved), callback
    )

    assert identity.email == "ada@example.com"
    with pytest.raises(OidcError, match="no code_verifier"):
        LoginState.from_dict({k: v for k, v in saved.items() if k != "code_verifier"})


async def test_a_callback_with_another_state_is_refused(oidc_provider: OidcProvider) -> None:
    callback, login_state = await sign_in(oidc_provider)
    forged = {**callback, "state": "state-from-another-session"}

    with pytest.raises(OidcError, match="state does not match"):
        await complete_login(oidc_provider.client_config(), login_state, forged)
    without_state = {k: v for k, v in callback.items() if k != "state"}
    with pytest.raises(OidcError, match="state does not match"):
        await complete_login(oidc_provider.client_config(), login_state, without_state)
    # Refused before the code was spent.
    assert oidc_provider.token_requests == []


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (Tamper.NONCE, "nonce mismatch"),
        (Tamper.SIGNATURE, "ID token signature invalid"),
        (Tamper.AUDIENCE, "not meant for this client"),
        (Tamper.ISSUER, "is not the configured issuer"),
        (Tamper.EXPIRED, "ID token has expired"),
    ],
)
async def test_a_spoiled_id_token_is_refused(
    oidc_provider: OidcProvider, tamper: Tamper, message: str
) -> None:
    callback, login_state = await sign_in(oidc_provider)
    oidc_provider.tamper_next_id_token(tamper)

    with pytest.raises(OidcError, match=message):
        await complete_login(oidc_provider.client_config(), login_state, callback)


async def test_the_next_sign_in_after_a_spoiled_token_works(
    oidc_provider: OidcProvider,
) -> None:
    oidc_provider.tamper_next_id_token(Tamper.SIGNATURE)
    callback, login_state = await sign_in(oidc_provider)
    with pytest.raises(OidcError):
        await complete_login(oidc_provider.client_config(), login_state, callback)

    callback, login_state = await sign_in(oidc_provider)
    identity = await complete_login(oidc_provider.client_config(), login_state, callback)
    assert identity.subject == "user-0001"


async def test_a_denied_sign_in_reports_the_providers_error(oidc_provider: OidcProvider) -> None:
    oidc_provider.user = None  # the user refuses at the provider
    callback, login_state = await sign_in(oidc_provider)
    assert callback["error"] == "access_denied"
    assert callback["state"] == login_state.state

    with pytest.raises(OidcError, match="provider returned error: access_denied"):
        await complete_login(oidc_provider.client_config(), login_state, callback)


async def test_pkce_the_code_is_useless_without_the_right_verifier(
    oidc_provider: OidcProvider,
) -> None:
    callback, login_state = await sign_in(oidc_provider)
    stolen = dataclasses.replace(login_state, code_verifier="x" * 64)

    with pytest.raises(OidcError, match=r"invalid_grant \(Code challenge failed\.\)"):
        await complete_login(oidc_provider.client_config(), stolen, callback)
    assert oidc_provider.token_requests[0]["code_verifier"] == "x" * 64


async def test_a_code_is_redeemed_only_once(oidc_provider: OidcProvider) -> None:
    callback, login_state = await sign_in(oidc_provider)
    await complete_login(oidc_provider.client_config(), login_state, callback)

    with pytest.raises(OidcError, match="invalid_grant"):
        await complete_login(oidc_provider.client_config(), login_state, callback)


async def test_a_wrong_client_secret_says_to_check_the_credentials(
    oidc_provider: OidcProvider,
) -> None:
    callback, login_state = await sign_in(oidc_provider)
    config = dataclasses.replace(oidc_provider.client_config(), client_secret="wrong")

    with pytest.raises(OidcError, match=r"invalid_client.*check the client id and secret"):
        await complete_login(config, login_state, callback)


async def test_discovery_must_name_the_configured_issuer(oidc_provider: OidcProvider) -> None:
    metadata = await discover(oidc_provider.issuer)
    assert metadata["token_endpoint"] == f"{oidc_provider.issuer}/token"

    oidc_provider.discovery_overrides["issuer"] = "https://impostor.example"
    with pytest.raises(OidcError, match=re.escape("names the issuer 'https://impostor.example'")):
        await discover(oidc_provider.issuer)
    with pytest.raises(OidcError, match="names the issuer"):
        await begin_login(oidc_provider.client_config(), DEFAULT_REDIRECT_URI)


async def test_an_unregistered_redirect_uri_gets_no_code(oidc_provider: OidcProvider) -> None:
    other = "https://elsewhere.example/callback"
    url, _ = await begin_login(oidc_provider.client_config(), other)

    async with httpx.AsyncClient() as browser:
        response = await browser.get(url)

    # Never redirected to an unregistered address: the provider answers itself.
    assert response.status_code == 400
    assert "location" not in response.headers
    assert oidc_provider.codes == {}


async def test_plain_http_is_refused_off_loopback(oidc_provider: OidcProvider) -> None:
    with pytest.raises(OidcError, match="must be an https URL"):
        await begin_login(oidc_provider.client_config(), "http://depotline.example/callback")
    with pytest.raises(OidcError, match="must be an https URL"):
        await discover("http://idp.example")


async def test_an_unreachable_provider_is_named(oidc_provider: OidcProvider) -> None:
    oidc_provider.stop()
    with pytest.raises(OidcError, match="could not fetch the provider's discovery document"):
        await begin_login(oidc_provider.client_config(), DEFAULT_REDIRECT_URI)
