"""The Kannel provider against real daemons: bearerbox, smsbox and fakesmsc (tests/kannel.py)."""

from __future__ import annotations

import asyncio
import socket
import threading
import uuid
from collections.abc import Iterator
from dataclasses import replace
from functools import partial
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import pytest

from telephony_gateway.commands import SendSms
from telephony_gateway.events import SmsReceived, SmsState, SmsStatus
from telephony_gateway.providers.base import (
    CarrierRefused,
    InboundRequest,
    OutcomeUnknown,
    SmsProvider,
    WebhookProvider,
)
from telephony_gateway.providers.kannel import (
    KannelSms,
    kannel_inbound_url,
    kannel_status_url,
)
from tests.kannel import (
    Kannel,
    MtMessage,
    kannel_fixture,  # noqa: F401 - registers the `kannel` fixture
)

TENANT = "7f1c2d9e-0000-4000-8000-000000000001"
SHORT_CODE = "10690000"
CUSTOMER = "+8613800138000"
ENGLISH = "Your parcel SF123 was picked up. Reply STOP to opt out."
CHINESE = "您的包裹已揽收，单号 SF123。回复退订停止接收"


def _message_id() -> str:
    return f"msg-{uuid.uuid4()}"


async def _send(kannel: Kannel, body: str) -> str:
    message_id = _message_id()
    status_url = kannel_status_url(kannel.receiver_url, TENANT, message_id, kannel.webhook_secret)
    receipt = await kannel.provider().send_sms(
        SendSms(message_id, SHORT_CODE, CUSTOMER, body), status_url
    )
    assert receipt.provider_message_id == message_id
    assert receipt.state is SmsState.QUEUED
    return message_id


def _dlrs_for(kannel: Kannel, message_id: str) -> list[InboundRequest]:
    return [r for r in kannel.received_dlrs() if r.query.get("mid") == message_id]


def _reports(kannel: Kannel, message_id: str, count: int) -> list[InboundRequest]:
    found = _dlrs_for(kannel, message_id)
    return found if len(found) >= count else []


