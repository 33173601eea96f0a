"""The Twilio provider: TwiML it renders, webhooks it verifies and parses, and the REST calls it
makes, against a local fake of Twilio's API (tests/twilio_fake.py)."""

from __future__ import annotations

import socket
import uuid
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from twilio.request_validator import RequestValidator  # type: ignore[import-untyped]

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
    SmsProvider,
    VoiceProvider,
    WebhookProvider,
)
from telephony_gateway.providers.twilio import TwilioProvider
from tests.twilio_fake import TwilioFake, twilio_fake_fixture  # noqa: F401

ACCOUNT_SID = "AC" + "1" * 32
AUTH_TOKEN = "12345678901234567890123456789012"
WEBHOOKS = "https://depotline.example/webhooks/twilio/7d1c2b5e"
CALL_SID = "CA" + "a" * 32
AGENT_CALL_SID = "CA" + "b" * 32
MUSIC = "https://depotline.example/static/hold.mp3"


def sid(prefix: str) -> str:
    return prefix + uuid.uuid4().hex


def provider(**kwargs: str) -> TwilioProvider:
    options: dict[str, str] = {"webhook_base_url": WEBHOOKS, **kwargs}
    return TwilioProvider(ACCOUNT_SID, AUTH_TOKEN, **options)  # type: ignore[arg-type]


def twiml(commands: list[Command], **kwargs: str) -> ET.Element:
    media_type, body = provider().render(commands, **kwargs)
    assert media_type == "application/xml"
    root = ET.fromstring(body)
    assert root.tag == "Response"
    return root


def only(root: ET.Element, path: str) -> ET.Element:
    found = root.findall(path)
    assert len(found) == 1, f"{path}: {[ET.tostring(e) for e in found]}"
    return found[0]


# -- TwiML ------------------------------------------------------------------------------------


def test_the_provider_is_each_kind_of_provider() -> None:
    twilio = provider()
    sms: SmsProvider = twilio
    webhooks: WebhookProvider = twilio
    voice: VoiceProvider = twilio
    assert sms.name == webhooks.name == voice.name == "twilio"
    assert voice.supported == {
        "answer", "say", "play", "gather", "enqueue", "hold", "connect_agent", "transfer",
        "conference", "monitor", "recording", "hangup", "place_call", "send_sms", "pause",
        "record", "leave",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("language", "voice"),
    [
        ("en-US", "Polly.Joanna"),
        ("cmn-CN", "Google.cmn-CN-Standard-A"),
        ("yue-HK", "Google.yue-HK-Standard-A"),
    ],
)
def test_say_speaks_in_the_language_with_a_voice_for_it(language: str, voice: str) -> None:
    say = only(twiml([Say("您好，歡迎致電", language=language)]), "Say")
    assert say.text == "您好，歡迎致電"
    assert say.attrib == {"language": language, "voice": voice}


def test_say_keeps_a_chosen_voice_and_an_unmapped_language() -> None:
    chosen = only(twiml([Say("Hallo", language="de-DE", voice="Polly.Vicki")]), "Say")
    assert chosen.attrib == {"language": "de-DE", "voice": "Polly.Vicki"}
    unmapped = only(twiml([Say("Bonjour", language="fr-FR")]), "Say")
    assert unmapped.attrib == {"language": "fr-FR"}


def test_play_answer_and_hangup() -> None:
    root = twiml([Answer(), Play("https://depotline.example/a.mp3"), Hangup()])
    assert [child.tag for child in root] == ["Play", "Hangup"]  # Answer needs no verb
    assert root[0].text == "https://depotline.example/a.mp3"


def test_gather_collects_digits_and_posts_them_to_the_gather_webhook() -> None:
    prompt = Say("請輸入運單號碼，以井號結束", language="yue-HK")
    gather = only(twiml([Gather(num_digits=10, timeout_seconds=8, prompt=prompt)]), "Gather")
    assert gather.attrib == {
        "input": "dtmf",
        "action": f"{WEBHOOKS}/gather",
        "method": "POST",
        "numDigits": "10",
        "timeout": "8",
        "finishOnKey": "#",
    }
    said = only(gather, "Say")
    assert said.text == prompt.text
    assert said.attrib["voice"] == "Google.yue-HK-Standard-A"


