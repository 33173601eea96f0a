"""IVR flows: validation before publication, JSON import/export, and the pure interpreter walking
the sample courier flow in Mandarin, Cantonese and English. No database, no carrier."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from contact_center.calendar import BusinessHours
from contact_center.ivr import (
    CANTONESE,
    DEMO_FLOW,
    ENGLISH,
    MANDARIN,
    Audio,
    CallContext,
    CallProgress,
    Flow,
    FlowInvalid,
    GatherTimeout,
    HangUp,
    InputNode,
    IvrError,
    MenuNode,
    Outcome,
    Prompts,
    QueueNode,
    SayNode,
    ToQueue,
    ToVoicemail,
    VoicemailNode,
    begin,
    from_json,
    languages,
    publish,
    step,
    to_json,
    validate,
)
from telephony_gateway.commands import Command, Gather, Hangup, Play, Say
from telephony_gateway.events import DigitsGathered

STATUSES = {"123456789": "Parcel 123456789 is out for delivery."}


def order_status(number: str) -> str | None:
    return STATUSES.get(number)


CONTEXT = CallContext(is_open=True, vip=False, lookups={"order_status": order_status})


def keys(digits: str) -> DigitsGathered:
    return DigitsGathered(
        provider="simulator", provider_event_id=f"dtmf-{digits}", call_id="call-1", digits=digits
    )


TIMEOUT = GatherTimeout()


def spoken(commands: Sequence[Command]) -> list[Say]:
    """Every Say, including prompts nested in a Gather, in order."""
    found: list[Say] = []
    for command in commands:
        if isinstance(command, Gather) and isinstance(command.prompt, Say):
            found.append(command.prompt)
        elif isinstance(command, Say):
            found.append(command)
    return found


def prompt_text(node_id: str, language: str, field: str = "prompt") -> str:
    prompts = getattr(DEMO_FLOW.nodes[node_id], field)
    text = prompts[language]
    assert isinstance(text, str)
    return text


class Call:
    """Drives one call through a flow, keeping every command sent."""

    def __init__(self, flow: Flow = DEMO_FLOW, context: CallContext = CONTEXT) -> None:
        self.flow, self.context = flow, context
        self.progress = begin(flow)
        self.commands: list[Command] = []
        self.outcome: Outcome | None = None
        self.last: list[Command] = self.send(None)

    def send(self, event: DigitsGathered | GatherTimeout | None) -> list[Command]:
        assert self.outcome is None
        self.progress, commands, self.outcome = step(self.flow, self.progress, event, self.context)
        self.commands += commands
        self.last = commands
        return commands

    def press(self, *entries: str | None) -> Call:
        for entry in entries:
            self.send(TIMEOUT if entry is None else keys(entry))
        return self


# Validation -----------------------------------------------------------------------------------


def test_the_demo_flow_is_sound() -> None:
    assert validate(DEMO_FLOW) == []
    assert validate(DEMO_FLOW, lookups={"order_status"}) == []
    assert publish(DEMO_FLOW) is DEMO_FLOW
    assert languages(DEMO_FLOW) == [MANDARIN, CANTONESE, ENGLISH]


def base(**nodes: Any) -> dict[str, Any]:
    """A small sound flow as a tenant's editor would send it; `nodes` replace or add nodes."""
    flow: dict[str, Any] = {
        "start": "menu",
        "default_language": ENGLISH,
        "nodes": {
            "menu": {
                "kind": "menu",
                "prompt": {ENGLISH: "Press 1 for sales."},
                "options": {"1": "sales"},
                "timeout_next": "bye",
                "invalid_next": "bye",
            },
            "sales": {"kind": "queue", "queue": "Sales"},
            "bye": {"kind": "hangup", "prompt": {ENGLISH: "Goodbye."}},
        },
    }
    flow["nodes"].update(nodes)
    return flow


def problems(data: dict[str, Any]) -> list[str]:
    return validate(Flow.model_validate(data))


def menu(**changes: Any) -> dict[str, Any]:
    node: dict[str, Any] = dict(base()["nodes"]["menu"])
    node.update(changes)
    return {key: value for key, value in node.items() if value is not None}


def test_the_small_flow_is_sound() -> None:
    assert problems(base()) == []


