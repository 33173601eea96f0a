"""Kannel (open-source SMS gateway) as an SMS provider.

Out: smsbox's sendsms HTTP interface, as a POST: the text is the body (text/plain;
charset=UTF-8), the rest X-Kannel headers (coding 2, UCS-2, when the text is not GSM-7), so the
password is in no URL (nor in httpx's or a proxy's request log). Kannel answers 202 "0: Accepted
for delivery" or 202 "3: Queued for later delivery" (no SMSC connected yet), 403 on bad
credentials, 400 on a bad request and 503 on a temporary failure. It returns no message id, so
Depotline's own message id is the provider's id, carried in the dlr-url so that every delivery
report maps back.

In: Kannel fetches the URLs Depotline gives it, filling in its escape codes: the dlr-url of each
message (DLR type %d, SMSC reply %A, time %T, SMSC id %i) and the sms-service get-url for MO
messages (%p from, %P to, %b the text as sent, %c coding, %C charset, %I Kannel's id, %T time).
Kannel cannot sign a request, so both URLs carry an HMAC token of ours over the parameters we
put in them (the kind of URL, the tenant and, for a status URL, the message id): a token for one
message is no good for another. Kannel fills the rest in, so the values it reports (the DLR type,
the text) are as trustworthy as the secrecy of the URL; use HTTPS between Kannel and Depotline.

Text arrives as Kannel had it: UTF-8 for GSM-7 and 8-bit messages, UTF-16BE bytes for UCS-2 ones
(Chinese), whatever alt-charset says. `parse` decodes the raw bytes of %b by %C, so it reads the
query from `InboundRequest.url` (still percent-encoded): a framework's decoded query has already
mangled UTF-16 bytes.
"""

from __future__ import annotations

import codecs
import hashlib
import hmac
import json
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from urllib.parse import unquote_to_bytes, urlencode, urlsplit

import httpx

from depotline.db import utcnow
from telephony_gateway.commands import SendSms
from telephony_gateway.events import CarrierEvent, SmsReceived, SmsState, SmsStatus
from telephony_gateway.providers.base import (
    CarrierRefused,
    InboundRequest,
    OutcomeUnknown,
    SmsReceipt,
)
from telephony_gateway.sms_encoding import is_gsm7

PROVIDER = "kannel"
STATUS_PATH = "/webhooks/kannel/sms-status"
INBOUND_PATH = "/webhooks/kannel/sms"

#: Every DLR type: 1 delivered, 2 undelivered, 4 buffered, 8 SMSC submit, 16 SMSC reject.
DLR_MASK = 31
DLR_STATES = {
    1: SmsState.DELIVERED,
    2: SmsState.UNDELIVERED,
    4: SmsState.QUEUED,
    8: SmsState.SENT,
    16: SmsState.FAILED,
}
#: Kannel's escape codes added to a status URL (dlr-url).
STATUS_ESCAPES = "type=%d&reply=%A&at=%T&smsc=%i"
#: Kannel's escape codes added to the inbound URL (sms-service get-url). %b, not %a: %a squeezes
#: spaces, which corrupts UTF-16 bytes (0x20 is half of many characters).
INBOUND_ESCAPES = "from=%p&to=%P&text=%b&coding=%c&charset=%C&id=%I&at=%T&smsc=%i"

# The parameters our token covers; Kannel never repeats a parameter, so a repeated one is forged.
_SIGNATURE = "sig"
_TENANT = "tenant"
_MESSAGE = "mid"
_SMPP_ERROR = re.compile(r"\berr:(\w+)")


def _token(secret: bytes, kind: str, tenant_id: str, message_id: str = "") -> str:
    subject = json.dumps(["kannel", kind, tenant_id, message_id], ensure_ascii=False)
    return hmac.new(secret, subject.encode(), hashlib.sha256).hexdigest()


def _kannel_literal(url: str) -> str:
    """`url` as Kannel must see it: it expands %X escapes anywhere in a URL and turns %% into %,
    so a percent-encoded character of ours (%C3...) must be doubled or it becomes an escape."""
    return url.replace("%", "%%")


def kannel_status_url(base_url: str, tenant_id: str, message_id: str, secret: bytes) -> str:
    """The status URL of one message, to hand to `KannelSms.send_sms` (which adds Kannel's
    escape codes to it and passes it on as the dlr-url)."""
    query = {
        _TENANT: tenant_id,
        _MESSAGE: message_id,
        _SIGNATURE: _token(secret, "sms-status", tenant_id, message_id),
    }
    return f"{base_url.rstrip('/')}{STATUS_PATH}?{urlencode(query)}"