def test_gather_action_can_be_given_and_a_played_prompt_nests() -> None:
    root = twiml(
        [Gather(finish_on_key="*", prompt=Play(MUSIC))],
        action_url=f"{WEBHOOKS}/gather?step=menu",
    )
    gather = only(root, "Gather")
    assert gather.attrib["action"] == f"{WEBHOOKS}/gather?step=menu"
    assert gather.attrib["finishOnKey"] == "*"
    assert "numDigits" not in gather.attrib
    assert only(gather, "Play").text == MUSIC


def test_enqueue_waits_to_twilio_music_or_to_depotline_wait_twiml() -> None:
    plain = only(twiml([Enqueue("parcels")]), "Enqueue")
    assert plain.text == "parcels"
    assert "waitUrl" not in plain.attrib  # Twilio's own hold music
    with_music = only(twiml([Enqueue("parcels", music_url=MUSIC)]), "Enqueue")
    wait_url = urlsplit(with_music.attrib["waitUrl"])
    assert wait_url._replace(query="").geturl() == f"{WEBHOOKS}/wait"
    assert parse_qs(wait_url.query) == {"music": [MUSIC]}
    # Depotline's /wait answers TwiML that plays it.
    request = InboundRequest(
        url=with_music.attrib["waitUrl"],
        method="POST",
        headers={},
        query={"music": MUSIC},
        form={},
    )
    media_type, body = provider().wait_twiml(request)
    assert media_type == "application/xml"
    assert only(ET.fromstring(body), "Play").text == MUSIC


def test_an_announcing_queue_asks_depotline_while_and_after_the_caller_waits() -> None:
    enqueue = only(twiml([Enqueue("parcels", announcements=True)]), "Enqueue")
    assert enqueue.attrib == {"waitUrl": f"{WEBHOOKS}/wait", "action": f"{WEBHOOKS}/queue-left"}
    # Without webhooks to call, Twilio plays its own music and goes on with the document.
    bare = TwilioProvider(ACCOUNT_SID, AUTH_TOKEN).render([Enqueue("parcels", announcements=True)])
    assert only(ET.fromstring(bare[1]), "Enqueue").attrib == {}
    # The wait answer: what the contact center says, then the music (or a pause) once through;
    # nothing after a hang-up.
    request = InboundRequest(f"{WEBHOOKS}/wait", "POST", {}, {"music": MUSIC}, {})
    _, body = provider().wait_twiml(request, [Say("You are number 2 in line.")])
    assert [child.tag for child in ET.fromstring(body)] == ["Say", "Play"]
    _, body = provider().wait_twiml(request, [Say("Goodbye."), Hangup()])
    assert [child.tag for child in ET.fromstring(body)] == ["Say", "Hangup"]


def test_pause_record_and_leave() -> None:
    root = twiml([Pause(15), Leave(), Record(max_seconds=90)])
    assert [child.tag for child in root] == ["Pause", "Leave", "Record"]
    assert root[0].attrib == {"length": "15"}
    assert root[2].attrib == {
        "action": f"{WEBHOOKS}/recording",
        "finishOnKey": "#",
        "maxLength": "90",
        "playBeep": "true",
        "recordingStatusCallback": f"{WEBHOOKS}/recording",
        "recordingStatusCallbackEvent": "completed",
    }


def test_wait_and_queue_left_webhooks_are_events() -> None:
    twilio = provider()

    def request(kind: str, token: str | None = None, **form: str) -> InboundRequest:
        headers = {"I-Twilio-Idempotency-Token": token} if token else {}
        return InboundRequest(
            f"{WEBHOOKS}/{kind}", "POST", headers, {}, {"CallSid": CALL_SID, **form}
        )

    (first,) = twilio.parse("wait", request("wait", QueueTime="12", QueuePosition="3"))
    assert isinstance(first, ev.QueueWait)
    assert (first.call_id, first.queue_seconds) == (CALL_SID, 12)
    (later,) = twilio.parse("wait", request("wait", QueueTime="40"))
    assert later.provider_event_id != first.provider_event_id  # asked again: a new question
    (retried,) = twilio.parse("wait", request("wait", "tok-1", QueueTime="40"))
    (again,) = twilio.parse("wait", request("wait", "tok-1", QueueTime="41"))
    assert again.provider_event_id == retried.provider_event_id  # Twilio's retry: the same
    (left,) = twilio.parse("queue-left", request("queue-left", QueueResult="bridged"))
    assert isinstance(left, ev.QueueLeft) and left.result == "bridged"