def test_a_dangling_branch_is_named() -> None:
    found = problems(base(menu=menu(options={"1": "sales", "2": "billing"})))
    assert found == ["Node 'menu': option 2 goes to 'billing', which does not exist"]


def test_a_missing_start_node_is_named() -> None:
    data = base()
    data["start"] = "welcome"
    found = problems(data)
    assert "The start node 'welcome' does not exist" in found


def test_an_unreachable_node_is_named() -> None:
    found = problems(base(orphan={"kind": "hangup"}))
    assert found == ["Node 'orphan' cannot be reached from the start node 'menu'"]


def test_a_menu_without_timeout_or_invalid_path_is_named() -> None:
    found = problems(base(menu=menu(timeout_next=None, invalid_next=None)))
    assert found == [
        "Node 'menu' (menu) has no timeout path: set timeout_next",
        "Node 'menu' (menu) has no invalid-input path: set invalid_next",
        "Node 'bye' cannot be reached from the start node 'menu'",
    ]


def test_an_input_without_invalid_path_is_named() -> None:
    data = base(
        menu=menu(options={"1": "account"}),
        account={
            "kind": "input",
            "prompt": {ENGLISH: "Your account number?"},
            "max_digits": 8,
            "store_as": "account",
            "next": "sales",
        },
    )
    assert problems(data) == ["Node 'account' (input) has no invalid-input path: set invalid_next"]


def test_an_input_that_neither_looks_up_nor_stores_is_named() -> None:
    data = base(
        menu=menu(options={"1": "account"}),
        account={
            "kind": "input",
            "prompt": {ENGLISH: "Your account number?"},
            "max_digits": 8,
            "next": "sales",
            "invalid_next": "bye",
        },
    )
    [found] = problems(data)
    assert found.startswith("Node 'account' (input) neither looks the digits up nor stores them")


def test_a_language_menu_without_timeout_path_is_named() -> None:
    data = base(
        lang={
            "kind": "language",
            "prompt": {ENGLISH: "For English press 1.", CANTONESE: "廣東話請撳2。"},
            "options": {"1": ENGLISH, "2": CANTONESE},
            "next": "bye",
        },
        menu=menu(prompt={ENGLISH: "Press 1.", CANTONESE: "請撳1。"}),
        bye={"kind": "hangup", "prompt": {ENGLISH: "Goodbye.", CANTONESE: "再見。"}},
    )
    data["start"] = "lang"
    found = problems(data)
    assert "Node 'lang' (language) has no timeout path: set timeout_next" in found


def test_an_unknown_lookup_is_named_when_the_lookups_are_given() -> None:
    assert validate(DEMO_FLOW, lookups=["depot_locations"]) == [
        "Node 'track': lookup 'order_status' is not available"
    ]


def test_a_loop_without_input_is_named() -> None:
    data = base(
        menu=menu(options={"1": "ad"}),
        ad={"kind": "say", "prompt": {ENGLISH: "Try our express service!"}, "next": "again"},
        again={"kind": "hours", "open_next": "ad", "closed_next": "bye"},
    )
    [found] = [problem for problem in problems(data) if "loop" in problem]
    assert found == (
        "Infinite loop: 'ad' -> 'again' -> 'ad' never waits for the caller and never reaches "
        "a queue, voicemail or hangup"
    )


def test_a_loop_a_silent_caller_never_leaves_is_named() -> None:
    data = base(
        menu=menu(timeout_next="hint"),
        hint={"kind": "say", "prompt": {ENGLISH: "Please choose."}, "next": "menu"},
    )
    assert problems(data) == [
        "Infinite loop: a caller who presses nothing goes round 'menu' -> 'hint' -> 'menu' forever"
    ]


def test_a_loop_through_an_answer_is_fine() -> None:
    data = base(
        menu=menu(options={"1": "sales", "9": "hint"}),
        hint={"kind": "say", "prompt": {ENGLISH: "Sales is 1."}, "next": "menu"},
    )
    assert problems(data) == []


