"""IVR flows as data that tenants edit, their validation, and a pure interpreter.

A `Flow` is a graph of nodes keyed by id. Nodes that talk to the caller carry prompts per language
(BCP 47 tag -> TTS text, or {"audio": url} for a recording). Nodes that wait for keys (`language`,
`menu`, `input`) repeat their prompt up to `retries` times on a wrong or missing answer, then take
their failure path. Terminal nodes (`queue`, `voicemail`, `hangup`) end the IVR with an `Outcome`.

`validate` lists what is wrong with a flow in words a tenant admin can act on; `publish` refuses a
flow with any problem. `to_json`/`from_json` import and export flows.

The interpreter is a pure state machine: `step(flow, progress, event, context)` takes what the
caller just did (None for the first step after CallStarted, a DigitsGathered, or a GatherTimeout)
and returns the new `CallProgress`, the gateway commands to send, and an `Outcome` once the call
leaves the IVR. Nothing here touches a database, a clock or the network: business hours, the VIP
tier and the self-service lookups arrive in the `CallContext`. The `Outcome` is the hand-off:
routing the call into the named queue (or recording a voicemail) is the caller's job.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from contact_center.calendar import BusinessHours, is_open
from telephony_gateway.commands import Command, Gather, Hangup, Play, Say
from telephony_gateway.events import DigitsGathered

MANDARIN = "cmn-CN"
CANTONESE = "yue-HK"
ENGLISH = "en-US"

#: One DTMF key.
Digit = Annotated[str, StringConstraints(pattern=r"^[0-9*#]$")]
#: A BCP 47 language tag such as cmn-CN, yue-HK or en-US.
LanguageTag = Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")]
NodeId = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Text = Annotated[str, StringConstraints(min_length=1, max_length=2000)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Audio(_Model):
    """A recorded prompt."""

    audio: Annotated[str, StringConstraints(min_length=1, max_length=2000)]


#: What to play in one language: text for text-to-speech, or a recording.
Prompt = Text | Audio
#: A prompt per language tag.
Prompts = dict[LanguageTag, Prompt]

Retries = Annotated[int, Field(ge=0, le=9)]
TimeoutSeconds = Annotated[int, Field(ge=1, le=60)]


class SayNode(_Model):
    """Play a prompt, then go on."""

    kind: Literal["say"] = "say"
    prompt: Prompts
    next: NodeId


class LanguageNode(_Model):
    """Let the caller choose a language. Each option's line is played in its own language, in the
    order of `options`; a missing or wrong key, after the retries, takes `timeout_next` and keeps
    the flow's default language."""

    kind: Literal["language"] = "language"
    prompt: Prompts
    options: dict[Digit, LanguageTag]
    next: NodeId
    timeout_next: NodeId | None = None
    retries: Retries = 2
    timeout_seconds: TimeoutSeconds = 5


class MenuNode(_Model):
    """One key chooses where to go."""

    kind: Literal["menu"] = "menu"
    prompt: Prompts
    options: dict[Digit, NodeId]
    timeout_next: NodeId | None = None
    invalid_next: NodeId | None = None
    #: Played before the prompt is repeated after a wrong key.
    invalid_prompt: Prompts | None = None
    retries: Retries = 2
    timeout_seconds: TimeoutSeconds = 5


class InputNode(_Model):
    """The caller keys in a number, ended by # (or by reaching max_digits).

    The digits must have min_digits..max_digits digits and fully match `pattern` (if any). With a
    `lookup`, the named self-service lookup turns the digits into text to say; None from it counts
    as a wrong answer. With `store_as`, the digits are kept in the call's variables (and handed to
    the agent with the queue outcome). A wrong or missing answer, after the retries, takes
    `invalid_next`."""

    kind: Literal["input"] = "input"
    prompt: Prompts
    min_digits: Annotated[int, Field(ge=1, le=32)] = 1
    max_digits: Annotated[int, Field(ge=1, le=32)]
    pattern: str | None = None
    lookup: str | None = None
    store_as: Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")] | None = None
    next: NodeId
    invalid_next: NodeId | None = None
    invalid_prompt: Prompts | None = None
    retries: Retries = 2
    timeout_seconds: TimeoutSeconds = 10

    @model_validator(mode="after")
    def _consistent(self) -> InputNode:
        if self.min_digits > self.max_digits:
            raise ValueError("min_digits must not be more than max_digits")
        if self.pattern is not None:
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(f"pattern is not a valid regular expression: {exc}") from exc
        return self