def test_hold_loops_music_until_the_call_is_redirected() -> None:
    held = only(twiml([Hold(music_url=MUSIC)]), "Play")
    assert (held.text, held.attrib) == (MUSIC, {"loop": "0"})
    _, body = provider(hold_music_url="https://depotline.example/default.mp3").render([Hold()])
    assert only(ET.fromstring(body), "Play").text == "https://depotline.example/default.mp3"
    silent = only(twiml([Hold()]), "Pause")
    assert int(silent.attrib["length"]) > 0


@pytest.mark.parametrize(
    ("endpoint", "noun", "value"),
    [
        ("agent-0042", "Client", "agent-0042"),
        ("client:agent-0042", "Client", "agent-0042"),
        ("+85230001234", "Number", "+85230001234"),
        ("sip:agent@depotline.sip.twilio.com", "Sip", "sip:agent@depotline.sip.twilio.com"),
    ],
)
def test_connect_agent_dials_the_agent(endpoint: str, noun: str, value: str) -> None:
    dial = only(twiml([ConnectAgent(endpoint, caller_id="+85230001000")]), "Dial")
    assert dial.attrib == {"callerId": "+85230001000"}
    target = only(dial, noun)
    assert target.text == value
    assert target.attrib == {
        "statusCallback": f"{WEBHOOKS}/status",
        "statusCallbackEvent": "answered completed",
    }


def test_callback_urls_keep_the_query_that_names_the_account() -> None:
    base = "https://depotline.example/webhooks/twilio?tenant=t-1&account=a-2"
    _, body = provider(webhook_base_url=base).render(
        [Gather(), Enqueue("parcels", music_url=MUSIC)]
    )
    root = ET.fromstring(body)
    action = urlsplit(only(root, "Gather").attrib["action"])
    assert action.path == "/webhooks/twilio/gather"
    assert parse_qs(action.query) == {"tenant": ["t-1"], "account": ["a-2"]}
    wait = urlsplit(only(root, "Enqueue").attrib["waitUrl"])
    assert wait.path == "/webhooks/twilio/wait"
    assert parse_qs(wait.query) == {"tenant": ["t-1"], "account": ["a-2"], "music": [MUSIC]}


def test_transfer_and_conference() -> None:
    root = twiml([Transfer("+8613800138000"), Conference("room-parcel-17")])
    assert only(root, "Dial[1]/Number").text == "+8613800138000"
    conference = only(root, "Dial[2]/Conference")
    assert conference.text == "room-parcel-17"


@pytest.mark.parametrize(
    ("mode", "muted", "coach"),
    [
        (MonitorMode.LISTEN, "true", None),
        (MonitorMode.WHISPER, "false", AGENT_CALL_SID),
        (MonitorMode.BARGE, "false", None),
    ],
)
def test_monitor_joins_the_agents_conference(
    mode: MonitorMode, muted: str, coach: str | None
) -> None:
    command = Monitor(AGENT_CALL_SID, "client:supervisor-3", mode)
    conference = only(twiml([command]), "Dial/Conference")
    assert conference.text == AGENT_CALL_SID
    assert conference.attrib.get("muted") == muted
    assert conference.attrib.get("coach") == coach
    assert conference.attrib["beep"] == "false"
    assert conference.attrib["endConferenceOnExit"] == "false"


@pytest.mark.parametrize(
    "command",
    [
        Recording(RecordingAction.START),
        PlaceCall(from_number="+85230001000", to_number="+85291234567"),
        SendSms("m-1", "+85230001000", "+85291234567", "hi"),
    ],
)
def test_rest_commands_are_not_twiml(command: Command) -> None:
    with pytest.raises(Unsupported) as refused:
        provider().render([Say("before"), command])
    assert refused.value.provider == "twilio"
    assert refused.value.command == command.name
    assert str(refused.value) == f"The twilio provider cannot carry out '{command.name}'"