def kannel_inbound_url(base_url: str, secret: bytes, *, tenant_id: str | None = None) -> str:
    """The get-url of Kannel's sms-service for inbound SMS, escape codes included: put it in
    kannel.conf as it is (`get-url = "..."`). With `tenant_id` the token covers the tenant too."""
    query = {_TENANT: tenant_id} if tenant_id is not None else {}
    query[_SIGNATURE] = _token(secret, "sms", tenant_id or "")
    url = f"{base_url.rstrip('/')}{INBOUND_PATH}?{urlencode(query)}"
    return f"{_kannel_literal(url)}&{INBOUND_ESCAPES}"


def _dlr_url(status_url: str, message_id: str) -> str:
    split = urlsplit(status_url)
    params = _parse_query(split.query) if split.query else {}
    given = params.get(_MESSAGE)
    if given is not None and given.decode("utf-8", "replace") != message_id:
        raise ValueError("the status URL belongs to another message")
    if given is None:
        separator = "&" if split.query else ("" if status_url.endswith("?") else "?")
        status_url = f"{status_url}{separator}{urlencode({_MESSAGE: message_id})}"
    return f"{_kannel_literal(status_url)}&{STATUS_ESCAPES}"


def _parse_query(query: str) -> dict[str, bytes]:
    """Raw values (bytes: Kannel's %b is not UTF-8 for UCS-2 text). Raises ValueError on a
    repeated parameter, which Kannel never sends."""
    params: dict[str, bytes] = {}
    for part in query.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        key = unquote_to_bytes(name.replace("+", " ")).decode("utf-8", "replace")
        if key in params:
            raise ValueError(f"parameter '{key}' is repeated")
        params[key] = unquote_to_bytes(value.replace("+", " "))
    return params


def _request_params(request: InboundRequest) -> dict[str, bytes]:
    query = urlsplit(request.url).query
    if query:
        return _parse_query(query)
    return {key: value.encode() for key, value in request.query.items()}


def _text(params: Mapping[str, bytes], key: str) -> str:
    value = params.get(key)
    if value is None:
        raise ValueError(f"Kannel request without '{key}'")
    return value.decode("utf-8", "replace")


def _decode_body(data: bytes, coding: str, charset: str) -> str:
    name = charset.strip().upper()
    if coding == "2" or name in {"UTF-16BE", "UCS-2", "UCS2", "UTF-16"}:
        return data.decode("utf-16-be", "replace")
    if name and name not in {"GSM", "BINARY"}:
        try:
            return data.decode(codecs.lookup(name).name, "replace")
        except LookupError:
            pass
    return data.decode("utf-8", "replace")


def _occurred_at(params: Mapping[str, bytes]) -> datetime | None:
    raw = params.get("at", b"").decode("ascii", "replace")
    try:
        return datetime.fromtimestamp(int(raw), UTC)
    except (ValueError, OverflowError, OSError):
        return None


def _error_code(reply: str) -> str | None:
    """The SMSC's error in a DLR: SMPP receipts say "... err:XXX ...", a rejected submit says
    "NACK/<code>/<text>"; 000 and an "ACK/" are no error."""
    if reply.startswith("NACK/"):
        code = reply.split("/", 2)[1]
        return code or None
    found = _SMPP_ERROR.search(reply)
    if found and found.group(1).strip("0"):
        return found.group(1)
    return None