def test_a_prompt_missing_an_offered_language_is_named() -> None:
    data = base(
        lang={
            "kind": "language",
            "prompt": {ENGLISH: "For English press 1.", MANDARIN: "普通话请按2。"},
            "options": {"1": ENGLISH, "2": MANDARIN},
            "next": "menu",
            "timeout_next": "menu",
        },
        menu=menu(prompt={ENGLISH: "Press 1.", MANDARIN: "请按1。"}),
    )
    data["start"] = "lang"
    assert problems(data) == ["Node 'bye': prompt has nothing for cmn-CN"]


def test_a_language_menu_must_speak_each_of_its_languages() -> None:
    data = base(
        lang={
            "kind": "language",
            "prompt": {ENGLISH: "For English press 1."},
            "options": {"1": ENGLISH, "2": CANTONESE},
            "next": "menu",
            "timeout_next": "menu",
        },
    )
    data["start"] = "lang"
    found = problems(data)
    assert "Node 'lang': prompt has nothing for yue-HK" in found


def test_publish_refuses_a_flow_with_problems() -> None:
    flow = Flow.model_validate(base(orphan={"kind": "hangup"}))
    with pytest.raises(FlowInvalid) as exc:
        publish(flow)
    assert exc.value.problems == ["Node 'orphan' cannot be reached from the start node 'menu'"]
    assert "orphan" in str(exc.value)


@pytest.mark.parametrize(
    ("node", "where"),
    [
        ({"kind": "transfer", "to": "+8620"}, ("nodes", "sales")),
        ({"kind": "queue"}, ("nodes", "sales", "queue", "queue")),
        ({"kind": "menu", "prompt": {}, "options": {"10": "bye"}}, ("nodes", "sales", "menu")),
        (
            {"kind": "input", "prompt": {}, "max_digits": 4, "pattern": "(", "next": "bye"},
            ("nodes", "sales", "input"),
        ),
        (
            {"kind": "input", "prompt": {}, "min_digits": 6, "max_digits": 4, "next": "bye"},
            ("nodes", "sales", "input"),
        ),
        ({"kind": "say", "prompt": {"English": "Hi"}, "next": "bye"}, ("nodes", "sales", "say")),
    ],
)
def test_malformed_nodes_do_not_parse(node: dict[str, Any], where: tuple[str, ...]) -> None:
    with pytest.raises(ValidationError) as exc:
        Flow.model_validate(base(sales=node))
    assert exc.value.errors()[0]["loc"][: len(where)] == where


# Import and export ----------------------------------------------------------------------------


def test_json_round_trip() -> None:
    exported = to_json(DEMO_FLOW)
    assert "唔該" in exported  # readable, not \\u-escaped
    assert from_json(exported) == DEMO_FLOW
    assert to_json(from_json(exported)) == exported


def test_json_round_trip_with_a_recorded_prompt() -> None:
    data = base(menu=menu(prompt={ENGLISH: {"audio": "https://cdn.example/menu.wav"}}))
    flow = Flow.model_validate(data)
    menu_node = flow.nodes["menu"]
    assert isinstance(menu_node, MenuNode)
    assert menu_node.prompt[ENGLISH] == Audio(audio="https://cdn.example/menu.wav")
    assert from_json(to_json(flow)) == flow
    call = Call(flow, CallContext())
    assert call.last == [
        Gather(num_digits=1, timeout_seconds=5, prompt=Play("https://cdn.example/menu.wav"))
    ]


# Walking the demo flow ------------------------------------------------------------------------


def test_the_first_step_offers_the_languages_each_in_its_own() -> None:
    call = Call()
    assert call.last == [
        Say(prompt_text("language", MANDARIN), language=MANDARIN),
        Say(prompt_text("language", CANTONESE), language=CANTONESE),
        Gather(
            num_digits=1,
            timeout_seconds=5,
            prompt=Say(prompt_text("language", ENGLISH), language=ENGLISH),
        ),
    ]
    assert "普通话" in prompt_text("language", MANDARIN)
    assert "廣東話" in prompt_text("language", CANTONESE)
    assert call.progress.waiting and call.progress.node == "language"