class HoursNode(_Model):
    """Branch on the tenant's business hours (CallContext.is_open)."""

    kind: Literal["hours"] = "hours"
    open_next: NodeId
    closed_next: NodeId


class TierNode(_Model):
    """Branch on the caller's tier (CallContext.vip)."""

    kind: Literal["tier"] = "tier"
    vip_next: NodeId
    other_next: NodeId


class QueueNode(_Model):
    """Leave the IVR for a queue (skill group)."""

    kind: Literal["queue"] = "queue"
    queue: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    prompt: Prompts | None = None


class VoicemailNode(_Model):
    """Leave the IVR to record a message."""

    kind: Literal["voicemail"] = "voicemail"
    prompt: Prompts


class HangupNode(_Model):
    """Say goodbye and end the call."""

    kind: Literal["hangup"] = "hangup"
    prompt: Prompts | None = None


Node = Annotated[
    SayNode
    | LanguageNode
    | MenuNode
    | InputNode
    | HoursNode
    | TierNode
    | QueueNode
    | VoicemailNode
    | HangupNode,
    Field(discriminator="kind"),
]
GatheringNode = LanguageNode | MenuNode | InputNode
TerminalNode = QueueNode | VoicemailNode | HangupNode


class Flow(_Model):
    start: NodeId
    nodes: dict[NodeId, Node]
    #: The language before the caller chooses one, and when they don't.
    default_language: LanguageTag = ENGLISH
    #: The TTS voice per language, if not the carrier's default.
    voices: dict[LanguageTag, str] = {}


def languages(flow: Flow) -> list[str]:
    """The languages the flow offers: its default, then every language a language node offers."""
    offered = [flow.default_language]
    for node in flow.nodes.values():
        if isinstance(node, LanguageNode):
            offered.extend(tag for tag in node.options.values() if tag not in offered)
    return offered


def to_json(flow: Flow) -> str:
    return flow.model_dump_json(indent=2)


def from_json(data: str | bytes) -> Flow:
    """A flow from its JSON export; raises pydantic.ValidationError when malformed. Use
    `validate`/`publish` for the graph's soundness."""
    return Flow.model_validate_json(data)


# Validation -----------------------------------------------------------------------------------


def _branches(node: Node) -> list[tuple[str, str]]:
    """Every (label, target) a node can go to."""
    if isinstance(node, SayNode):
        return [("next", node.next)]
    if isinstance(node, LanguageNode):
        pairs = [("next", node.next), ("timeout_next", node.timeout_next)]
        return [(label, target) for label, target in pairs if target is not None]
    if isinstance(node, MenuNode):
        options = [(f"option {digit}", target) for digit, target in node.options.items()]
        pairs = [("timeout_next", node.timeout_next), ("invalid_next", node.invalid_next)]
        return options + [(label, target) for label, target in pairs if target is not None]
    if isinstance(node, InputNode):
        pairs = [("next", node.next), ("invalid_next", node.invalid_next)]
        return [(label, target) for label, target in pairs if target is not None]
    if isinstance(node, HoursNode):
        return [("open_next", node.open_next), ("closed_next", node.closed_next)]
    if isinstance(node, TierNode):
        return [("vip_next", node.vip_next), ("other_next", node.other_next)]
    return []


