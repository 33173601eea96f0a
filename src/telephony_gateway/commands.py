"""Commands out: what Depotline asks a carrier to do. A provider carries out the commands it
supports and refuses the rest with `Unsupported`, naming the command and the provider."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Command:
    """Base of every command; `name` is how errors and pages refer to it."""

    name = "command"


@dataclass(frozen=True)
class Answer(Command):
    name = "answer"


@dataclass(frozen=True)
class Say(Command):
    text: str
    language: str = "en-US"  # BCP 47: en-US, cmn-CN (Mandarin), yue-HK (Cantonese)
    voice: str | None = None
    name = "say"


@dataclass(frozen=True)
class Play(Command):
    url: str
    name = "play"


@dataclass(frozen=True)
class Gather(Command):
    num_digits: int | None = None
    timeout_seconds: int = 5
    finish_on_key: str = "#"
    prompt: Say | Play | None = None
    name = "gather"


@dataclass(frozen=True)
class Enqueue(Command):
    queue: str
    music_url: str | None = None
    #: Depotline speaks to the caller while they wait (place in line, offers): the carrier asks
    #: what to play with QueueWait and reports the caller's leaving with QueueLeft.
    announcements: bool = False
    name = "enqueue"


@dataclass(frozen=True)
class Hold(Command):
    music_url: str | None = None
    name = "hold"


@dataclass(frozen=True)
class ConnectAgent(Command):
    endpoint: str  # the agent's client identity or phone number
    caller_id: str | None = None
    name = "connect_agent"


@dataclass(frozen=True)
class Transfer(Command):
    to: str
    name = "transfer"


@dataclass(frozen=True)
class Conference(Command):
    room: str
    name = "conference"


class MonitorMode(StrEnum):
    LISTEN = "listen"
    WHISPER = "whisper"
    BARGE = "barge"


@dataclass(frozen=True)
class Monitor(Command):
    """A supervisor joins an agent's call: listen (muted), whisper (agent hears), barge (all)."""

    call_id: str
    supervisor_endpoint: str
    mode: MonitorMode = MonitorMode.LISTEN
    name = "monitor"


class RecordingAction(StrEnum):
    START = "start"
    PAUSE = "pause"
    RESUME = "resume"
    STOP = "stop"


@dataclass(frozen=True)
class Recording(Command):
    action: RecordingAction
    name = "recording"


@dataclass(frozen=True)
class Hangup(Command):
    name = "hangup"


@dataclass(frozen=True)
class Pause(Command):
    """Silence for a while (between announcements to a waiting caller)."""

    seconds: int = 10
    name = "pause"


@dataclass(frozen=True)
class Record(Command):
    """Record what the caller says (a voicemail), ended by `finish_on_key`, silence or
    `max_seconds`; the carrier reports the recording with RecordingReady."""

    max_seconds: int = 120
    finish_on_key: str = "#"
    beep: bool = True
    name = "record"


@dataclass(frozen=True)
class Leave(Command):
    """Take a waiting caller out of the carrier's queue; the carrier then reports QueueLeft and
    carries out what the answer to that says."""

    name = "leave"


@dataclass(frozen=True)
class PlaceCall(Command):
    from_number: str
    to_number: str
    name = "place_call"


@dataclass(frozen=True)
class SendSms(Command):
    message_id: str  # Depotline's id: one id, at most one SMS
    from_number: str  # E.164 or an alphanumeric sender id
    to_number: str
    body: str
    name = "send_sms"


class Unsupported(Exception):
    def __init__(self, provider: str, command: Command | type[Command]) -> None:
        name = command.name
        super().__init__(f"The {provider} provider cannot carry out '{name}'")
        self.provider = provider
        self.command = name