def _with_query(request: InboundRequest, **changes: str) -> InboundRequest:
    """The same request with query parameters changed (`plus_name=...` appends another one)."""
    parts = urlsplit(request.url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    for name, value in changes.items():
        if name.startswith("plus_"):
            pairs.append((name.removeprefix("plus_"), value))
        else:
            pairs = [(k, value if k == name else v) for k, v in pairs]
    query = urlencode(pairs)
    return replace(
        request, url=urlunsplit(parts._replace(query=query)), query=dict(parse_qsl(query))
    )


async def test_english_and_chinese_sms_reach_the_network_and_report_back(kannel: Kannel) -> None:
    provider = kannel.provider()
    english_id = await _send(kannel, ENGLISH)
    chinese_id = await _send(kannel, CHINESE)

    # Both reached the network whole: the English one as GSM-7 text, the Chinese one as UCS-2.
    def both_at_the_network() -> list[MtMessage]:
        found = [m for m in kannel.mt_messages() if m.text in (ENGLISH, CHINESE)]
        return found if len(found) == 2 else []

    mt = await kannel.wait_for(both_at_the_network, "both messages at fakesmsc")
    by_text = {m.text: m for m in mt}
    assert by_text[ENGLISH].coding == "text"
    assert by_text[CHINESE].coding == "ucs-2"
    assert {(m.sender, m.receiver) for m in mt} == {(SHORT_CODE, CUSTOMER)}

    # The fake SMSC acknowledges the submit (DLR 8, "ACK/") and then reports delivery (DLR 1).
    for message_id in (english_id, chinese_id):
        reports = await kannel.wait_for(
            partial(_reports, kannel, message_id, 2), f"two delivery reports for {message_id}"
        )
        assert all(provider.verify(r) for r in reports)
        events = [e for r in reports for e in provider.parse("sms-status", r)]
        assert all(isinstance(e, SmsStatus) for e in events)
        statuses = [e for e in events if isinstance(e, SmsStatus)]
        assert {e.message_id for e in statuses} == {message_id}
        assert sorted(e.state for e in statuses) == sorted([SmsState.SENT, SmsState.DELIVERED])
        assert all(e.provider == "kannel" and e.error_code is None for e in statuses)
        assert {r.query["type"] for r in reports} == {"8", "1"}
        assert next(r for r in reports if r.query["type"] == "8").query["reply"] == "ACK/"
        # One event id per report, and the same one when Kannel retries the same report.
        ids = [e.provider_event_id for e in statuses]
        assert len(set(ids)) == 2
        again = [e.provider_event_id for r in reports for e in provider.parse("sms-status", r)]
        assert again == ids
    # Nothing more: no duplicate report for either message.
    await asyncio.sleep(0.3)
    assert len(_dlrs_for(kannel, english_id)) == len(_dlrs_for(kannel, chinese_id)) == 2


@pytest.mark.parametrize(
    "text",
    [
        "Where is my parcel  SF123? 10:00 ok",  # two spaces: kept (%b, not %a)
        "退订",
        CHINESE,
        "Café à 5€ {ok}",  # GSM-7 characters outside ASCII, sent as UCS-2 by the handset
    ],
)
async def test_inbound_sms_arrives_intact(kannel: Kannel, text: str) -> None:
    provider = kannel.provider()
    request = await kannel.send_mo("8613900139000", SHORT_CODE, text)
    assert provider.verify(request)
    events = provider.parse("sms", request)
    assert len(events) == 1
    event = events[0]
    assert isinstance(event, SmsReceived)
    assert (event.from_number, event.to_number, event.body) == ("8613900139000", SHORT_CODE, text)
    assert event.provider == "kannel"
    assert event.provider_event_id and event.message_id == event.provider_event_id
    # A retried delivery of the same request is the same event.
    assert provider.parse("sms", request)[0].provider_event_id == event.provider_event_id


async def test_inbound_ucs2_text_arrives_as_utf16_bytes(kannel: Kannel) -> None:
    """Kannel passes UCS-2 text on as UTF-16BE bytes (charset=UTF-16BE): a framework's UTF-8
    decoding of the query mangles it, so the provider reads the raw URL."""
    request = await kannel.send_mo("8613900139000", SHORT_CODE, "退订")
    assert (request.query["coding"], request.query["charset"]) == ("2", "UTF-16BE")
    assert request.query["text"] != "退订"
    assert "text=%90%00%8B%A2" in request.url


async def test_forged_status_requests_fail_verify(kannel: Kannel) -> None:
    provider = kannel.provider()
    first, second = await _send(kannel, "first"), await _send(kannel, "second")
    genuine = await kannel.wait_for(lambda: _dlrs_for(kannel, first), "a delivery report")
    genuine_request = genuine[0]
    assert provider.verify(genuine_request)

    other_url = kannel_status_url(kannel.receiver_url, TENANT, second, kannel.webhook_secret)
    other_token = dict(parse_qsl(urlsplit(other_url).query))["sig"]
    inbound_token = dict(parse_qsl(urlsplit(kannel_inbound_url(kannel.receiver_url, b"x")).query))
    assert "sig" in inbound_token

    forged = [
        _with_query(genuine_request, sig="0" * 64),  # a wrong token
        _with_query(genuine_request, sig=""),
        _with_query(genuine_request, mid=second),  # this token, another message
        _with_query(genuine_request, sig=other_token),  # another message's token
        _with_query(genuine_request, tenant="someone-else"),  # another tenant
        _with_query(genuine_request, plus_mid=second),  # a second mid appended
        _with_query(genuine_request, sig="签名"),
    ]
    for request in forged:
        assert not provider.verify(request), request.url
    # Another secret (another carrier account) does not accept it either.
    stranger = KannelSms(
        sendsms_url=kannel.sendsms_url,
        username=kannel.username,
        password=kannel.password,
        webhook_secret=b"another secret",
    )
    assert not stranger.verify(genuine_request)
    # The inbound URL's token does not open the status endpoint.
    inbound = await kannel.send_mo("8613900139000", SHORT_CODE, "hello")
    inbound_sig = inbound.query["sig"]
    assert not provider.verify(_with_query(genuine_request, sig=inbound_sig))
    # Kannel's own fields are not covered (it cannot sign them), ours are.
    assert provider.verify(_with_query(genuine_request, reply="anything"))


async def test_wrong_credentials_are_refused_for_good(kannel: Kannel) -> None:
    provider = kannel.provider(password="not-the-password")
    command = SendSms(_message_id(), SHORT_CODE, CUSTOMER, "hello")
    with pytest.raises(CarrierRefused) as refused:
        await provider.send_sms(command, "")
    assert refused.value.retryable is False
    assert refused.value.error_code == "403"
    assert "Authorization failed" in str(refused.value)


async def test_bad_request_is_refused_for_good(kannel: Kannel) -> None:
    command = SendSms(_message_id(), SHORT_CODE, "not-a-number", "hello")
    with pytest.raises(CarrierRefused) as refused:
        await kannel.provider().send_sms(command, "")
    assert (refused.value.retryable, refused.value.error_code) == (False, "400")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_kannel_down_is_retryable() -> None:
    provider = KannelSms(
        sendsms_url=f"http://127.0.0.1:{_closed_port()}/cgi-bin/sendsms",
        username="u",
        password="p",
        webhook_secret=b"s",
    )
    with pytest.raises(CarrierRefused) as refused:
        await provider.send_sms(SendSms(_message_id(), SHORT_CODE, CUSTOMER, "hello"), "")
    assert refused.value.retryable is True


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP server on 127.0.0.1 that reads the request and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    accepted: list[socket.socket] = []

    def accept() -> None:
        try:
            while True:
                accepted.append(server.accept()[0])
        except OSError:
            pass

    threading.Thread(target=accept, daemon=True).start()
    yield server.getsockname()[1]
    server.close()
    for conn in accepted:
        conn.close()


async def test_no_answer_is_outcome_unknown(silent_server: int) -> None:
    provider = KannelSms(
        sendsms_url=f"http://127.0.0.1:{silent_server}/cgi-bin/sendsms",
        username="u",
        password="p",
        webhook_secret=b"s",
        timeout=0.5,
    )
    with pytest.raises(OutcomeUnknown):
        await provider.send_sms(SendSms(_message_id(), SHORT_CODE, CUSTOMER, "hello"), "")


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (202, "0: Accepted for delivery", "ok"),
        (202, "3: Queued for later delivery", "ok"),
        (503, "Temporal failure, try again later.", "retry"),
        (403, "Authorization failed for sendsms", "refused"),
        (400, "Missing receiver number, rejected", "refused"),
        (504, "Gateway Timeout", "unknown"),
    ],
)
async def test_sendsms_answers(status: int, body: str, expected: str) -> None:
    """Kannel's documented answers (503 cannot be provoked from a real smsbox here: without
    bearerbox it shuts its HTTP port, which is the connection-refused case)."""
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(status, text=body)

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        provider = KannelSms(
            sendsms_url="http://127.0.0.1:13013/cgi-bin/sendsms",
            username="u",
            password="p",
            webhook_secret=b"s",
            smsc_id="smpp1",
            client=client,
        )
        message_id = _message_id()
        status_url = kannel_status_url("https://depotline.test", TENANT, message_id, b"s")
        command = SendSms(message_id, SHORT_CODE, CUSTOMER, CHINESE)
        if expected == "ok":
            receipt = await provider.send_sms(command, status_url)
            assert receipt.provider_message_id == message_id
        elif expected == "unknown":
            with pytest.raises(OutcomeUnknown):
                await provider.send_sms(command, status_url)
        else:
            with pytest.raises(CarrierRefused) as refused:
                await provider.send_sms(command, status_url)
            assert refused.value.retryable is (expected == "retry")
            assert refused.value.error_code == str(status)
    sent = seen[0]
    assert sent.method == "POST" and not sent.url.query  # no password in the URL
    assert sent.content.decode() == CHINESE
    assert sent.headers["content-type"] == "text/plain; charset=UTF-8"
    assert (sent.headers["x-kannel-username"], sent.headers["x-kannel-password"]) == ("u", "p")
    assert sent.headers["x-kannel-coding"] == "2" and sent.headers["x-kannel-smsc"] == "smpp1"
    assert sent.headers["x-kannel-dlr-mask"] == "31"
    assert sent.headers["x-kannel-dlr-url"].endswith("&type=%d&reply=%A&at=%T&smsc=%i")
    assert f"mid={message_id}" in sent.headers["x-kannel-dlr-url"]