def _unattended(node: Node) -> list[str]:
    """Where a node goes when the caller presses nothing at all."""
    if isinstance(node, SayNode):
        return [node.next]
    if isinstance(node, HoursNode):
        return [node.open_next, node.closed_next]
    if isinstance(node, TierNode):
        return [node.vip_next, node.other_next]
    if isinstance(node, LanguageNode | MenuNode):
        return [node.timeout_next] if node.timeout_next is not None else []
    if isinstance(node, InputNode):
        return [node.invalid_next] if node.invalid_next is not None else []
    return []


def _prompts(node: Node) -> list[tuple[str, Prompts]]:
    found: list[tuple[str, Prompts | None]] = []
    if isinstance(node, SayNode | LanguageNode | VoicemailNode | QueueNode | HangupNode):
        found.append(("prompt", node.prompt))
    if isinstance(node, MenuNode | InputNode):
        found += [("prompt", node.prompt), ("invalid_prompt", node.invalid_prompt)]
    return [(name, prompts) for name, prompts in found if prompts is not None]


def _missing_paths(node_id: str, node: Node) -> list[str]:
    problems: list[str] = []
    where = f"Node '{node_id}' ({node.kind})"
    if isinstance(node, LanguageNode | MenuNode) and not node.options:
        problems.append(f"{where} has no options")
    if isinstance(node, LanguageNode | MenuNode) and node.timeout_next is None:
        problems.append(f"{where} has no timeout path: set timeout_next")
    if isinstance(node, MenuNode | InputNode) and node.invalid_next is None:
        problems.append(f"{where} has no invalid-input path: set invalid_next")
    if isinstance(node, InputNode) and node.lookup is None and node.store_as is None:
        problems.append(
            f"{where} neither looks the digits up nor stores them: set lookup or store_as"
        )
    return problems


def _loops(flow: Flow) -> list[list[str]]:
    """Cycles a caller who presses nothing goes round forever (each reported once)."""
    graph = {
        node_id: [target for target in _unattended(node) if target in flow.nodes]
        for node_id, node in flow.nodes.items()
    }
    done: set[str] = set()
    cycles: list[list[str]] = []
    seen: set[frozenset[str]] = set()

    def visit(node_id: str, stack: list[str]) -> None:
        if node_id in stack:
            cycle = [*stack[stack.index(node_id) :], node_id]
            key = frozenset(cycle)
            if key not in seen:
                seen.add(key)
                cycles.append(cycle)
            return
        if node_id in done:
            return
        stack.append(node_id)
        for target in graph[node_id]:
            visit(target, stack)
        stack.pop()
        done.add(node_id)

    for node_id in flow.nodes:
        visit(node_id, [])
    return cycles


def validate(flow: Flow, *, lookups: Collection[str] | None = None) -> list[str]:
    """Everything that would stop this flow from being published, in words for a tenant admin;
    [] when it is sound. With `lookups` (the names of the available self-service lookups), an
    input node naming any other lookup is a problem too."""
    problems: list[str] = []
    nodes = flow.nodes
    if flow.start not in nodes:
        problems.append(f"The start node '{flow.start}' does not exist")

    for node_id, node in nodes.items():
        for label, target in _branches(node):
            if target not in nodes:
                problems.append(
                    f"Node '{node_id}': {label} goes to '{target}', which does not exist"
                )
        problems += _missing_paths(node_id, node)

    if flow.start in nodes:
        reached = {flow.start}
        todo = [flow.start]
        while todo:
            for _, target in _branches(nodes[todo.pop()]):
                if target in nodes and target not in reached:
                    reached.add(target)
                    todo.append(target)
        problems += [
            f"Node '{node_id}' cannot be reached from the start node '{flow.start}'"
            for node_id in nodes
            if node_id not in reached
        ]

    for cycle in _loops(flow):
        route = " -> ".join(f"'{node_id}'" for node_id in cycle)
        if all(isinstance(nodes[node_id], SayNode | HoursNode | TierNode) for node_id in cycle):
            problems.append(
                f"Infinite loop: {route} never waits for the caller and never reaches "
                "a queue, voicemail or hangup"
            )
        else:
            problems.append(
                f"Infinite loop: a caller who presses nothing goes round {route} forever"
            )

    offered = languages(flow)
    for node_id, node in nodes.items():
        wanted = list(node.options.values()) if isinstance(node, LanguageNode) else offered
        for name, prompts in _prompts(node):
            missing = [tag for tag in dict.fromkeys(wanted) if tag not in prompts]
            if missing:
                problems.append(f"Node '{node_id}': {name} has nothing for {', '.join(missing)}")

    if lookups is not None:
        for node_id, node in nodes.items():
            if isinstance(node, InputNode) and node.lookup and node.lookup not in lookups:
                problems.append(f"Node '{node_id}': lookup '{node.lookup}' is not available")
    return problems