def test_a_command_twilio_does_not_know_is_unsupported() -> None:
    class Fax(Command):
        name = "fax"

    with pytest.raises(Unsupported, match="The twilio provider cannot carry out 'fax'"):
        provider().render([Fax()])


# -- webhook signatures -----------------------------------------------------------------------

VOICE_PARAMS = {
    "AccountSid": ACCOUNT_SID,
    "ApiVersion": "2010-04-01",
    "CallSid": CALL_SID,
    "CallStatus": "ringing",
    "Called": "+85230001000",
    "Caller": "+85291234567",
    "Direction": "inbound",
    "From": "+85291234567",
    "FromCountry": "HK",
    "To": "+85230001000",
    "ToCountry": "HK",
}


def signed(
    url: str,
    form: dict[str, str],
    *,
    token: str = AUTH_TOKEN,
    headers: dict[str, str] | None = None,
    method: str = "POST",
) -> InboundRequest:
    """The request as Twilio sends it: signed over the URL and the POST parameters."""
    signature = RequestValidator(token).compute_signature(url, form if method == "POST" else {})
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    return InboundRequest(
        url=url,
        method=method,
        headers={"x-twilio-signature": signature, **(headers or {})},
        query=query,
        form=form if method == "POST" else {},
    )


def test_a_request_twilio_signed_verifies() -> None:
    assert provider().verify(signed(f"{WEBHOOKS}/voice", VOICE_PARAMS))
    # With a query string, and the header named as Twilio spells it.
    url = f"{WEBHOOKS}/gather?step=menu&lang=yue-HK"
    request = signed(url, {"CallSid": CALL_SID, "Digits": "1234"})
    signature = request.headers["x-twilio-signature"]
    recased = replace(request, headers={"X-Twilio-Signature": signature})
    assert provider().verify(recased)
    assert provider().verify(signed(f"{WEBHOOKS}/wait?music=x", {}, method="GET"))


def test_forged_tampered_misaddressed_and_unsigned_requests_fail() -> None:
    twilio = provider()
    good = signed(f"{WEBHOOKS}/voice", VOICE_PARAMS)

    forged = RequestValidator("not-the-auth-token").compute_signature(good.url, VOICE_PARAMS)
    assert not twilio.verify(replace(good, headers={"X-Twilio-Signature": forged}))
    assert not twilio.verify(replace(good, headers={"X-Twilio-Signature": "AAAA" + forged[4:]}))
    assert not twilio.verify(replace(good, url=f"{WEBHOOKS}/status"))
    assert not twilio.verify(
        replace(good, url="https://depotline.example/webhooks/twilio/other/voice")
    )
    assert not twilio.verify(replace(good, form={**VOICE_PARAMS, "From": "+85299999999"}))
    assert not twilio.verify(replace(good, form={**VOICE_PARAMS, "Digits": "9"}))
    assert not twilio.verify(
        replace(good, form={k: v for k, v in VOICE_PARAMS.items() if k != "To"})
    )
    assert not twilio.verify(replace(good, headers={}))
    assert not twilio.verify(replace(good, headers={"X-Twilio-Signature": ""}))
    assert twilio.verify(good)


def test_webhooks_signed_with_a_shared_key() -> None:
    secret = "sk-secret-0123456789"
    settings = {"X-Twilio-Webhooks-Signature-Settings": "key=KS123,algorithm=HMAC_SHA256"}
    url = f"{WEBHOOKS}/sms"
    form = {"MessageSid": sid("SM"), "From": "+85291234567", "To": "+85230001000", "Body": "hi"}
    signature = RequestValidator(secret).compute_signature(url, form, "HMAC_SHA256")
    request = InboundRequest(
        url=url, method="POST", headers={"X-Twilio-Signature": signature, **settings},
        query={}, form=form,
    )  # fmt: skip
    assert provider(webhook_signing_secret=secret).verify(request)
    assert not provider().verify(request)  # no shared key configured: cannot vouch for it
    assert not provider(webhook_signing_secret="another").verify(request)


