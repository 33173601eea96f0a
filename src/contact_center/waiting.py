"""What a caller hears once the IVR has put them in a queue, and after the agent's call.

- **While waiting** the carrier asks (QueueWait) each time the last answer has been played: the
  caller hears their place in line and the expected wait; once they have waited longer than the
  queue's `callback_offer_after_seconds`, also an offer: 1 to leave a voicemail (the call leaves
  the queue and the message is recorded), 2 to keep their place and be called back (the request
  is recorded on the call with the time it joined the queue, and published for whoever makes
  callbacks; the call leaves the line).
- **When an agent answers**, the caller is told the agent's number (工号), once.
- **After the agent hangs up**, if the tenant runs the post-call survey: the question in the
  call's language, 1 very satisfied, 2 satisfied, 3 dissatisfied; the answer is kept on the
  call (`survey_score`), the input of CSAT.

Expected wait, the model: (callers ahead + 1) × average handle time ÷ agents serving the queue.
The average handle time is the mean talk time of the queue's calls that ended in the last hour
plus the queue's wrap-up time (DEFAULT_TALK_SECONDS of talk when none ended); agents serving are
those with the queue's skill who are ready, being offered a call, on a call or wrapping up (not
those on a break). Simple on purpose: it follows the line as it moves and needs nothing older
than an hour. With nobody serving, only the place in line is said.
"""

from __future__ import annotations

import math
from datetime import timedelta

import structlog
from sqlmodel.ext.asyncio.session import AsyncSession

from contact_center.ivr import CANTONESE, ENGLISH, MANDARIN
from contact_center.models import Call, CallStatus
from contact_center.repository import ContactCenterRepository
from depotline import outbox
from depotline.db import utcnow
from telephony_gateway import events as ev
from telephony_gateway.commands import Command, Gather, Hangup, Leave, Record, Say

log = structlog.get_logger(__name__)

CALLBACK_REQUESTED = "contact_center.callback_requested"
DEFAULT_TALK_SECONDS = 180
RECENT = timedelta(hours=1)
VOICEMAIL_SECONDS = 120
SURVEY_SCORES = {"1": 1, "2": 2, "3": 3}  # very satisfied, satisfied, dissatisfied
#: Dispositions of a call that left the queue at the caller's choice.
VOICEMAIL, CALLBACK = "voicemail", "callback"

# What is said, per language (the call's language; English for any other).
PLACE = {
    MANDARIN: "您现在排在第{place}位。",
    CANTONESE: "你而家排第{place}位。",
    ENGLISH: "You are number {place} in line.",
}
WAIT_MINUTES = {
    MANDARIN: "预计等待约{minutes}分钟，请不要挂机。",
    CANTONESE: "預計等候大約{minutes}分鐘，唔該唔好收線。",
    ENGLISH: "The expected wait is about {minutes} {unit}. Please stay on the line.",
}
OFFER = {
    MANDARIN: "如需留言，请按1；如需保留排队位置并等候我们回电，请按2。",
    CANTONESE: "如果想留言，請撳1；如果想保留輪候位置等我哋覆電，請撳2。",
    ENGLISH: "To leave a voicemail, press 1. "
    "To keep your place in line and have us call you back, press 2.",
}
CALLBACK_CONFIRMED = {
    MANDARIN: "好的，轮到您时我们会回电到您现在使用的号码。感谢您的耐心，再见。",
    CANTONESE: "好，輪到你嘅時候我哋會打返你而家用緊嘅號碼。多謝你嘅耐心，再見。",
    ENGLISH: "Thank you. We will call you back on this number when it is your turn. Goodbye.",
}
LEAVE_MESSAGE = {
    MANDARIN: "请在提示音后留言，说完后按井号键或直接挂机。",
    CANTONESE: "請喺提示音之後留言，講完撳井字鍵或者直接收線。",
    ENGLISH: "Please leave your message after the tone. Press the hash key or hang up when "
    "you are done.",
}
AGENT_NUMBER = {
    MANDARIN: "工号{number}为您服务。",
    CANTONESE: "工號{number}為你服務。",
    ENGLISH: "You are speaking with agent number {number}.",
}
SURVEY = {
    MANDARIN: "感谢您的来电。请对本次服务进行评价：非常满意请按1，满意请按2，不满意请按3。",
    CANTONESE: "多謝你嘅來電。請為今次嘅服務評分：非常滿意請撳1，滿意請撳2，唔滿意請撳3。",
    ENGLISH: "Thank you for calling. How satisfied were you with our service today? "
    "Very satisfied, press 1. Satisfied, press 2. Dissatisfied, press 3.",
}
SURVEY_THANKS = {
    MANDARIN: "感谢您的评价，再见。",
    CANTONESE: "多謝你嘅意見，再見。",
    ENGLISH: "Thank you for your feedback. Goodbye.",
}


def say(texts: dict[str, str], language: str | None, **values: object) -> Say:
    """One of the lines above in the call's language (English when there is none for it)."""
    tag = language if language in texts else ENGLISH
    return Say(texts[tag].format(**values), language=tag)


def expected_wait_seconds(
    ahead: int, serving: int, mean_talk: float | None, wrap_up_seconds: int
) -> int | None:
    """The model of the module's docstring; None when nobody serves the queue."""
    if serving <= 0:
        return None
    handle = (mean_talk if mean_talk is not None else DEFAULT_TALK_SECONDS) + wrap_up_seconds
    return math.ceil((ahead + 1) * handle / serving)


def wait_line(language: str | None, seconds: int) -> Say:
    minutes = max(1, math.ceil(seconds / 60))
    unit = "minute" if minutes == 1 else "minutes"
    return say(WAIT_MINUTES, language, minutes=minutes, unit=unit)