class KannelSms:
    """SmsProvider and WebhookProvider for a Kannel smsbox."""

    name = PROVIDER

    def __init__(
        self,
        *,
        sendsms_url: str,
        username: str,
        password: str,
        webhook_secret: bytes,
        smsc_id: str | None = None,
        client: httpx.AsyncClient | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.sendsms_url = sendsms_url
        self.username = username
        self.password = password
        self.webhook_secret = webhook_secret
        self.smsc_id = smsc_id
        self.client = client
        self.timeout = timeout

    # -- out -----------------------------------------------------------------------------------

    def sendsms_headers(self, command: SendSms, status_url: str) -> dict[str, str]:
        """The X-Kannel headers of the sendsms POST for `command` (its body is the text)."""
        for number in (command.from_number, command.to_number):
            if not number or not number.isascii() or not number.isprintable():
                raise CarrierRefused(f"invalid number {number!r}", retryable=False)
        if any(ch.isspace() for ch in command.to_number):
            # Kannel reads a space in `to` as a list of receivers: one message id, one number.
            raise CarrierRefused(f"invalid number {command.to_number!r}", retryable=False)
        headers = {
            "Content-Type": "text/plain; charset=UTF-8",
            "X-Kannel-Username": self.username,
            "X-Kannel-Password": self.password,
            "X-Kannel-From": command.from_number,
            "X-Kannel-To": command.to_number,
            "X-Kannel-Coding": "0" if is_gsm7(command.body) else "2",
        }
        if self.smsc_id:
            headers["X-Kannel-SMSC"] = self.smsc_id
        if status_url:
            headers["X-Kannel-DLR-Mask"] = str(DLR_MASK)
            headers["X-Kannel-DLR-Url"] = _dlr_url(status_url, command.message_id)
        return headers

    async def send_sms(self, command: SendSms, status_url: str) -> SmsReceipt:
        headers = self.sendsms_headers(command, status_url)
        body = command.body.encode()
        try:
            if self.client is not None:
                response = await self.client.post(
                    self.sendsms_url, content=body, headers=headers, timeout=self.timeout
                )
            else:
                async with httpx.AsyncClient(timeout=self.timeout) as client:
                    response = await client.post(self.sendsms_url, content=body, headers=headers)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            # Nothing reached Kannel: safe to try again.
            raise CarrierRefused(f"Kannel unreachable: {exc!r}", retryable=True) from exc
        except httpx.TransportError as exc:
            # Sent, but no answer (a read timeout, a dropped connection): it may have gone out.
            raise OutcomeUnknown(f"no answer from Kannel: {exc!r}") from exc
        reply = response.text.strip()
        status = response.status_code
        if response.is_success:
            return SmsReceipt(provider_message_id=command.message_id, state=SmsState.QUEUED)
        if status in (502, 504):
            # A proxy in front of smsbox lost the answer; smsbox itself may have taken it.
            raise OutcomeUnknown(f"Kannel answered {status} through a gateway: {reply}")
        raise CarrierRefused(
            f"Kannel refused the message ({status}): {reply}",
            error_code=str(status),
            retryable=status >= 500 or status == 429,
        )

    # -- in ------------------------------------------------------------------------------------

    def verify(self, request: InboundRequest) -> bool:
        try:
            params = _request_params(request)
        except ValueError:
            return False
        path = urlsplit(request.url).path
        if path.endswith(STATUS_PATH):
            kind = "sms-status"
        elif path.endswith(INBOUND_PATH):
            kind = "sms"
        else:
            kind = "sms-status" if _MESSAGE in params else "sms"
        tenant = params.get(_TENANT, b"").decode("utf-8", "replace")
        if kind == "sms-status":
            message = params.get(_MESSAGE)
            if not message:
                return False
            expected = _token(self.webhook_secret, kind, tenant, message.decode("utf-8", "replace"))
        else:
            expected = _token(self.webhook_secret, kind, tenant)
        given = params.get(_SIGNATURE, b"")
        return hmac.compare_digest(given, expected.encode())

    def parse(self, kind: str, request: InboundRequest) -> Sequence[CarrierEvent]:
        params = _request_params(request)
        if kind == "sms-status":
            return self._status(params)
        if kind == "sms":
            return [self._inbound(params)]
        raise ValueError(f"Kannel sends no '{kind}' webhooks")

    def _status(self, params: Mapping[str, bytes]) -> list[CarrierEvent]:
        message_id = _text(params, _MESSAGE)
        dlr_type = _text(params, "type")
        state = DLR_STATES.get(int(dlr_type)) if dlr_type.isdigit() else None
        if state is None:
            return []  # a DLR type this version does not know: nothing to record
        reply = params.get("reply", b"").decode("utf-8", "replace")
        return [
            SmsStatus(
                provider=PROVIDER,
                # One report per type and message; a retried one is the same event.
                provider_event_id=f"{message_id}:{dlr_type}",
                message_id=message_id,
                state=state,
                error_code=_error_code(reply),
                occurred_at=_occurred_at(params) or utcnow(),
            )
        ]

    def _inbound(self, params: Mapping[str, bytes]) -> SmsReceived:
        raw = params.get("text", b"")
        body = _decode_body(
            raw,
            params.get("coding", b"").decode("ascii", "replace"),
            params.get("charset", b"").decode("ascii", "replace"),
        )
        from_number = _text(params, "from")
        to_number = _text(params, "to")
        event_id = params.get("id", b"").decode("utf-8", "replace")
        if not event_id:
            fingerprint = b"\0".join(
                [from_number.encode(), to_number.encode(), params.get("at", b""), raw]
            )
            event_id = hashlib.sha256(fingerprint).hexdigest()
        return SmsReceived(
            provider=PROVIDER,
            provider_event_id=event_id,
            message_id=event_id,
            from_number=from_number,
            to_number=to_number,
            body=body,
            occurred_at=_occurred_at(params) or utcnow(),
        )