# -- parsing webhooks -------------------------------------------------------------------------


def parse(kind: str, form: dict[str, str], url: str | None = None) -> list[ev.CarrierEvent]:
    return list(provider().parse(kind, signed(url or f"{WEBHOOKS}/{kind}", form)))


def test_an_incoming_call_starts_a_call() -> None:
    (event,) = parse("voice", VOICE_PARAMS)
    assert isinstance(event, ev.CallStarted)
    assert (event.call_id, event.from_number, event.to_number) == (
        CALL_SID,
        "+85291234567",
        "+85230001000",
    )
    assert event.direction is ev.Direction.INBOUND
    assert (event.provider, event.provider_event_id) == ("twilio", f"{CALL_SID}:started")
    (outbound,) = parse("voice", {**VOICE_PARAMS, "Direction": "outbound-api"})
    assert isinstance(outbound, ev.CallStarted)
    assert outbound.direction is ev.Direction.OUTBOUND


def test_gathered_digits_and_speech() -> None:
    form = {**VOICE_PARAMS, "CallStatus": "in-progress", "Digits": "4712", "FinishedOnKey": "#"}
    (digits,) = parse("gather", form)
    assert isinstance(digits, ev.DigitsGathered)
    assert (digits.call_id, digits.digits) == (CALL_SID, "4712")
    speech_form = {
        **VOICE_PARAMS,
        "CallStatus": "in-progress",
        "SpeechResult": "我想查詢包裹",
        "Confidence": "0.91",
        "Language": "yue-HK",
    }
    (speech,) = parse("gather", speech_form)
    assert isinstance(speech, ev.SpeechReady)
    assert (speech.transcript, speech.confidence) == ("我想查詢包裹", 0.91)
    assert parse("gather", {**VOICE_PARAMS, "CallStatus": "in-progress"}) == []


def test_gather_event_ids_tell_deliveries_apart_but_not_retries() -> None:
    form = {**VOICE_PARAMS, "Digits": "1"}
    twilio = provider()

    def event_id(url: str, token: str | None = None) -> str:
        headers = {"I-Twilio-Idempotency-Token": token} if token else {}
        (event,) = twilio.parse("gather", signed(url, form, headers=headers))
        return event.provider_event_id

    menu, submenu = f"{WEBHOOKS}/gather?step=menu", f"{WEBHOOKS}/gather?step=submenu"
    assert event_id(menu) == event_id(menu)
    assert event_id(menu) != event_id(submenu)
    assert event_id(menu, "tok-1") == event_id(menu, "tok-1")
    assert event_id(menu, "tok-1") != event_id(menu, "tok-2")


def status_form(status: str, **extra: str) -> dict[str, str]:
    return {
        **VOICE_PARAMS,
        "CallStatus": status,
        "CallbackSource": "call-progress-events",
        "SequenceNumber": "2",
        "Timestamp": "Tue, 04 Mar 2025 09:15:42 +0000",
        **extra,
    }


def test_call_status_callbacks() -> None:
    assert parse("status", status_form("ringing")) == []
    (answered,) = parse("status", status_form("in-progress"))
    assert isinstance(answered, ev.CallAnswered)
    assert answered.call_id == CALL_SID
    assert answered.occurred_at == datetime(2025, 3, 4, 9, 15, 42, tzinfo=UTC)
    (ended,) = parse("status", status_form("completed", CallDuration="42", Duration="1"))
    assert isinstance(ended, ev.CallEnded)
    assert (ended.call_id, ended.reason, ended.duration_seconds) == (CALL_SID, "completed", 42)
    # Successive statuses of one call are distinct events; a retried callback is the same one.
    assert answered.provider_event_id != ended.provider_event_id
    (again,) = parse("status", status_form("completed", CallDuration="42"))
    assert again.provider_event_id == ended.provider_event_id


@pytest.mark.parametrize("status", ["busy", "no-answer", "failed", "canceled"])
def test_calls_that_never_connected_end(status: str) -> None:
    (ended,) = parse("status", status_form(status, CallDuration="0"))
    assert isinstance(ended, ev.CallEnded)
    assert (ended.reason, ended.duration_seconds) == (status, 0)


