"""A local stand-in for the parts of Twilio's REST API (2010-04-01) Depotline calls.

Served over HTTP by uvicorn on 127.0.0.1 (a free port) in a background thread. Like Twilio it
answers JSON resources (sid, status, error_code ...), refuses bad credentials (HTTP basic,
AccountSid:AuthToken) with error 20003, and refuses bad requests with Twilio's error body:
{"code": 21211, "message": ..., "more_info": "https://www.twilio.com/docs/errors/21211",
"status": 400}.

    POST /2010-04-01/Accounts/{AccountSid}/Messages.json                   send an SMS
    POST /2010-04-01/Accounts/{AccountSid}/Calls.json                      place a call
    POST /2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json            update a live call
    POST /2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}/Recordings.json start recording
    POST .../Calls/{CallSid}/Recordings/{Sid or Twilio.CURRENT}.json       pause/resume/stop

A test uses it through the fixture (register it with
`from tests.twilio_fake import twilio_fake_fixture  # noqa: F401`):

    twilio_fake.base_url, twilio_fake.account_sid, twilio_fake.auth_token
    twilio_fake.fail_next(429, 20429, "Too Many Requests")   # the next request only
    twilio_fake.delay_next(2.0)    # take the next request, answer it 2 s later
    call_sid = twilio_fake.live_call()                       # an answered inbound call
    twilio_fake.requests[-1].form["To"]                      # what was sent
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
import socket
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from dataclasses import dataclass, field
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qsl

import pytest
import uvicorn

from depotline.db import utcnow

API_VERSION = "2010-04-01"
E164 = re.compile(r"^\+[1-9]\d{6,14}$")
ROUTE = re.compile(r"^/2010-04-01/Accounts/(?P<account>[^/]+)/(?P<rest>.+)$")
CALL = re.compile(r"^Calls/(?P<call>CA[0-9a-f]{32})\.json$")
RECORDINGS = re.compile(r"^Calls/(?P<call>CA[0-9a-f]{32})/Recordings\.json$")
RECORDING = re.compile(r"^Calls/(?P<call>CA[0-9a-f]{32})/Recordings/(?P<sid>[^/]+)\.json$")
RECORDING_UPDATES = frozenset({"paused", "in-progress", "stopped"})

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def new_sid(prefix: str) -> str:
    return prefix + uuid.uuid4().hex


def rfc2822_now() -> str:
    return format_datetime(utcnow())


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    #: The form as sent: a repeated parameter (StatusCallbackEvent) keeps every value.
    params: dict[str, list[str]]
    #: The username of the request's basic auth (None without one).
    auth_user: str | None
    authenticated: bool

    @property
    def form(self) -> dict[str, str]:
        """Each parameter's first value."""
        return {key: values[0] for key, values in self.params.items()}


@dataclass(frozen=True)
class Failure:
    status: int
    code: int
    message: str


class TwilioError(Exception):
    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass
class TwilioFake:
    account_sid: str = field(default_factory=lambda: new_sid("AC"))
    auth_token: str = field(default_factory=lambda: uuid.uuid4().hex)
    base_url: str = ""
    requests: list[RecordedRequest] = field(default_factory=list)
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: dict[str, dict[str, Any]] = field(default_factory=dict)
    recordings: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: The TwiML (or URL) each live call was redirected to, in order.
    call_instructions: dict[str, list[str]] = field(default_factory=dict)
    _failures: list[Failure] = field(default_factory=list)
    _delays: list[float] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: uvicorn.Server | None = None
    _thread: threading.Thread | None = None

    # -- test controls -----------------------------------------------------------------------

    def fail_next(self, status: int, code: int, message: str = "") -> None:
        """Answer the next authenticated request with this Twilio error, taking nothing."""
        with self._lock:
            self._failures.append(Failure(status, code, message or f"Error {code}"))

    def delay_next(self, seconds: float) -> None:
        """Take the next request (the message is sent) but answer only after `seconds`."""
        with self._lock:
            self._delays.append(seconds)

    def live_call(self, from_number: str = "+85291234567", to_number: str = "+85230001000") -> str:
        """An inbound call in progress, as Twilio has it once it has been answered."""
        sid = new_sid("CA")
        self.calls[sid] = self._call_resource(sid, from_number, to_number, "inbound")
        self.calls[sid]["status"] = "in-progress"
        return sid

    # -- serving -----------------------------------------------------------------------------

    def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            interface="asgi3",
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the Twilio fake did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
        self._server = None
        self._thread = None

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            event = await receive()
            body += event.get("body", b"")
            if not event.get("more_body"):
                break
        params: dict[str, list[str]] = {}
        for key, value in parse_qsl(body.decode(), keep_blank_values=True):
            params.setdefault(key, []).append(value)
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        user, password = _basic_auth(headers.get("authorization"))
        authenticated = user == self.account_sid and password == self.auth_token
        path: str = scope["path"]
        self.requests.append(RecordedRequest(scope["method"], path, params, user, authenticated))
        delay = 0.0
        try:
            if not authenticated:
                raise TwilioError(401, 20003, "Authenticate")
            with self._lock:
                failure = self._failures.pop(0) if self._failures else None
                delay = self._delays.pop(0) if self._delays else 0.0
            if failure is not None:
                raise TwilioError(failure.status, failure.code, failure.message)
            status, resource = self._handle(scope["method"], path, params)
        except TwilioError as error:
            status, resource = error.status, _error_body(error)
        if delay:
            await asyncio.sleep(delay)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json; charset=utf-8")],
            }
        )
        await send({"type": "http.response.body", "body": json.dumps(resource).encode()})

    # -- the API -----------------------------------------------------------------------------

    def _handle(
        self, method: str, path: str, params: dict[str, list[str]]
    ) -> tuple[int, dict[str, Any]]:
        route = ROUTE.match(path)
        if route is None or route["account"] != self.account_sid:
            raise TwilioError(404, 20404, f"The requested resource {path} was not found")
        if method != "POST":
            raise TwilioError(405, 20004, "Method not allowed")
        form = {key: values[0] for key, values in params.items()}
        rest = route["rest"]
        if rest == "Messages.json":
            return 201, self._create_message(form)
        if rest == "Calls.json":
            return 201, self._create_call(form)
        if match := CALL.match(rest):
            return 200, self._update_call(self._live(match["call"], path), form)
        if match := RECORDINGS.match(rest):
            return 201, self._start_recording(self._live(match["call"], path), form)
        if match := RECORDING.match(rest):
            return 200, self._update_recording(match["call"], match["sid"], form, path)
        raise TwilioError(404, 20404, f"The requested resource {path} was not found")

    def _create_message(self, form: dict[str, str]) -> dict[str, Any]:
        to, from_, body = form.get("To"), form.get("From"), form.get("Body")
        if not to:
            raise TwilioError(400, 21604, "A 'To' phone number is required.")
        if not from_:
            raise TwilioError(400, 21603, "A 'From' phone number is required.")
        if not body:
            raise TwilioError(400, 21602, "Message body is required.")
        if not E164.match(to):
            raise TwilioError(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        sid = new_sid("SM")
        now = rfc2822_now()
        message = {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": body,
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": from_,
            "messaging_service_sid": None,
            "num_media": "0",
            "num_segments": "1",
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": "queued",
            "subresource_uris": {"media": f"{self._uri('Messages', sid)[:-5]}/Media.json"},
            "to": to,
            "uri": self._uri("Messages", sid),
        }
        self.messages[sid] = message
        return message

    def _create_call(self, form: dict[str, str]) -> dict[str, Any]:
        to, from_ = form.get("To"), form.get("From")
        if not to:
            raise TwilioError(400, 21201, "No 'To' number is specified")
        if not from_:
            raise TwilioError(400, 21213, "No 'From' number is specified")
        if not (form.get("Url") or form.get("Twiml") or form.get("ApplicationSid")):
            raise TwilioError(400, 21205, "Url parameter is required.")
        if to.startswith("+") and not E164.match(to):
            raise TwilioError(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        sid = new_sid("CA")
        self.calls[sid] = self._call_resource(sid, from_, to, "outbound-api")
        return self.calls[sid]

    def _call_resource(self, sid: str, from_: str, to: str, direction: str) -> dict[str, Any]:
        now = rfc2822_now()
        return {
            "account_sid": self.account_sid,
            "answered_by": None,
            "api_version": API_VERSION,
            "caller_name": None,
            "date_created": now,
            "date_updated": now,
            "direction": direction,
            "duration": None,
            "end_time": None,
            "forwarded_from": None,
            "from": from_,
            "from_formatted": from_,
            "parent_call_sid": None,
            "phone_number_sid": None,
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "start_time": None,
            "status": "queued",
            "subresource_uris": {"recordings": f"{self._uri('Calls', sid)[:-5]}/Recordings.json"},
            "to": to,
            "to_formatted": to,
            "uri": self._uri("Calls", sid),
        }

    def _live(self, call_sid: str, path: str) -> dict[str, Any]:
        call = self.calls.get(call_sid)
        if call is None:
            raise TwilioError(404, 20404, f"The requested resource {path} was not found")
        if call["status"] != "in-progress":
            raise TwilioError(400, 21220, "Call is not in-progress. Cannot redirect.")
        return call

    def _update_call(self, call: dict[str, Any], form: dict[str, str]) -> dict[str, Any]:
        if form.get("Status") in ("completed", "canceled"):
            call["status"] = form["Status"]
        elif form.get("Twiml") or form.get("Url"):
            self.call_instructions.setdefault(call["sid"], []).append(
                form.get("Twiml") or form["Url"]
            )
        else:
            raise TwilioError(400, 20001, "Url, Twiml or Status is required")
        call["date_updated"] = rfc2822_now()
        return call

    def _start_recording(self, call: dict[str, Any], form: dict[str, str]) -> dict[str, Any]:
        sid = new_sid("RE")
        now = rfc2822_now()
        recording = {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "call_sid": call["sid"],
            "channels": 1,
            "conference_sid": None,
            "date_created": now,
            "date_updated": now,
            "duration": "-1",
            "error_code": None,
            "price": None,
            "price_unit": None,
            "sid": sid,
            "source": "StartCallRecording",
            "start_time": now,
            "status": "in-progress",
            "track": form.get("RecordingTrack", "both"),
            "uri": f"{self._uri('Calls', call['sid'])[:-5]}/Recordings/{sid}.json",
        }
        self.recordings[sid] = recording
        return recording

    def _update_recording(
        self, call_sid: str, sid: str, form: dict[str, str], path: str
    ) -> dict[str, Any]:
        status = form.get("Status")
        if status not in RECORDING_UPDATES:
            raise TwilioError(400, 20001, "Status must be paused, in-progress or stopped")
        if sid == "Twilio.CURRENT":
            current = [
                r
                for r in self.recordings.values()
                if r["call_sid"] == call_sid and r["status"] in ("in-progress", "paused")
            ]
            recording = current[-1] if current else None
        else:
            recording = self.recordings.get(sid)
        if recording is None or recording["call_sid"] != call_sid:
            raise TwilioError(404, 20404, f"The requested resource {path} was not found")
        recording["status"] = status
        recording["date_updated"] = rfc2822_now()
        return recording

    def _uri(self, collection: str, sid: str) -> str:
        return f"/{API_VERSION}/Accounts/{self.account_sid}/{collection}/{sid}.json"


def _basic_auth(header: str | None) -> tuple[str | None, str | None]:
    if not header or not header.lower().startswith("basic "):
        return None, None
    try:
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None, None
    return user, password


def _error_body(error: TwilioError) -> dict[str, Any]:
    return {
        "code": error.code,
        "message": error.message,
        "more_info": f"https://www.twilio.com/docs/errors/{error.code}",
        "status": error.status,
    }


@pytest.fixture(name="twilio_fake")
def twilio_fake_fixture() -> Iterator[TwilioFake]:
    fake = TwilioFake()
    fake.start()
    yield fake
    fake.stop()