@pytest.mark.parametrize(
    ("key", "language", "choice", "queue", "marker"),
    [
        ("1", MANDARIN, "3", "Complaints", "请按"),
        ("2", CANTONESE, "2", "Pickup", "請撳"),
        ("3", ENGLISH, "0", "General", "press"),
    ],
)
def test_each_language_reaches_a_queue(
    key: str, language: str, choice: str, queue: str, marker: str
) -> None:
    call = Call()
    call.press(key)
    menu_said = spoken(call.last)
    assert menu_said == [Say(prompt_text("main", language), language=language)]
    assert marker in menu_said[0].text
    gather = call.last[-1]
    assert isinstance(gather, Gather) and gather.num_digits == 1

    call.press(choice)
    assert call.outcome == ToQueue(queue, language, {})
    destination = {"Complaints": "complaints", "Pickup": "pickup", "General": "agent"}[queue]
    assert spoken(call.last) == [Say(prompt_text(destination, language), language=language)]
    assert call.progress.finished
    assert call.progress.path == [
        ("language", None),
        ("language", key),
        ("hours", None),
        ("tier", None),
        ("main", None),
        ("main", choice),
        (destination, None),
    ]
    # Everything after the language choice is in that language only.
    after_choice = spoken(call.commands)[3:]
    assert after_choice and all(say.language == language for say in after_choice)


def test_cantonese_prompts_are_cantonese() -> None:
    call = Call().press("2", "1")
    [said] = spoken(call.last)
    assert said.language == CANTONESE
    assert "唔該" in said.text and "井字鍵" in said.text
    assert "查詢包裹" in prompt_text("main", CANTONESE)


def test_order_status_with_a_valid_number() -> None:
    call = Call().press("3", "1")
    assert call.last == [
        Gather(
            num_digits=12,
            timeout_seconds=10,
            finish_on_key="#",
            prompt=Say(prompt_text("track", ENGLISH), language=ENGLISH),
        )
    ]
    call.press("123456789#")
    said = spoken(call.last)
    assert said[0] == Say("Parcel 123456789 is out for delivery.", language=ENGLISH)
    assert said[1] == Say(prompt_text("main", ENGLISH), language=ENGLISH)  # back to the menu
    assert call.progress.node == "main" and call.outcome is None

    call.press("0")
    assert call.outcome == ToQueue("General", ENGLISH, {"order_number": "123456789"})


def test_order_status_with_an_invalid_number_retries_then_takes_the_invalid_path() -> None:
    looked_up: list[str] = []

    def lookup(number: str) -> str | None:
        looked_up.append(number)
        return order_status(number)

    call = Call(context=CallContext(lookups={"order_status": lookup})).press("1", "1")
    assert call.progress.retries_left == 2

    call.press("123")  # too short: never looked up
    sorry = Say(prompt_text("track", MANDARIN, "invalid_prompt"), language=MANDARIN)
    again = Say(prompt_text("track", MANDARIN), language=MANDARIN)
    assert spoken(call.last) == [sorry, again]
    assert call.progress.retries_left == 1 and call.progress.node == "track"

    call.press("999999")  # well formed, but no such order
    assert spoken(call.last) == [sorry, again]
    assert call.progress.retries_left == 0

    call.press("888888")
    assert call.outcome == ToQueue("General", MANDARIN, {})
    assert spoken(call.last) == [
        Say(prompt_text("track_failed", MANDARIN), language=MANDARIN),
        Say(prompt_text("agent", MANDARIN), language=MANDARIN),
    ]
    assert looked_up == ["999999", "888888"]
    assert [entry for entry in call.progress.path if entry[0] == "track"] == [
        ("track", None),
        ("track", "123"),
        ("track", "999999"),
        ("track", "888888"),
    ]


def test_silence_at_the_order_number_also_ends_on_the_invalid_path() -> None:
    call = Call().press("3", "1", None, None, None)
    assert call.outcome == ToQueue("General", ENGLISH, {})
    assert ("track_failed", None) in call.progress.path


def test_a_wrong_menu_key_is_repeated_then_goes_to_an_agent() -> None:
    call = Call().press("2", "7")
    assert spoken(call.last) == [
        Say(prompt_text("main", CANTONESE, "invalid_prompt"), language=CANTONESE),
        Say(prompt_text("main", CANTONESE), language=CANTONESE),
    ]
    call.press("8", "9")
    assert call.outcome == ToQueue("General", CANTONESE, {})


def test_no_language_chosen_falls_back_to_mandarin() -> None:
    call = Call().press(None)
    assert len(spoken(call.last)) == 3  # the language menu once more
    call.press("5")  # not an option, and no retries left
    assert call.progress.language == MANDARIN
    assert spoken(call.last) == [Say(prompt_text("main", MANDARIN), language=MANDARIN)]