def test_an_agent_leg_answering_bridges_it_to_the_caller() -> None:
    form = status_form("in-progress", CallSid=AGENT_CALL_SID, ParentCallSid=CALL_SID)
    answered, bridged = parse("status", form)
    assert isinstance(answered, ev.CallAnswered)
    assert answered.call_id == AGENT_CALL_SID
    assert isinstance(bridged, ev.LegBridged)
    assert (bridged.call_id, bridged.other_call_id) == (CALL_SID, AGENT_CALL_SID)


def test_a_finished_recording_is_ready() -> None:
    recording_sid = sid("RE")
    form = {
        "AccountSid": ACCOUNT_SID,
        "CallSid": CALL_SID,
        "RecordingSid": recording_sid,
        "RecordingUrl": f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}"
        f"/Recordings/{recording_sid}",
        "RecordingStatus": "completed",
        "RecordingDuration": "73",
        "RecordingChannels": "1",
        "RecordingSource": "StartCallRecordingAPI",
        "RecordingStartTime": "Tue, 04 Mar 2025 09:15:42 +0000",
    }
    (ready,) = parse("recording", form)
    assert isinstance(ready, ev.RecordingReady)
    assert (ready.call_id, ready.recording_id, ready.url, ready.duration_seconds) == (
        CALL_SID,
        recording_sid,
        form["RecordingUrl"],
        73,
    )
    assert parse("recording", {**form, "RecordingStatus": "absent"}) == []


def test_an_incoming_sms() -> None:
    message_sid = sid("SM")
    form = {
        "ToCountry": "HK",
        "SmsMessageSid": message_sid,
        "NumMedia": "0",
        "SmsSid": message_sid,
        "SmsStatus": "received",
        "Body": "我的包裹幾時到？",
        "To": "+85230001000",
        "NumSegments": "1",
        "MessageSid": message_sid,
        "AccountSid": ACCOUNT_SID,
        "From": "+85291234567",
        "ApiVersion": "2010-04-01",
    }
    (received,) = parse("sms", form)
    assert isinstance(received, ev.SmsReceived)
    assert (received.message_id, received.from_number, received.to_number, received.body) == (
        message_sid,
        "+85291234567",
        "+85230001000",
        "我的包裹幾時到？",
    )
    assert received.provider_event_id == message_sid


@pytest.mark.parametrize(
    ("status", "state"),
    [
        ("queued", ev.SmsState.QUEUED),
        ("sending", ev.SmsState.QUEUED),
        ("sent", ev.SmsState.SENT),
        ("delivered", ev.SmsState.DELIVERED),
        ("undelivered", ev.SmsState.UNDELIVERED),
        ("failed", ev.SmsState.FAILED),
    ],
)
def test_sms_status_callbacks(status: str, state: ev.SmsState) -> None:
    message_sid = sid("SM")
    form = {
        "AccountSid": ACCOUNT_SID,
        "ApiVersion": "2010-04-01",
        "From": "+85230001000",
        "To": "+85291234567",
        "MessageSid": message_sid,
        "SmsSid": message_sid,
        "MessageStatus": status,
        "SmsStatus": status,
    }
    if status in ("undelivered", "failed"):
        form["ErrorCode"] = "30003"
    (report,) = parse("sms-status", form)
    assert isinstance(report, ev.SmsStatus)
    assert (report.message_id, report.state) == (message_sid, state)
    assert report.error_code == form.get("ErrorCode")
    assert report.provider_event_id == f"{message_sid}:{status}"


def test_malformed_and_unknown_webhooks_are_refused() -> None:
    with pytest.raises(ValueError, match="CallSid"):
        parse("status", {"CallStatus": "completed"})
    with pytest.raises(ValueError, match="fax"):
        parse("fax", VOICE_PARAMS)
    assert parse("sms-status", {"MessageSid": sid("SM"), "MessageStatus": "receiving"}) == []


# -- REST through the fake --------------------------------------------------------------------


@pytest.fixture
async def rest(twilio_fake: TwilioFake) -> AsyncIterator[TwilioProvider]:
    twilio = TwilioProvider(
        twilio_fake.account_sid,
        twilio_fake.auth_token,
        api_base=twilio_fake.base_url,
        webhook_base_url=WEBHOOKS,
    )
    async with twilio:
        yield twilio


