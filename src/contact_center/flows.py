"""Tenants' IVR flows as stored versions: drafts saved from the editor or an imported JSON file,
one published version that callers hear, earlier published versions retired.

A version's document never changes once saved (an edit is a new draft), so a call that began in
version 4 finishes in version 4 even if version 5 is published meanwhile: the call's IVR progress
names its version. A tenant without any published version gets `ivr.DEMO_FLOW`.

A draft is checked when it is saved: a document that is not a flow at all (bad JSON, an unknown
node kind, a wrong field) is refused, naming the node and the field; a flow whose graph is not
sound yet (a dangling branch, an unreachable node, a menu without a timeout path) is saved with
its problems listed, and `publish` refuses it until a later draft fixes them.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from pydantic import ValidationError
from sqlmodel.ext.asyncio.session import AsyncSession

from contact_center import ivr
from contact_center.models import FlowStatus, IvrFlowVersion
from contact_center.repository import ContactCenterRepository
from depotline.auth import Principal
from depotline.db import require_tenant, utcnow
from depotline.errors import Conflict, InvalidInput, NotFound
from tenant.service import audit

#: A flow document larger than this is refused (the demo flow is about 7 KB).
MAX_DOCUMENT_BYTES = 256 * 1024
NODE_KINDS = frozenset(
    {"say", "language", "menu", "input", "hours", "tier", "queue", "voicemail", "hangup"}
)


class FlowRejected(InvalidInput):
    """A document that is not a flow; `problems` names each node and field that is wrong."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems), field="flow")
        self.problems = problems


# -- reading and checking documents ---------------------------------------------------------------
def _where(loc: Sequence[int | str]) -> str:
    parts = [str(part) for part in loc]
    if len(parts) >= 2 and parts[0] == "nodes":
        rest = parts[2:]
        if rest and rest[0] in NODE_KINDS:
            rest = rest[1:]  # pydantic names the node's kind before its fields
        rest = [part for part in rest if part != "[key]"]
        return f"Node '{parts[1]}', field {'.'.join(rest) or 'kind'}"
    return f"Field {'.'.join(parts)}" if parts else "The flow"


def parse(document: str | bytes) -> ivr.Flow:
    """The flow in a JSON document; FlowRejected naming every node and field that is wrong."""
    if len(document) > MAX_DOCUMENT_BYTES:
        raise FlowRejected([f"The flow is larger than {MAX_DOCUMENT_BYTES // 1024} KB"])
    text = document.decode(errors="replace") if isinstance(document, bytes) else document
    if not text.strip():
        raise FlowRejected(["The flow is empty: paste or import a flow's JSON"])
    try:
        return ivr.from_json(document)
    except ValidationError as exc:
        problems = [f"{_where(error['loc'])}: {error['msg']}" for error in exc.errors()]
        raise FlowRejected(problems[:30]) from None


def problems_of(flow: ivr.Flow) -> list[str]:
    """What stops this flow from being published ([] when it is sound), the self-service
    lookups its input nodes name included."""
    from contact_center.voice import LOOKUPS  # voice answers calls in flows: imports this

    return ivr.validate(flow, lookups=set(LOOKUPS))


def check(document: str | bytes) -> list[str]:
    """Every problem of a document, malformed or not: for the editor's Check button."""
    try:
        return problems_of(parse(document))
    except FlowRejected as rejected:
        return rejected.problems


# -- versions ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Saved:
    version: IvrFlowVersion
    problems: list[str]


async def save_draft(
    session: AsyncSession, actor: Principal | None, document: str | bytes, *, note: str = ""
) -> Saved:
    """A new draft version from a JSON document (see the module's docstring for the checks)."""
    flow = parse(document)
    repo = ContactCenterRepository(session)
    await repo.lock_flows(require_tenant())
    version = IvrFlowVersion(
        number=await repo.next_flow_number(),
        document=flow.model_dump(mode="json"),
        note=note.strip()[:200],
        author_id=actor.user_id if actor else None,
    )
    repo.add(version)
    await repo.flush()
    return Saved(version, problems_of(flow))