def test_an_empty_digits_event_counts_as_a_timeout() -> None:
    call = Call().press("3", "")
    assert call.progress.path[-1] == ("main", "")
    assert spoken(call.last) == [Say(prompt_text("main", ENGLISH), language=ENGLISH)]


def test_after_hours_goes_to_voicemail() -> None:
    call = Call(context=CallContext(is_open=False)).press("2")
    assert call.outcome == ToVoicemail(CANTONESE)
    assert call.last == [Say(prompt_text("closed", CANTONESE), language=CANTONESE)]
    assert not any(isinstance(command, Gather) for command in call.last)


def test_the_context_can_come_from_the_tenants_calendar() -> None:
    hours = BusinessHours(time_zone="Asia/Shanghai", weekly={"tue": [("08:00", "20:00")]})
    tuesday_22_00_local = datetime(2026, 9, 15, 14, 0, tzinfo=UTC)
    tuesday_10_00_local = datetime(2026, 9, 15, 2, 0, tzinfo=UTC)
    assert not CallContext.at(hours, tuesday_22_00_local).is_open
    assert CallContext.at(hours, tuesday_10_00_local, vip=True).vip
    call = Call(context=CallContext.at(hours, tuesday_22_00_local)).press("1")
    assert call.outcome == ToVoicemail(MANDARIN)


def test_a_vip_goes_straight_to_the_vip_queue() -> None:
    call = Call(context=CallContext(vip=True)).press("3")
    assert call.outcome == ToQueue("VIP", ENGLISH, {})
    assert call.last == [Say(prompt_text("vip", ENGLISH), language=ENGLISH)]
    assert "main" not in {node for node, _ in call.progress.path}


def test_a_hangup_node_hangs_up() -> None:
    call = Call(Flow.model_validate(base()), CallContext()).press(None, None, None)
    assert call.outcome == HangUp()
    assert call.last == [Say("Goodbye.", language=ENGLISH), Hangup()]


def test_progress_survives_a_trip_through_json() -> None:
    call = Call().press("3", "1")
    stored = call.progress.model_dump_json()
    progress = CallProgress.model_validate_json(stored)
    assert progress == call.progress
    progress, commands, outcome = step(DEMO_FLOW, progress, keys("123456789"), CONTEXT)
    assert outcome is None
    assert spoken(commands)[0].text == STATUSES["123456789"]
    assert progress.variables == {"order_number": "123456789"}


def test_a_repeated_first_event_repeats_the_question() -> None:
    call = Call().press("3")
    before = call.progress
    progress, commands, outcome = step(DEMO_FLOW, before, None, CONTEXT)
    assert commands == call.last and outcome is None
    assert progress.retries_left == before.retries_left


def test_out_of_turn_events_are_refused() -> None:
    with pytest.raises(IvrError, match="before the IVR asked"):
        step(DEMO_FLOW, begin(DEMO_FLOW), keys("1"), CONTEXT)
    call = Call().press("3", "2")
    assert call.progress.finished
    with pytest.raises(IvrError, match="already left"):
        step(DEMO_FLOW, call.progress, keys("1"), CONTEXT)


def test_a_lookup_the_context_lacks_is_an_error() -> None:
    call = Call(context=CallContext()).press("3", "1")
    with pytest.raises(IvrError, match="order_status"):
        call.press("123456789")


def test_nodes_can_be_built_in_python() -> None:
    hello: Prompts = {ENGLISH: "Hello."}
    flow = Flow(
        start="hello",
        nodes={
            "hello": SayNode(prompt=hello, next="ask"),
            "ask": InputNode(
                prompt={ENGLISH: "Your PIN?"},
                min_digits=4,
                max_digits=4,
                store_as="pin",
                next="queue",
                invalid_next="mail",
            ),
            "queue": QueueNode(queue="Experts"),
            "mail": VoicemailNode(prompt={ENGLISH: "Leave a message."}),
        },
    )
    assert publish(flow) is flow
    call = Call(flow, CallContext()).press("1234")
    assert call.outcome == ToQueue("Experts", ENGLISH, {"pin": "1234"})