SMS = SendSms("msg-0001", "+85230001000", "+85291234567", "您的包裹 DL-4471 今日送達。")


async def test_send_sms(rest: TwilioProvider, twilio_fake: TwilioFake) -> None:
    receipt = await rest.send_sms(SMS, f"{WEBHOOKS}/sms-status")
    assert receipt.provider_message_id.startswith("SM")
    assert len(receipt.provider_message_id) == 34
    assert receipt.state is ev.SmsState.QUEUED
    (request,) = twilio_fake.requests
    assert request.authenticated
    assert request.path == f"/2010-04-01/Accounts/{twilio_fake.account_sid}/Messages.json"
    assert request.form == {
        "To": "+85291234567",
        "From": "+85230001000",
        "Body": "您的包裹 DL-4471 今日送達。",
        "StatusCallback": f"{WEBHOOKS}/sms-status",
    }
    assert twilio_fake.messages[receipt.provider_message_id]["body"] == SMS.body


async def test_a_bad_number_is_refused_for_good(
    rest: TwilioProvider, twilio_fake: TwilioFake
) -> None:
    bad = SendSms("msg-0002", "+85230001000", "85291234", "hi")
    with pytest.raises(CarrierRefused) as refused:
        await rest.send_sms(bad, f"{WEBHOOKS}/sms-status")
    assert (refused.value.retryable, refused.value.error_code) == (False, "21211")
    assert "not a valid phone number" in str(refused.value)
    assert twilio_fake.messages == {}


@pytest.mark.parametrize(("status", "code"), [(429, 20429), (500, 20500), (503, 20503)])
async def test_throttling_and_outages_may_be_retried(
    rest: TwilioProvider, twilio_fake: TwilioFake, status: int, code: int
) -> None:
    twilio_fake.fail_next(status, code, "Too Many Requests" if status == 429 else "Unavailable")
    with pytest.raises(CarrierRefused) as refused:
        await rest.send_sms(SMS, f"{WEBHOOKS}/sms-status")
    assert (refused.value.retryable, refused.value.error_code) == (True, str(code))
    assert twilio_fake.messages == {}
    # The retry goes through.
    receipt = await rest.send_sms(SMS, f"{WEBHOOKS}/sms-status")
    assert list(twilio_fake.messages) == [receipt.provider_message_id]


async def test_wrong_credentials_are_not_retried(twilio_fake: TwilioFake) -> None:
    async with TwilioProvider(
        twilio_fake.account_sid, "wrong-token", api_base=twilio_fake.base_url
    ) as twilio:
        with pytest.raises(CarrierRefused) as refused:
            await twilio.send_sms(SMS, f"{WEBHOOKS}/sms-status")
    assert (refused.value.retryable, refused.value.error_code) == (False, "20003")
    assert not twilio_fake.requests[0].authenticated


async def test_an_unreachable_twilio_may_be_retried() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    async with TwilioProvider(
        ACCOUNT_SID, AUTH_TOKEN, api_base=f"http://127.0.0.1:{port}"
    ) as twilio:
        with pytest.raises(CarrierRefused) as refused:
            await twilio.send_sms(SMS, f"{WEBHOOKS}/sms-status")
    assert refused.value.retryable


async def test_a_timeout_after_sending_is_an_unknown_outcome(twilio_fake: TwilioFake) -> None:
    twilio_fake.delay_next(2.0)
    async with httpx.AsyncClient(timeout=0.3) as http:
        twilio = TwilioProvider(
            twilio_fake.account_sid,
            twilio_fake.auth_token,
            api_base=twilio_fake.base_url,
            http=http,
        )
        with pytest.raises(OutcomeUnknown):
            await twilio.send_sms(SMS, f"{WEBHOOKS}/sms-status")
    assert len(twilio_fake.messages) == 1  # Twilio did take it: retrying would send it twice