class FlowInvalid(ValueError):
    """A flow that cannot be published; `problems` says why."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("The IVR flow cannot be published: " + "; ".join(problems))
        self.problems = problems


def publish(flow: Flow, *, lookups: Collection[str] | None = None) -> Flow:
    """The flow itself when it is sound; FlowInvalid listing every problem otherwise."""
    problems = validate(flow, lookups=lookups)
    if problems:
        raise FlowInvalid(problems)
    return flow


# Interpreter ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class GatherTimeout:
    """The caller pressed nothing before the Gather timed out."""


#: What the caller just did: None (the first step, after CallStarted), keys, or nothing in time.
#: A DigitsGathered with empty digits counts as a timeout.
Event = DigitsGathered | GatherTimeout | None

Lookup = Callable[[str], str | None]


@dataclass(frozen=True)
class CallContext:
    """What the interpreter needs to know about the world for this call."""

    is_open: bool = True
    vip: bool = False
    #: Self-service lookups by name: digits in, text to say out (None: not found).
    lookups: Mapping[str, Lookup] = field(default_factory=dict)

    @classmethod
    def at(
        cls,
        hours: BusinessHours,
        when: datetime,
        *,
        vip: bool = False,
        lookups: Mapping[str, Lookup] | None = None,
    ) -> CallContext:
        """A context whose opening hours are the tenant's calendar at `when` (aware)."""
        return cls(is_open=is_open(hours, when), vip=vip, lookups=lookups or {})


@dataclass(frozen=True)
class ToQueue:
    queue_name: str
    language: str
    variables: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ToVoicemail:
    language: str


@dataclass(frozen=True)
class HangUp:
    pass


Outcome = ToQueue | ToVoicemail | HangUp


class CallProgress(_Model):
    """Where a call is in its flow; keep it between steps (it serialises to JSON)."""

    node: str
    language: str
    retries_left: int = 0
    variables: dict[str, str] = {}
    #: (node id, None) when a node is entered; (node id, digits) for an answer there, "" when the
    #: caller pressed nothing.
    path: list[tuple[str, str | None]] = []
    #: A Gather was sent at `node`: the next event answers it.
    waiting: bool = False
    #: The call has left the IVR.
    finished: bool = False
    #: The stored flow version the call hears (its id), kept for the whole call so a version
    #: published meanwhile does not change a live call's flow; None: the demo flow.
    flow_version: str | None = None
    #: The caller's tier (VIP numbers, customer tiers), decided once, when the call first
    #: needs it (a tier node, a queue); None until then.
    vip: bool | None = None


class IvrError(RuntimeError):
    """The flow or the events do not allow a step (an unpublished flow, input out of turn...)."""


def begin(
    flow: Flow,
    language: str | None = None,
    *,
    flow_version: str | None = None,
    vip: bool | None = None,
) -> CallProgress:
    """The progress of a new call, before its first step."""
    return CallProgress(
        node=flow.start,
        language=language or flow.default_language,
        flow_version=flow_version,
        vip=vip,
    )


#: Nodes entered in one step before the interpreter gives up (a published flow never gets near).
MAX_HOPS = 100