async def import_file(
    session: AsyncSession, actor: Principal | None, data: bytes, filename: str
) -> Saved:
    """A flow exported from Depotline (this tenant's or another's), as a new draft."""
    return await save_draft(session, actor, data, note=f"Imported from {filename}"[:200])


async def publish(session: AsyncSession, actor: Principal, version_id: UUID) -> IvrFlowVersion:
    """Make a sound draft the flow callers hear; the version live until now is retired. Calls
    already in the IVR finish in the version they began in."""
    repo = ContactCenterRepository(session)
    await repo.lock_flows(require_tenant())
    version = await repo.flow_version(version_id, lock=True)
    if version is None:
        raise NotFound("No such IVR flow version")
    if version.status != FlowStatus.DRAFT:
        raise Conflict(
            f"Version {version.number} is {version.status}: only a draft can be published",
            field="version",
        )
    problems = problems_of(flow_of(version))
    if problems:
        raise FlowRejected([f"Version {version.number} cannot be published", *problems])
    now = utcnow()
    previous = await repo.published_flow(lock=True)
    if previous is not None:
        previous.status, previous.retired_at = FlowStatus.RETIRED, now
        repo.add(previous)
        await repo.flush()  # the one-live-version index sees the retirement first
    version.status, version.published_at = FlowStatus.PUBLISHED, now
    version.published_by = actor.user_id
    repo.add(version)
    audit(
        session,
        actor,
        "ivr.publish",
        record_type="ivr_flow_version",
        record_id=version.id,
        number=version.number,
        retired=previous.number if previous else "",
    )
    return version


def export(version: IvrFlowVersion) -> str:
    """The version's flow as the JSON the editor and `import_file` read."""
    return ivr.to_json(flow_of(version))


# -- the flow a call hears --------------------------------------------------------------------
#: Parsed flows by version id. Versions never change, so this is a cache of immutable data: no
#: replica can see a stale flow, and a new version is a new key.
_PARSED: OrderedDict[UUID, ivr.Flow] = OrderedDict()
_PARSED_KEEP = 256


def flow_of(version: IvrFlowVersion) -> ivr.Flow:
    cached = _PARSED.get(version.id)
    if cached is None:
        cached = ivr.Flow.model_validate(version.document)
        _remember(version.id, cached)
    return cached


def _remember(version_id: UUID, flow: ivr.Flow) -> None:
    _PARSED[version_id] = flow
    _PARSED.move_to_end(version_id)
    while len(_PARSED) > _PARSED_KEEP:
        _PARSED.popitem(last=False)


async def flow_by_id(session: AsyncSession, version_id: UUID) -> ivr.Flow:
    """A stored version's flow (any status: a call keeps the version it began in)."""
    cached = _PARSED.get(version_id)
    if cached is not None:
        return cached
    version = await ContactCenterRepository(session).flow_version(version_id)
    if version is None:
        raise NotFound("No such IVR flow version")
    return flow_of(version)


async def flow_for(session: AsyncSession, version_id: UUID | None) -> ivr.Flow:
    """The flow a new call hears: the published version (its id read along with the call's
    other facts, `ContactCenterRepository.call_start_facts`), else the demo flow (None)."""
    return ivr.DEMO_FLOW if version_id is None else await flow_by_id(session, version_id)


async def trial_flow(session: AsyncSession, number: int) -> tuple[UUID, ivr.Flow]:
    """A version tried from the simulator console before it goes live (a draft, typically)."""
    version = await ContactCenterRepository(session).flow_version_by_number(number)
    if version is None:
        raise InvalidInput(f"There is no IVR flow version {number}", field="flow_version")
    return version.id, flow_of(version)


async def seed_demo(session: AsyncSession) -> IvrFlowVersion | None:
    """The demo flow as the tenant's published version 1, unless it has versions already."""
    repo = ContactCenterRepository(session)
    await repo.lock_flows(require_tenant())
    if await repo.next_flow_number() > 1:
        return None
    now = utcnow()
    version = IvrFlowVersion(
        number=1,
        document=ivr.DEMO_FLOW.model_dump(mode="json"),
        status=FlowStatus.PUBLISHED,
        note="Sample courier flow",
        published_at=now,
    )
    repo.add(version)
    return version


