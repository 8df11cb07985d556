"""What each service reads and writes, taken from the code itself.

Reads: the topics the service's agents consume, from the service as `create_service`
builds it. Writes: every `tx.publish(SPEC, …)` in the service's package (found in its
source), `orders.status` for every `tx.report(…)`, and what the shared consume path
writes for every topic read: its `.dlq` twin, and `orders.status` for a rejected order.
"""

from __future__ import annotations

import ast
import importlib
import tempfile
from dataclasses import dataclass
from pathlib import Path

from shared import topics
from shared.contract import OrderState
from shared.settings import SERVICE_WEB_PORTS, Settings
from shared.topics import ALL_TOPICS, ORDERS_STATUS, TopicSpec, repeating

ROOT = Path(__file__).resolve().parents[2]
SERVICES = tuple(SERVICE_WEB_PORTS)
SPECS_BY_NAME = {spec.name: spec for spec in ALL_TOPICS}


@dataclass(frozen=True)
class Access:
    """The topics one service reads and writes (registry names, `.dlq` twins included)."""

    service: str
    reads: frozenset[str]
    writes: frozenset[str]
    inspects_groups: bool = False
    """Describe every Tradelane consumer group, and read with any group named after the user."""
    groups_by_prefix: bool = False
    """Read with any consumer group whose id starts with the user's (`tradelane-crm-quotes`):
    an outside system runs consumers of its own, each with its own offsets."""

    @property
    def group(self) -> str:
        return Settings(TRADELANE_TOPIC_PREFIX="").group_id(self.service)


def consumed(service: str) -> frozenset[str]:
    """The topics the service's agents read, from the service as it is wired."""
    app = importlib.import_module(f"services.{service}.app")
    with tempfile.TemporaryDirectory() as data_dir:
        settings = Settings(TRADELANE_DATA_DIR=Path(data_dir), TRADELANE_TOPIC_PREFIX="")
        built = app.create_service(settings)
        return frozenset(built.consumed_topics())


def reported_state(call: ast.Call) -> OrderState | None:
    """X in `report(order, OrderState.X, …)`; None when the state is not spelled out."""
    state = call.args[1] if len(call.args) > 1 else None
    if isinstance(state, ast.Attribute) and state.attr in OrderState.__members__:
        return OrderState[state.attr]
    return None


def published(service: str) -> frozenset[str]:
    """The topics named in `*.publish(SPEC, …)` calls; for `*.report(order, OrderState.X, …)`
    `orders.status` and the topic that repeats X's reports, if one does."""
    found: set[str] = set()
    for path in sorted((ROOT / "services" / service).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            if node.func.attr == "report":
                state = reported_state(node)
                if state is None:
                    raise ValueError(f"{path}:{node.lineno}: report() of a state not named")
                found.update(spec.name for spec in (ORDERS_STATUS, *repeating(state)))
            elif node.func.attr == "publish" and node.args:
                first = node.args[0]
                spec = getattr(topics, first.id, None) if isinstance(first, ast.Name) else None
                if not isinstance(spec, TopicSpec):
                    raise ValueError(f"{path}:{node.lineno}: publish() to an unknown topic")
                found.add(spec.name)
    return frozenset(found)


def access(service: str) -> Access:
    reads = consumed(service)
    dead_letters = {f"{name}.dlq" for name in reads}
    rejections = {spec.name for spec in (ORDERS_STATUS, *repeating(OrderState.REJECTED))}
    return Access(service, reads, published(service) | dead_letters | rejections)


SHOPS = "shops"
"""The upstream shops' own KafkaUser: they write orders and read the statuses back."""


def _written_and_read_by(party: str) -> tuple[frozenset[str], frozenset[str]]:
    """The topics the registry names `party` the writer of, and those it promises `party` to."""
    writes = frozenset(spec.name for spec in ALL_TOPICS if spec.writer == party)
    reads = frozenset(spec.name for spec in ALL_TOPICS if party in spec.readers)
    return writes, reads


def shop_access() -> Access:
    """What a shop may do: write the topics the registry says shops write (orders and
    cancellations), read those it promises them (`orders.status`)."""
    writes, reads = _written_and_read_by(SHOPS)
    return Access(SHOPS, reads, writes)


CRM = "CRM"
ERP = "ERP"
NOT_SYSTEMS = frozenset({SHOPS, "approvers", "all services"})
"""Parties of the registry that are not outside systems: the shops have their own user, the
approvers decide through approvals' inbox, and `orders.status` is every service's."""
OUTSIDE_SYSTEMS = tuple(
    sorted(
        ({spec.writer for spec in ALL_TOPICS} | {r for spec in ALL_TOPICS for r in spec.readers})
        - set(SERVICES)
        - NOT_SYSTEMS
    )
)
"""The outside systems, each with a KafkaUser of its own, all named by the registry: the sales
team's CRM (accounts, approval policies, quotes; reads the quotes' lifecycle), finance's ERP
(price lists, promotions, warehouses, payments), the PIM (products) and the WMS (stock,
stock adjustments, dispatches)."""


def outside_access(system: str) -> Access:
    """What `system` may do, all from the registry: write the topics it is the writer of, read
    those promised to it, with consumer groups named after its user (`tradelane-crm…`)."""
    writes, reads = _written_and_read_by(system)
    return Access(system.lower(), reads, writes, groups_by_prefix=True)


def all_topic_names() -> list[str]:
    return [name for spec in ALL_TOPICS for name in (spec.name, f"{spec.name}.dlq")]


OPS = "ops"
"""Ops' own KafkaUser, for the runbook's commands: read any topic (the `.dlq` twins above all)
and look at the services' consumer groups; never write."""


def ops_access() -> Access:
    """Read every registry topic and `.dlq` twin, write none, inspect the services' groups."""
    return Access(OPS, frozenset(all_topic_names()), frozenset(), inspects_groups=True)