def step(
    flow: Flow, progress: CallProgress, event: Event, context: CallContext
) -> tuple[CallProgress, list[Command], Outcome | None]:
    """Advance a call by one event: the new progress, the commands for the gateway, and the
    outcome once the call leaves the IVR."""
    if progress.finished:
        raise IvrError("the call has already left the IVR")
    run = _Run(flow, context, progress)
    outcome: Outcome | None
    if not progress.waiting:
        if event is not None:
            raise IvrError("input arrived before the IVR asked for any")
        outcome = run.go(progress.node)
    elif event is None:
        run.ask(run.gathering(progress.node))  # asked again, e.g. a repeated webhook
        outcome = None
    else:
        outcome = run.answer(event)
    return run.progress(), run.commands, outcome


class _Run:
    """The mutable working state of one step."""

    def __init__(self, flow: Flow, context: CallContext, progress: CallProgress) -> None:
        self.flow = flow
        self.context = context
        self.node_id = progress.node
        self.language = progress.language
        self.retries_left = progress.retries_left
        self.variables = dict(progress.variables)
        self.path = list(progress.path)
        self.waiting = progress.waiting
        self.finished = False
        self.flow_version, self.vip = progress.flow_version, progress.vip
        self.commands: list[Command] = []

    def progress(self) -> CallProgress:
        return CallProgress(
            node=self.node_id,
            language=self.language,
            retries_left=self.retries_left,
            variables=self.variables,
            path=self.path,
            waiting=self.waiting,
            finished=self.finished,
            flow_version=self.flow_version,
            vip=self.vip,
        )

    def node(self, node_id: str) -> Node:
        try:
            return self.flow.nodes[node_id]
        except KeyError:
            raise IvrError(f"the flow has no node '{node_id}'") from None

    def gathering(self, node_id: str) -> GatheringNode:
        node = self.node(node_id)
        if not isinstance(node, LanguageNode | MenuNode | InputNode):
            raise IvrError(f"node '{node_id}' does not wait for input")
        return node

    # Prompts

    def render(self, prompts: Prompts | None, language: str | None = None) -> Say | Play | None:
        if not prompts:
            return None
        wanted = language or self.language
        for tag in (wanted, self.flow.default_language, *prompts):
            if tag in prompts:
                prompt = prompts[tag]
                if isinstance(prompt, Audio):
                    return Play(prompt.audio)
                return Say(prompt, language=tag, voice=self.flow.voices.get(tag))
        return None

    def say(self, prompts: Prompts | None) -> None:
        command = self.render(prompts)
        if command is not None:
            self.commands.append(command)

    def ask(self, node: GatheringNode) -> None:
        """The node's prompt with a Gather for the answer."""
        if isinstance(node, LanguageNode):
            lines = [self.render(node.prompt, tag) for tag in dict.fromkeys(node.options.values())]
            spoken = [line for line in lines if line is not None]
            self.commands += spoken[:-1]
            prompt = spoken[-1] if spoken else None
            self.commands.append(
                Gather(num_digits=1, timeout_seconds=node.timeout_seconds, prompt=prompt)
            )
        elif isinstance(node, MenuNode):
            self.commands.append(
                Gather(
                    num_digits=1,
                    timeout_seconds=node.timeout_seconds,
                    finish_on_key="" if "#" in node.options else "#",
                    prompt=self.render(node.prompt),
                )
            )
        else:
            self.commands.append(
                Gather(
                    num_digits=node.max_digits,
                    timeout_seconds=node.timeout_seconds,
                    finish_on_key="#",
                    prompt=self.render(node.prompt),
                )
            )
        self.waiting = True

    # Moving

    def go(self, node_id: str) -> Outcome | None:
        """Enter a node and carry on until one waits for the caller or ends the IVR."""
        for _ in range(MAX_HOPS):
            node = self.node(node_id)
            self.node_id = node_id
            self.waiting = False
            self.path.append((node_id, None))
            if isinstance(node, SayNode):
                self.say(node.prompt)
                node_id = node.next
            elif isinstance(node, HoursNode):
                node_id = node.open_next if self.context.is_open else node.closed_next
            elif isinstance(node, TierNode):
                node_id = node.vip_next if self.context.vip else node.other_next
            elif isinstance(node, LanguageNode | MenuNode | InputNode):
                self.retries_left = node.retries
                self.ask(node)
                return None
            else:
                return self.leave(node)
        raise IvrError(f"the flow went round without input at '{node_id}'")

    def leave(self, node: TerminalNode) -> Outcome:
        self.finished = True
        self.say(node.prompt)
        if isinstance(node, QueueNode):
            return ToQueue(node.queue, self.language, dict(self.variables))
        if isinstance(node, VoicemailNode):
            return ToVoicemail(self.language)
        self.commands.append(Hangup())
        return HangUp()

    def answer(self, event: DigitsGathered | GatherTimeout) -> Outcome | None:
        node = self.gathering(self.node_id)
        digits = event.digits if isinstance(event, DigitsGathered) else ""
        if isinstance(node, InputNode):
            digits = digits.removesuffix("#")
        self.path.append((self.node_id, digits))
        self.waiting = False
        if not digits:
            return self.failed(node, invalid=False)

        if isinstance(node, LanguageNode):
            if digits not in node.options:
                return self.failed(node, invalid=True)
            self.language = node.options[digits]
            return self.go(node.next)

        if isinstance(node, MenuNode):
            if digits not in node.options:
                return self.failed(node, invalid=True)
            return self.go(node.options[digits])

        if not _well_formed(node, digits):
            return self.failed(node, invalid=True)
        if node.lookup is not None:
            lookup = self.context.lookups.get(node.lookup)
            if lookup is None:
                raise IvrError(f"node '{self.node_id}' needs the lookup '{node.lookup}'")
            result = lookup(digits)
            if result is None:
                return self.failed(node, invalid=True)
            self.commands.append(
                Say(result, language=self.language, voice=self.flow.voices.get(self.language))
            )
        if node.store_as is not None:
            self.variables[node.store_as] = digits
        return self.go(node.next)

    def failed(self, node: GatheringNode, *, invalid: bool) -> Outcome | None:
        """A wrong or missing answer: ask again while retries last, then the failure path."""
        if self.retries_left > 0:
            self.retries_left -= 1
            if invalid and isinstance(node, MenuNode | InputNode):
                self.say(node.invalid_prompt)
            self.ask(node)
            return None
        target: str | None
        if isinstance(node, LanguageNode):
            target = node.timeout_next
        elif isinstance(node, InputNode):
            target = node.invalid_next
        else:
            target = node.invalid_next if invalid else node.timeout_next
        if target is None:
            raise IvrError(f"node '{self.node_id}' has no path for a failed answer")
        return self.go(target)