async def test_place_call(rest: TwilioProvider, twilio_fake: TwilioFake) -> None:
    call_sid = await rest.execute(
        CALL_SID, PlaceCall(from_number="+85230001000", to_number="+85291234567")
    )
    assert call_sid in twilio_fake.calls
    (request,) = twilio_fake.requests
    assert request.path == f"/2010-04-01/Accounts/{twilio_fake.account_sid}/Calls.json"
    assert request.params == {
        "To": ["+85291234567"],
        "From": ["+85230001000"],
        "Url": [f"{WEBHOOKS}/voice"],
        "StatusCallback": [f"{WEBHOOKS}/status"],
        "StatusCallbackEvent": ["answered", "completed"],
    }


async def test_place_call_with_twiml_of_its_own(twilio_fake: TwilioFake) -> None:
    command = PlaceCall(from_number="+85230001000", to_number="+85291234567")
    async with TwilioProvider(
        twilio_fake.account_sid, twilio_fake.auth_token, api_base=twilio_fake.base_url
    ) as twilio:
        with pytest.raises(ValueError, match="webhook_base_url"):
            await twilio.place_call(command)
        _, body = twilio.render([Say("Your parcel is at the door")])
        await twilio.place_call(command, twiml=body)
    assert twilio_fake.requests[-1].form["Twiml"] == body
    assert "Url" not in twilio_fake.requests[-1].form


async def test_recording_is_started_paused_resumed_and_stopped_through_rest(
    rest: TwilioProvider, twilio_fake: TwilioFake
) -> None:
    call_sid = twilio_fake.live_call()
    recording_sid = await rest.execute(call_sid, Recording(RecordingAction.START))
    accounts = f"/2010-04-01/Accounts/{twilio_fake.account_sid}"
    start = twilio_fake.requests[-1]
    assert start.path == f"{accounts}/Calls/{call_sid}/Recordings.json"
    assert start.params == {
        "RecordingStatusCallback": [f"{WEBHOOKS}/recording"],
        "RecordingStatusCallbackEvent": ["completed"],
    }
    assert twilio_fake.recordings[recording_sid]["status"] == "in-progress"

    for action, status in [
        (RecordingAction.PAUSE, "paused"),
        (RecordingAction.RESUME, "in-progress"),
        (RecordingAction.STOP, "stopped"),
    ]:
        assert await rest.execute(call_sid, Recording(action)) == recording_sid
        update = twilio_fake.requests[-1]
        assert update.path == f"{accounts}/Calls/{call_sid}/Recordings/Twilio.CURRENT.json"
        assert update.form == {"Status": status}
        assert twilio_fake.recordings[recording_sid]["status"] == status


async def test_a_mid_call_command_replaces_the_calls_twiml(
    rest: TwilioProvider, twilio_fake: TwilioFake
) -> None:
    call_sid = twilio_fake.live_call()
    assert await rest.execute(call_sid, Enqueue("parcels")) == call_sid
    (sent,) = twilio_fake.call_instructions[call_sid]
    assert only(ET.fromstring(sent), "Enqueue").text == "parcels"
    assert twilio_fake.requests[-1].path.endswith(f"/Calls/{call_sid}.json")
    requests = len(twilio_fake.requests)
    assert await rest.execute(call_sid, Answer()) == call_sid  # answered already: no request
    assert len(twilio_fake.requests) == requests


async def test_commands_on_a_call_that_is_over_are_refused(
    rest: TwilioProvider, twilio_fake: TwilioFake
) -> None:
    call_sid = twilio_fake.live_call()
    with pytest.raises(CarrierRefused) as nothing_recording:
        await rest.execute(call_sid, Recording(RecordingAction.PAUSE))
    assert (nothing_recording.value.retryable, nothing_recording.value.error_code) == (
        False,
        "20404",
    )
    twilio_fake.calls[call_sid]["status"] = "completed"
    with pytest.raises(CarrierRefused) as over:
        await rest.execute(call_sid, Say("Are you still there?"))
    assert (over.value.retryable, over.value.error_code) == (False, "21220")
    with pytest.raises(CarrierRefused) as unknown:
        await rest.execute(sid("CA"), Hangup())
    assert unknown.value.error_code == "20404"
    with pytest.raises(ValueError, match="supervisor"):
        await rest.execute(call_sid, Monitor(call_sid, "client:supervisor-3"))
