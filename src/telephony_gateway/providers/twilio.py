"""Twilio: voice through TwiML and the Calls API, SMS through the Messages API, webhooks signed
with the account's Auth Token (X-Twilio-Signature, checked by twilio's own RequestValidator).

REST calls go straight to the documented 2010-04-01 endpoints with httpx and HTTP basic auth
(AccountSid:AuthToken), so tests can point `api_base` at a local fake.

Webhooks Depotline mounts for a Twilio account, each handed to `parse(kind, request)` after
`verify(request)`: {webhook_base_url}/voice, /gather, /status, /recording, /sms, /sms-status;
and {webhook_base_url}/wait, answered with `wait_twiml(request)` (queue music).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
from twilio.request_validator import (  # type: ignore[import-untyped]
    SIGNATURE_HEADER,
    SIGNATURE_SETTINGS_HEADER,
    RequestValidator,
    get_signature_algorithm,
)
from twilio.twiml.voice_response import VoiceResponse  # type: ignore[import-untyped]

from telephony_gateway import events as ev
from telephony_gateway.commands import (
    Answer,
    Command,
    Conference,
    ConnectAgent,
    Enqueue,
    Gather,
    Hangup,
    Hold,
    Leave,
    Monitor,
    MonitorMode,
    Pause,
    PlaceCall,
    Play,
    Record,
    Recording,
    RecordingAction,
    Say,
    SendSms,
    Transfer,
    Unsupported,
)
from telephony_gateway.providers.base import (
    CarrierRefused,
    InboundRequest,
    OutcomeUnknown,
    SmsReceipt,
)

DEFAULT_API_BASE = "https://api.twilio.com"
API_VERSION = "2010-04-01"
XML = "application/xml"
#: Twilio's reference to a call's recording in progress, in place of a recording SID.
CURRENT_RECORDING = "Twilio.CURRENT"
#: A silent hold when neither the command nor the provider names hold music.
SILENT_HOLD_SECONDS = 600

#: Voices for the languages Depotline speaks; another language gets Twilio's default voice.
DEFAULT_VOICES = {
    "en-US": "Polly.Joanna",
    "cmn-CN": "Google.cmn-CN-Standard-A",
    "yue-HK": "Google.yue-HK-Standard-A",
}

#: Twilio's MessageStatus values on Depotline's five states; others (receiving...) say nothing.
SMS_STATES = {
    "accepted": ev.SmsState.QUEUED,
    "scheduled": ev.SmsState.QUEUED,
    "queued": ev.SmsState.QUEUED,
    "sending": ev.SmsState.QUEUED,
    "sent": ev.SmsState.SENT,
    "delivered": ev.SmsState.DELIVERED,
    "read": ev.SmsState.DELIVERED,
    "undelivered": ev.SmsState.UNDELIVERED,
    "failed": ev.SmsState.FAILED,
    "canceled": ev.SmsState.FAILED,
}

CALL_ENDED = frozenset({"completed", "busy", "no-answer", "failed", "canceled"})
RECORDING_STATUS = {
    RecordingAction.PAUSE: "paused",
    RecordingAction.RESUME: "in-progress",
    RecordingAction.STOP: "stopped",
}
E164 = re.compile(r"^\+[1-9]\d{6,14}$")
IDEMPOTENCY_HEADER = "I-Twilio-Idempotency-Token"


class TwilioProvider:
    """SmsProvider, WebhookProvider and VoiceProvider for one Twilio account."""

    name = "twilio"
    #: Commands answered with TwiML (`render`).
    renderable = frozenset(
        {
            "answer", "say", "play", "gather", "enqueue", "hold", "connect_agent", "transfer",
            "conference", "monitor", "hangup", "pause", "record", "leave",
        }
    )  # fmt: skip
    #: Everything it can carry out: TwiML, plus the REST ones (`execute`, `send_sms`).
    supported = renderable | {"recording", "place_call", "send_sms"}

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        *,
        api_base: str = DEFAULT_API_BASE,
        http: httpx.AsyncClient | None = None,
        webhook_base_url: str | None = None,
        webhook_signing_secret: str | None = None,
        hold_music_url: str | None = None,
        public_url: str | None = None,
    ) -> None:
        """`webhook_base_url` (e.g. https://depotline.example/webhooks/twilio; a query such as
        ?tenant=...&account=... stays on every URL) is where the webhooks above are mounted;
        without it TwiML names no callback URLs (a Gather then posts back to the document's own
        URL) and PlaceCall needs TwiML of its own.
        `webhook_signing_secret` is the secret of a Twilio SharedKey, for webhooks Twilio signs
        with one (they carry X-Twilio-Webhooks-Signature-Settings); others use the Auth Token.
        `public_url` (e.g. https://depotline.example) is the address Twilio calls: behind a
        proxy the request reaches us at another URL, and Twilio signed the public one."""
        self.public_url = public_url.rstrip("/") if public_url else None
        self.account_sid = account_sid
        self._auth_token = auth_token
        self._signing_secret = webhook_signing_secret
        self.api_base = api_base.rstrip("/")
        self.webhook_base_url = webhook_base_url or None
        self.hold_music_url = hold_music_url
        self._given_http = http
        self._made_http: httpx.AsyncClient | None = None

    @property
    def _http(self) -> httpx.AsyncClient:
        # Made on first use: a webhook (verify, parse, render) needs no HTTP client, and building
        # one (its TLS context) would cost more than answering the webhook.
        if self._given_http is not None:
            return self._given_http
        if self._made_http is None:
            self._made_http = httpx.AsyncClient(timeout=httpx.Timeout(15.0, connect=5.0))
        return self._made_http

    async def aclose(self) -> None:
        if self._made_http is not None:
            await self._made_http.aclose()

    async def __aenter__(self) -> TwilioProvider:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- SMS ---------------------------------------------------------------------------------

    async def send_sms(self, command: SendSms, status_url: str) -> SmsReceipt:
        form = {
            "To": command.to_number,
            "From": command.from_number,
            "Body": command.body,
            "StatusCallback": status_url,
        }
        message = await self._post("Messages.json", form)
        state = SMS_STATES.get(str(message.get("status")), ev.SmsState.QUEUED)
        return SmsReceipt(provider_message_id=_sid(message), state=state)

    # -- voice: REST -------------------------------------------------------------------------

    async def place_call(self, command: PlaceCall, *, twiml: str | None = None) -> str:
        """Start an outbound call; its TwiML comes from {webhook_base_url}/voice (Twilio asks
        when the callee answers), or is given. Returns the new call's SID."""
        form: dict[str, str | list[str]] = {"To": command.to_number, "From": command.from_number}
        if twiml is not None:
            form["Twiml"] = twiml
        elif self.webhook_base_url:
            form["Url"] = self._webhook("voice")
        else:
            raise ValueError("PlaceCall needs TwiML or a webhook_base_url for its voice webhook")
        if self.webhook_base_url:
            form["StatusCallback"] = self._webhook("status")
            form["StatusCallbackEvent"] = ["answered", "completed"]
        return _sid(await self._post("Calls.json", form))

    async def execute(self, call_id: str, command: Command) -> str:
        """Carry out `command` on the live call `call_id` through the REST API; returns the SID
        of the resource touched (the recording, the call, or the call placed).

        Recording start/pause/resume/stop use the call's Recordings (pause, resume and stop
        act on Twilio.CURRENT, the recording in progress). A TwiML command replaces what the
        call is doing (Calls/{sid}.json with Twiml): the call runs it, then ends unless it
        holds, queues, dials or gathers. PlaceCall places a new call (`call_id` is not used).
        A Monitor is TwiML for the supervisor's own call: `render` it there."""
        if isinstance(command, Recording):
            return await self._recording(call_id, command.action)
        if isinstance(command, PlaceCall):
            return await self.place_call(command)
        if isinstance(command, Monitor):
            raise ValueError("Monitor is rendered for the supervisor's call, not run on another")
        if isinstance(command, Answer):
            return call_id  # a live call is answered; empty TwiML would hang it up
        if command.name not in self.renderable:
            raise Unsupported(self.name, command)
        _, twiml = self.render([command])
        return _sid(await self._post(f"Calls/{call_id}.json", {"Twiml": twiml}))

    async def _recording(self, call_id: str, action: RecordingAction) -> str:
        if action is RecordingAction.START:
            form: dict[str, str | list[str]] = {}
            if self.webhook_base_url:
                form["RecordingStatusCallback"] = self._webhook("recording")
                form["RecordingStatusCallbackEvent"] = ["completed"]
            return _sid(await self._post(f"Calls/{call_id}/Recordings.json", form))
        path = f"Calls/{call_id}/Recordings/{CURRENT_RECORDING}.json"
        return _sid(await self._post(path, {"Status": RECORDING_STATUS[action]}))

    async def _post(self, path: str, form: Mapping[str, str | list[str]]) -> dict[str, Any]:
        """POST to the account's resource at `path`; the JSON resource, or the refusal.

        Refused before anything was sent (connection refused, no pooled connection), or
        answered 429 or 5xx: CarrierRefused(retryable=True). Any other 4xx (a bad number,
        bad credentials): CarrierRefused(retryable=False), error_code Twilio's code. A timeout
        or broken connection after sending, or a gateway timeout (504): OutcomeUnknown."""
        url = f"{self.api_base}/{API_VERSION}/Accounts/{self.account_sid}/{path}"
        try:
            response = await self._http.post(
                url,
                data=dict(form),
                auth=(self.account_sid, self._auth_token),
                headers={"Accept": "application/json"},
            )
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as error:
            raise CarrierRefused(f"Twilio unreachable: {error!r}", retryable=True) from error
        except httpx.TransportError as error:
            raise OutcomeUnknown(f"no answer from Twilio after sending: {error!r}") from error
        if response.is_success:
            try:
                resource = response.json()
            except ValueError as error:
                raise OutcomeUnknown(
                    f"Twilio answered {response.status_code} unreadably"
                ) from error
            if not isinstance(resource, dict):
                raise OutcomeUnknown(f"Twilio answered {response.status_code} unreadably")
            return resource
        if response.status_code == 504:
            raise OutcomeUnknown("Twilio's gateway timed out; the request may have been taken")
        code, message = _twilio_error(response)
        retryable = response.status_code == 429 or response.status_code >= 500
        raise CarrierRefused(
            f"Twilio refused ({response.status_code}, code {code}): {message}",
            error_code=code,
            retryable=retryable,
        )

    # -- voice: TwiML ------------------------------------------------------------------------

    def render(
        self, commands: Sequence[Command], *, action_url: str | None = None
    ) -> tuple[str, str]:
        """TwiML for `commands`. `action_url` is where a Gather posts the digits (default
        {webhook_base_url}/gather). Recording, PlaceCall and SendSms are REST, not TwiML:
        Unsupported here (see `execute`, `send_sms`)."""
        response = VoiceResponse()
        for command in commands:
            self._render_one(response, command, action_url)
        return XML, str(response.to_xml())

    def _render_one(self, response: Any, command: Command, action_url: str | None) -> None:
        if isinstance(command, Answer):
            return  # Twilio answers when it runs the first verb
        if isinstance(command, Say):
            _say(response, command)
        elif isinstance(command, Play):
            response.play(command.url)
        elif isinstance(command, Gather):
            gather = response.gather(
                input="dtmf",
                action=action_url or self._webhook_or_none("gather"),
                method="POST",
                timeout=command.timeout_seconds,
                finish_on_key=command.finish_on_key,
                num_digits=command.num_digits,
            )
            if isinstance(command.prompt, Say):
                _say(gather, command.prompt)
            elif isinstance(command.prompt, Play):
                gather.play(command.prompt.url)
        elif isinstance(command, Enqueue):
            wait_url = action = None
            with_music = {"music": command.music_url} if command.music_url else {}
            if command.music_url or (command.announcements and self.webhook_base_url):
                # waitUrl must answer TwiML, not audio: Depotline's /wait plays the music (and
                # says what the contact center has to say to a waiting caller).
                wait_url = self._webhook("wait", **with_music)
            if command.announcements and self.webhook_base_url:
                # Asked when the caller leaves the queue (a Leave, or the agent's call ended).
                action = self._webhook("queue-left")
            response.enqueue(command.queue, wait_url=wait_url, action=action)
        elif isinstance(command, Pause):
            response.pause(length=command.seconds)
        elif isinstance(command, Record):
            callbacks: dict[str, Any] = {}
            if self.webhook_base_url:
                # Both report the recording (the same RecordingSid, taken in once); the action's
                # empty answer then ends the call.
                callbacks = {
                    "action": self._webhook("recording"),
                    "recording_status_callback": self._webhook("recording"),
                    "recording_status_callback_event": "completed",
                }
            response.record(
                max_length=command.max_seconds,
                finish_on_key=command.finish_on_key,
                play_beep=command.beep,
                **callbacks,
            )
        elif isinstance(command, Leave):
            response.leave()
        elif isinstance(command, Hold):
            music = command.music_url or self.hold_music_url
            if music:
                response.play(music, loop=0)  # loop 0: until the call is redirected
            else:
                response.pause(length=SILENT_HOLD_SECONDS)
        elif isinstance(command, ConnectAgent):
            dial = response.dial(caller_id=command.caller_id)
            self._endpoint(dial, command.endpoint)
        elif isinstance(command, Transfer):
            self._endpoint(response.dial(), command.to)
        elif isinstance(command, Conference):
            response.dial().conference(command.room)
        elif isinstance(command, Monitor):
            # The supervisor's leg joins the room named by the agent's call: muted to listen;
            # coaching the agent's call (only the agent hears) to whisper; plainly to barge.
            response.dial().conference(
                command.call_id,
                muted=command.mode is MonitorMode.LISTEN,
                coach=command.call_id if command.mode is MonitorMode.WHISPER else None,
                beep=False,
                start_conference_on_enter=False,
                end_conference_on_exit=False,
            )
        elif isinstance(command, Hangup):
            response.hangup()
        else:
            raise Unsupported(self.name, command)

    def _endpoint(self, dial: Any, endpoint: str) -> None:
        """A phone number, a SIP address, or a Voice SDK client identity ("client:" optional)."""
        callbacks: dict[str, Any] = {}
        if self.webhook_base_url:
            callbacks = {
                "status_callback": self._webhook("status"),
                "status_callback_event": "answered completed",
            }
        if E164.match(endpoint):
            dial.number(endpoint, **callbacks)
        elif endpoint.startswith("sip:"):
            dial.sip(endpoint, **callbacks)
        else:
            dial.client(endpoint.removeprefix("client:"), **callbacks)

    def wait_twiml(
        self, request: InboundRequest, commands: Sequence[Command] = ()
    ) -> tuple[str, str]:
        """The answer to {webhook_base_url}/wait?music=...: what the contact center says to
        the waiting caller (`commands`), then the queue music once through, or a pause (Twilio
        asks again when it ends)."""
        response = VoiceResponse()
        for command in commands:
            self._render_one(response, command, None)
        if commands and isinstance(commands[-1], Hangup):
            return XML, str(response.to_xml())
        music = request.query.get("music")
        if music:
            response.play(music)
        else:
            response.pause(length=10)
        return XML, str(response.to_xml())

    # -- webhooks ----------------------------------------------------------------------------

    def verify(self, request: InboundRequest) -> bool:
        """True only for a request Twilio signed: X-Twilio-Signature over the full URL and the
        POST parameters, with the Auth Token (or the SharedKey secret the request names)."""
        signature = _header(request.headers, SIGNATURE_HEADER)
        if not signature:
            return False
        secret, algorithm = self._auth_token, None
        settings = _header(request.headers, SIGNATURE_SETTINGS_HEADER)
        if settings:
            if not self._signing_secret:
                return False
            secret, algorithm = self._signing_secret, get_signature_algorithm(settings)
        params = dict(request.form) if request.method.upper() == "POST" else {}
        validator = RequestValidator(secret)
        return any(
            validator.validate(url, params, signature, algorithm)
            for url in dict.fromkeys([self._public_request_url(request.url), request.url])
        )

    def _public_request_url(self, url: str) -> str:
        """The URL Twilio called, as Twilio signed it: the request's path and query under
        `public_url` (a proxy in front of Depotline changes scheme, host and port)."""
        if not self.public_url:
            return url
        public, called = urlsplit(self.public_url), urlsplit(url)
        path = public.path.rstrip("/") + called.path
        return urlunsplit((public.scheme, public.netloc, path, called.query, ""))

    def parse(self, kind: str, request: InboundRequest) -> Sequence[ev.CarrierEvent]:
        """Twilio's webhook of `kind` as Depotline's events; [] for one that reports nothing
        Depotline tracks (a call ringing, a recording absent). provider_event_id is the same for
        a retried webhook and differs between successive statuses of one call or message."""
        form = request.form
        if kind == "voice":
            sid = _required(form, "CallSid")
            direction = form.get("Direction", "inbound")
            return [
                ev.CallStarted(
                    provider=self.name,
                    provider_event_id=f"{sid}:started",
                    call_id=sid,
                    from_number=form.get("From", ""),
                    to_number=form.get("To", ""),
                    direction=ev.Direction.OUTBOUND
                    if direction.startswith("outbound")
                    else ev.Direction.INBOUND,
                )
            ]
        if kind == "gather":
            return self._gather(request)
        if kind in ("wait", "queue-left"):
            return self._queue(kind, request)
        if kind == "status":
            return self._call_status(form)
        if kind == "recording":
            sid = _required(form, "RecordingSid")
            status = form.get("RecordingStatus", "completed")
            if status != "completed":
                return []
            return [
                ev.RecordingReady(
                    provider=self.name,
                    provider_event_id=f"{sid}:{status}",
                    call_id=_required(form, "CallSid"),
                    recording_id=sid,
                    url=_required(form, "RecordingUrl"),
                    duration_seconds=_int(form.get("RecordingDuration")),
                )
            ]
        if kind == "sms":
            sid = form.get("MessageSid") or _required(form, "SmsSid")
            return [
                ev.SmsReceived(
                    provider=self.name,
                    provider_event_id=sid,
                    message_id=sid,
                    from_number=_required(form, "From"),
                    to_number=_required(form, "To"),
                    body=form.get("Body", ""),
                )
            ]
        if kind == "sms-status":
            sid = form.get("MessageSid") or _required(form, "SmsSid")
            status = form.get("MessageStatus") or _required(form, "SmsStatus")
            state = SMS_STATES.get(status)
            if state is None:
                return []
            return [
                ev.SmsStatus(
                    provider=self.name,
                    provider_event_id=f"{sid}:{status}",
                    message_id=sid,
                    state=state,
                    error_code=form.get("ErrorCode") or None,
                )
            ]
        raise ValueError(f"Twilio sends no '{kind}' webhook to Depotline")

    def _gather(self, request: InboundRequest) -> list[ev.CarrierEvent]:
        form = request.form
        sid = _required(form, "CallSid")
        # One call may gather the same digits twice (two menus): Twilio's idempotency token
        # tells the deliveries apart and stays the same on a retry; without it, the action URL
        # (which may name the step) and the input do.
        token = _header(request.headers, IDEMPOTENCY_HEADER)
        digits, speech = form.get("Digits"), form.get("SpeechResult")
        key = token or f"{urlsplit(request.url).query}:{digits or speech or ''}"
        event_id = f"{sid}:gather:{key}"
        if digits:
            return [
                ev.DigitsGathered(
                    provider=self.name, provider_event_id=event_id, call_id=sid, digits=digits
                )
            ]
        if speech:
            confidence = form.get("Confidence")
            return [
                ev.SpeechReady(
                    provider=self.name,
                    provider_event_id=event_id,
                    call_id=sid,
                    transcript=speech,
                    confidence=float(confidence) if confidence else None,
                )
            ]
        return []  # the caller gave nothing before the timeout

    def _queue(self, kind: str, request: InboundRequest) -> list[ev.CarrierEvent]:
        """The waitUrl (QueueWait) and the Enqueue action (QueueLeft). Twilio asks the waitUrl
        again and again: each request is told apart by its idempotency token, else by the URL
        and the seconds the caller has waited (QueueTime)."""
        form = request.form
        sid = _required(form, "CallSid")
        token = _header(request.headers, IDEMPOTENCY_HEADER)
        waited = form.get("QueueTime", "")
        key = token or f"{urlsplit(request.url).query}:{waited}:{form.get('QueueResult', '')}"
        base: dict[str, Any] = {"provider": self.name, "provider_event_id": f"{sid}:{kind}:{key}"}
        if kind == "wait":
            seconds = int(waited) if waited.isdecimal() else None
            return [ev.QueueWait(**base, call_id=sid, queue_seconds=seconds)]
        return [ev.QueueLeft(**base, call_id=sid, result=form.get("QueueResult") or "leave")]

    def _call_status(self, form: Mapping[str, str]) -> list[ev.CarrierEvent]:
        sid = _required(form, "CallSid")
        status = _required(form, "CallStatus")
        at = _timestamp(form.get("Timestamp"))
        base: dict[str, Any] = {"provider": self.name, "provider_event_id": f"{sid}:{status}"}
        if at is not None:
            base["occurred_at"] = at
        if status == "in-progress":
            answered: list[ev.CarrierEvent] = [ev.CallAnswered(**base, call_id=sid)]
            parent = form.get("ParentCallSid")
            if parent:  # a leg Depotline dialled (an agent, a transfer) answered
                answered.append(
                    ev.LegBridged(
                        provider=self.name,
                        provider_event_id=f"{sid}:bridged",
                        occurred_at=answered[0].occurred_at,
                        call_id=parent,
                        other_call_id=sid,
                    )
                )
            return answered
        if status in CALL_ENDED:
            return [
                ev.CallEnded(
                    **base,
                    call_id=sid,
                    reason=status,
                    duration_seconds=_int(form.get("CallDuration")),
                )
            ]
        return []  # queued, initiated, ringing: nothing has happened yet

    # -- helpers -----------------------------------------------------------------------------

    def _webhook(self, kind: str, **params: str) -> str:
        """{webhook_base_url}/{kind}, keeping the base's query (?tenant=...&account=...)."""
        if not self.webhook_base_url:
            raise ValueError(f"Twilio needs a webhook_base_url for the '{kind}' webhook")
        base = urlsplit(self.webhook_base_url)
        query = parse_qsl(base.query, keep_blank_values=True) + list(params.items())
        path = f"{base.path.rstrip('/')}/{kind}"
        return urlunsplit(base._replace(path=path, query=urlencode(query)))

    def _webhook_or_none(self, kind: str) -> str | None:
        return self._webhook(kind) if self.webhook_base_url else None


def _say(parent: Any, say: Say) -> None:
    voice = say.voice or DEFAULT_VOICES.get(say.language)
    parent.say(say.text, voice=voice, language=say.language)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def _required(form: Mapping[str, str], key: str) -> str:
    value = form.get(key)
    if not value:
        raise ValueError(f"Twilio webhook without {key}")
    return value


def _int(value: str | None) -> int:
    try:
        return int(value) if value else 0
    except ValueError:
        return 0


def _timestamp(value: str | None) -> datetime | None:
    """Twilio's Timestamp parameter (RFC 2822), if present and readable."""
    if not value:
        return None
    try:
        return parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None


def _sid(resource: Mapping[str, Any]) -> str:
    sid = resource.get("sid")
    if not isinstance(sid, str) or not sid:
        raise OutcomeUnknown("Twilio answered without the resource's sid")
    return sid


def _twilio_error(response: httpx.Response) -> tuple[str | None, str]:
    """Twilio's error body: {"code": 21211, "message": ..., "more_info": ..., "status": 400}."""
    try:
        body = response.json()
    except ValueError:
        return None, response.text[:200] or response.reason_phrase
    if not isinstance(body, dict):
        return None, response.reason_phrase
    code = body.get("code")
    return (str(code) if code is not None else None), str(body.get("message") or "")