def _well_formed(node: InputNode, digits: str) -> bool:
    if not digits.isdecimal() or not node.min_digits <= len(digits) <= node.max_digits:
        return False
    return node.pattern is None or re.fullmatch(node.pattern, digits) is not None


# The sample flow ------------------------------------------------------------------------------


def _p(cmn: str, yue: str, en: str) -> Prompts:
    return {MANDARIN: cmn, CANTONESE: yue, ENGLISH: en}


def _nodes(pairs: Iterable[tuple[str, Node]]) -> dict[str, Node]:
    return dict(pairs)


#: A courier's line: language, business hours, VIP tier, then the main menu.
DEMO_FLOW = Flow(
    start="language",
    default_language=MANDARIN,
    nodes=_nodes(
        [
            (
                "language",
                LanguageNode(
                    prompt=_p(
                        "您好，欢迎致电迅达快递。普通话服务请按1。",
                        "廣東話服務請撳2。",
                        "For English, press 3.",
                    ),
                    options={"1": MANDARIN, "2": CANTONESE, "3": ENGLISH},
                    next="hours",
                    timeout_next="hours",
                    retries=1,
                ),
            ),
            ("hours", HoursNode(open_next="tier", closed_next="closed")),
            (
                "closed",
                VoicemailNode(
                    prompt=_p(
                        "您好，现在是非工作时间。请在提示音后留言，我们会尽快给您回电。",
                        "你好，而家係非辦公時間。唔該喺提示音之後留低口訊，我哋會盡快覆你電話。",
                        "We are closed at the moment. Please leave a message after the tone "
                        "and we will call you back as soon as we can.",
                    )
                ),
            ),
            ("tier", TierNode(vip_next="vip", other_next="main")),
            (
                "vip",
                QueueNode(
                    queue="VIP",
                    prompt=_p(
                        "尊敬的贵宾您好，正在为您转接专属客服，请稍候。",
                        "尊貴嘅貴賓你好，而家幫你轉駁專屬客戶服務員，唔該稍等。",
                        "Welcome back. Connecting you to your dedicated team, please hold.",
                    ),
                ),
            ),
            (
                "main",
                MenuNode(
                    prompt=_p(
                        "查询包裹请按1，预约上门取件请按2，投诉请按3，人工服务请按0。",
                        "查詢包裹請撳1，預約上門收件請撳2，投訴請撳3，轉駁客戶服務員請撳0。",
                        "To track a parcel, press 1. To book a pickup, press 2. "
                        "To make a complaint, press 3. To speak to an agent, press 0.",
                    ),
                    options={"1": "track", "2": "pickup", "3": "complaints", "0": "agent"},
                    invalid_prompt=_p(
                        "对不起，您的选择无效。",
                        "對唔住，你嘅選擇唔啱。",
                        "Sorry, that is not one of the choices.",
                    ),
                    timeout_next="agent",
                    invalid_next="agent",
                    retries=2,
                ),
            ),
            (
                "track",
                InputNode(
                    prompt=_p(
                        "请输入您的运单号码，以井号键结束。",
                        "唔該輸入你嘅運單號碼，然後撳井字鍵。",
                        "Please enter your order number, followed by the hash key.",
                    ),
                    min_digits=6,
                    max_digits=12,
                    pattern=r"\d{6,12}",
                    lookup="order_status",
                    store_as="order_number",
                    next="main",
                    invalid_next="track_failed",
                    invalid_prompt=_p(
                        "对不起，找不到这个运单号码，请重新输入。",
                        "對唔住，搵唔到呢個運單號碼，唔該再輸入一次。",
                        "Sorry, we could not find that order number. Please try again.",
                    ),
                    retries=2,
                ),
            ),
            (
                "track_failed",
                SayNode(
                    prompt=_p(
                        "对不起，未能查询到您的包裹，正在为您转接人工服务。",
                        "對唔住，查詢唔到你嘅包裹，而家幫你轉駁客戶服務員。",
                        "Sorry, we could not find your parcel. Let me put you through to an agent.",
                    ),
                    next="agent",
                ),
            ),
            (
                "pickup",
                QueueNode(
                    queue="Pickup",
                    prompt=_p(
                        "正在为您转接上门取件预约专线，请稍候。",
                        "而家幫你轉駁預約收件專線，唔該稍等。",
                        "Connecting you to our pickup team, please hold.",
                    ),
                ),
            ),
            (
                "complaints",
                QueueNode(
                    queue="Complaints",
                    prompt=_p(
                        "正在为您转接投诉专线，请稍候。",
                        "而家幫你轉駁投訴專線，唔該稍等。",
                        "Connecting you to our complaints team, please hold.",
                    ),
                ),
            ),
            (
                "agent",
                QueueNode(
                    queue="General",
                    prompt=_p(
                        "正在为您转接人工客服，请稍候。",
                        "而家幫你轉駁客戶服務員，唔該稍等。",
                        "Connecting you to an agent, please hold.",
                    ),
                ),
            ),
        ]
    ),
)