# -- the carrier's questions ----------------------------------------------------------------------
async def answer(
    session: AsyncSession, call: Call, event: ev.QueueWait | ev.QueueLeft | ev.RecordingReady
) -> list[Command]:
    if isinstance(event, ev.QueueWait):
        return await while_waiting(session, call)
    if isinstance(event, ev.QueueLeft):
        return await after_queue(session, call, event.result)
    if call.disposition == VOICEMAIL:
        call.voicemail_url = event.url
        session.add(call)
        log.info("voicemail recorded", call_id=str(call.id), seconds=event.duration_seconds)
    return []


async def while_waiting(session: AsyncSession, call: Call) -> list[Command]:
    """What the carrier plays before it asks again (its hold music follows)."""
    if call.status == CallStatus.QUEUED:
        return await _in_line(session, call)
    if call.status == CallStatus.ON_CALL:
        return await _agent_number(session, call)
    if call.status == CallStatus.ENDED and call.answered_at is not None:
        return await _after_agent(session, call)
    if call.status in (CallStatus.ENDED, CallStatus.ABANDONED):
        return [Hangup()]
    return []  # being offered to an agent: hold on


async def after_queue(session: AsyncSession, call: Call, result: str) -> list[Command]:
    """The caller is out of the carrier's queue: to leave a voicemail, or the agent's call is
    over (Twilio: the Enqueue's action after its bridged call ends)."""
    if result == "leave" and call.disposition == VOICEMAIL:
        return [
            say(LEAVE_MESSAGE, call.language),
            Record(max_seconds=VOICEMAIL_SECONDS),
            Hangup(),
        ]
    if result == "bridged":
        return await _after_agent(session, call)
    if result == "hangup":
        return []
    return [Hangup()]


async def digits(session: AsyncSession, call: Call, pressed: str) -> list[Command]:
    """Keys from a caller outside the IVR: a choice offered while waiting, or a survey answer."""
    if call.status == CallStatus.QUEUED:
        return await _choice(session, call, pressed)
    if await _survey_due(session, call):
        score = SURVEY_SCORES.get(pressed.removesuffix("#"))
        if score is not None:
            call.survey_score = score
            session.add(call)
        return [say(SURVEY_THANKS, call.language), Hangup()]
    if call.status in (CallStatus.OFFERED, CallStatus.ON_CALL):
        return []  # keys pressed while the agent's phone rings or during the call
    return [Hangup()]


# -- in line ----------------------------------------------------------------------------------
async def _in_line(session: AsyncSession, call: Call) -> list[Command]:
    repo = ContactCenterRepository(session)
    queue = await repo.get_queue(call.queue_id) if call.queue_id else None
    if queue is None:
        return []
    now = utcnow()
    ahead, serving, mean_talk = await repo.wait_facts(call, now - RECENT)
    lines: list[Command] = [say(PLACE, call.language, place=ahead + 1)]
    seconds = expected_wait_seconds(ahead, serving, mean_talk, queue.wrap_up_seconds)
    if seconds is not None:
        lines.append(wait_line(call.language, seconds))
    limit = queue.callback_offer_after_seconds
    waited = (now - (call.queued_at or now)).total_seconds()
    if limit is not None and waited >= limit:
        lines.append(Gather(num_digits=1, timeout_seconds=6, prompt=say(OFFER, call.language)))
    return lines


async def _choice(session: AsyncSession, call: Call, pressed: str) -> list[Command]:
    """1: out of the line to leave a voicemail; 2: a callback; anything else: keep waiting."""
    choice = {"1": VOICEMAIL, "2": CALLBACK}.get(pressed.removesuffix("#"))
    if choice is None:
        return []
    repo = ContactCenterRepository(session)
    # This transaction holds the call's row: wait for the routing lock only if it is free, or
    # routing (which may be offering this very call) and this webhook would wait on each other.
    if not await repo.try_lock_routing(call.tenant_id):
        log.info("choice while routing runs: the caller keeps waiting", call_id=str(call.id))
        return []
    # Out of the line, with the machine again: not offered to agents, and not abandoned when
    # the caller hangs up. `queued_at` stays: the place a callback keeps.
    call.status, call.disposition, call.callback_requested = CallStatus.IVR, choice, True
    session.add(call)
    if choice == VOICEMAIL:
        return [Leave()]
    outbox.publish(
        session,
        CALLBACK_REQUESTED,
        {
            "call_id": str(call.id),
            "phone": call.from_number,
            "queue_id": str(call.queue_id) if call.queue_id else None,
            "queued_at": call.queued_at.isoformat() if call.queued_at else None,
            "language": call.language,
        },
    )
    return [say(CALLBACK_CONFIRMED, call.language), Hangup()]


# -- with the agent, and after ------------------------------------------------------------------
async def _agent_number(session: AsyncSession, call: Call) -> list[Command]:
    """The agent's number, said once when the call is answered."""
    if call.agent_number is not None or call.agent_id is None:
        return []
    agent = await ContactCenterRepository(session).agent(call.agent_id)
    if agent is None or agent.agent_number is None:
        return []
    call.agent_number = agent.agent_number
    session.add(call)
    return [say(AGENT_NUMBER, call.language, number=agent.agent_number)]


async def _survey_due(session: AsyncSession, call: Call) -> bool:
    if call.status != CallStatus.ENDED or call.answered_at is None or call.survey_score:
        return False
    settings = await ContactCenterRepository(session).settings_of(call.tenant_id)
    return settings is not None and settings.survey_enabled


async def _after_agent(session: AsyncSession, call: Call) -> list[Command]:
    if not await _survey_due(session, call):
        return [Hangup()]
    return [
        Gather(num_digits=1, timeout_seconds=8, prompt=say(SURVEY, call.language)),
        say(SURVEY_THANKS, call.language),
        Hangup(),
    ]