def test_dlr_url_doubles_our_percent_signs() -> None:
    """Kannel expands %X anywhere in a dlr-url (%C is the charset): ours must be %%."""
    provider = KannelSms(sendsms_url="http://x", username="u", password="p", webhook_secret=b"s")
    status_url = kannel_status_url("https://depotline.test", "tenant/é", "m 1", b"s")
    headers = provider.sendsms_headers(SendSms("m 1", "Depot", CUSTOMER, "Café"), status_url)
    assert headers["X-Kannel-Coding"] == "0"  # é is GSM-7
    assert "tenant=tenant%%2F%%C3%%A9" in headers["X-Kannel-DLR-Url"]
    assert "mid=m+1" in headers["X-Kannel-DLR-Url"]
    with pytest.raises(ValueError, match="another message"):
        provider.sendsms_headers(SendSms("m 2", "Depot", CUSTOMER, "x"), status_url)
    for bad in ("1 2", "", "１３８"):  # a list of receivers, none, not ASCII
        with pytest.raises(CarrierRefused):
            provider.sendsms_headers(SendSms("m 1", "Depot", bad, "x"), status_url)


@pytest.mark.parametrize(
    ("dlr_type", "reply", "state", "error_code"),
    [
        (
            "1",
            "id:abc sub:001 dlvrd:001 submit date:2601011200 stat:DELIVRD err:000",
            "delivered",
            None,
        ),
        (
            "2",
            "id:abc sub:001 dlvrd:000 submit date:2601011200 stat:UNDELIV err:001",
            "undelivered",
            "001",
        ),
        ("4", "", "queued", None),
        ("8", "ACK/", "sent", None),
        ("16", "NACK/0x0000000b/Invalid Destination Address", "failed", "0x0000000b"),
    ],
)
def test_dlr_types_and_smsc_errors(
    dlr_type: str, reply: str, state: str, error_code: str | None
) -> None:
    provider = KannelSms(sendsms_url="http://x", username="u", password="p", webhook_secret=b"s")
    url = kannel_status_url("https://depotline.test", TENANT, "m1", b"s")
    url += "&" + urlencode({"type": dlr_type, "reply": reply, "at": "1767268800", "smsc": "s1"})
    request = InboundRequest(url=url, method="GET", headers={}, query={}, form={})
    assert provider.verify(request)
    (event,) = provider.parse("sms-status", request)
    assert isinstance(event, SmsStatus)
    assert (event.message_id, event.state, event.error_code) == ("m1", state, error_code)
    assert event.provider_event_id == f"m1:{dlr_type}"
    assert event.occurred_at.isoformat() == "2026-01-01T12:00:00+00:00"


def test_is_an_sms_and_webhook_provider() -> None:
    kannel = KannelSms(sendsms_url="http://x", username="u", password="p", webhook_secret=b"s")
    sms: SmsProvider = kannel
    webhooks: WebhookProvider = kannel
    assert sms.name == webhooks.name == "kannel"