# -- a readable tree ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Branch:
    """One way out of a node: `kind` is option (with `digit`), next, timeout, invalid, open,
    closed, vip or other. `node` is the target drawn here, None when it is drawn elsewhere in
    the tree (`seen`) or does not exist (`missing`)."""

    kind: str
    target: str
    digit: str = ""
    node: OutlineNode | None = None
    seen: bool = False
    missing: bool = False


@dataclass(frozen=True)
class OutlineNode:
    id: str
    kind: str
    #: (language tag, what is said; a recording as "♪ url").
    prompts: list[tuple[str, str]]
    #: Facts of the node, as (name, value): queue, digits, lookup, retries ...
    facts: list[tuple[str, str]]
    branches: list[Branch] = field(default_factory=list)


def _spoken(prompts: ivr.Prompts | None) -> list[tuple[str, str]]:
    if not prompts:
        return []
    return [
        (tag, f"♪ {prompt.audio}" if isinstance(prompt, ivr.Audio) else prompt)
        for tag, prompt in prompts.items()
    ]


def _exits(node: ivr.Node) -> list[tuple[str, str, str]]:
    """(kind, digit, target) for every way out of a node, in the order a caller meets them."""
    if isinstance(node, ivr.SayNode):
        return [("next", "", node.next)]
    if isinstance(node, ivr.LanguageNode):
        exits = [("option", digit, node.next) for digit in node.options]
        return exits + ([("timeout", "", node.timeout_next)] if node.timeout_next else [])
    if isinstance(node, ivr.MenuNode):
        exits = [("option", digit, target) for digit, target in node.options.items()]
        if node.timeout_next:
            exits.append(("timeout", "", node.timeout_next))
        if node.invalid_next:
            exits.append(("invalid", "", node.invalid_next))
        return exits
    if isinstance(node, ivr.InputNode):
        exits = [("next", "", node.next)]
        return exits + ([("invalid", "", node.invalid_next)] if node.invalid_next else [])
    if isinstance(node, ivr.HoursNode):
        return [("open", "", node.open_next), ("closed", "", node.closed_next)]
    if isinstance(node, ivr.TierNode):
        return [("vip", "", node.vip_next), ("other", "", node.other_next)]
    return []


def _facts(node: ivr.Node) -> list[tuple[str, str]]:
    facts: list[tuple[str, Any]] = []
    if isinstance(node, ivr.LanguageNode):
        facts += [(f"key {digit}", tag) for digit, tag in node.options.items()]
    if isinstance(node, ivr.InputNode):
        facts.append(("digits", f"{node.min_digits}–{node.max_digits}"))
        facts += [(name, getattr(node, name)) for name in ("pattern", "lookup", "store_as")]
    if isinstance(node, ivr.LanguageNode | ivr.MenuNode | ivr.InputNode):
        facts += [("retries", node.retries), ("timeout_seconds", node.timeout_seconds)]
    if isinstance(node, ivr.QueueNode):
        facts.append(("queue", node.queue))
    return [(name, str(value)) for name, value in facts if value is not None]


def outline(flow: ivr.Flow) -> tuple[OutlineNode | None, list[OutlineNode]]:
    """The flow as a tree from its start node (each node drawn once, where a caller first
    reaches it; later branches to it point there), and the nodes no caller can reach."""
    drawn: set[str] = set()

    def draw(node_id: str) -> OutlineNode:
        drawn.add(node_id)
        node = flow.nodes[node_id]
        branches = []
        for kind, digit, target in _exits(node):
            if target not in flow.nodes:
                branches.append(Branch(kind, target, digit, missing=True))
            elif target in drawn:
                branches.append(Branch(kind, target, digit, seen=True))
            else:
                branches.append(Branch(kind, target, digit, node=draw(target)))
        prompts = _spoken(getattr(node, "prompt", None))
        if isinstance(node, ivr.MenuNode | ivr.InputNode):
            prompts += [(tag, f"✗ {text}") for tag, text in _spoken(node.invalid_prompt)]
        return OutlineNode(node_id, node.kind, prompts, _facts(node), branches)

    root = draw(flow.start) if flow.start in flow.nodes else None
    unreachable = [draw(node_id) for node_id in flow.nodes if node_id not in drawn]
    return root, unreachable
