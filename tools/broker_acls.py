"""The KafkaUsers' ACLs (`tools.k8s.strimzi.acl_rules`), applied to a broker by its admin.

One definition of who may do what, from the topic registry and the services'
code: Strimzi's User Operator applies it on a cluster, this module on the secured
test broker (`LocalKafka(secured=True)`), so the end-to-end test proves the very
rules the manifests ship.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from kafka.admin import (
    ACL,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    KafkaAdminClient,
    ResourcePattern,
    ResourceType,
)

from shared.kafka_connection import KafkaConnection
from tools.k8s.strimzi import acl_rules, all_accesses, user_name

RESOURCE_TYPES = {
    "topic": ResourceType.TOPIC,
    "group": ResourceType.GROUP,
    "cluster": ResourceType.CLUSTER,
    "transactionalId": ResourceType.TRANSACTIONAL_ID,
}


PATTERN_TYPES = {
    "literal": ACLResourcePatternType.LITERAL,
    "prefix": ACLResourcePatternType.PREFIXED,  # Strimzi says `prefix`, Kafka `PREFIXED`
}


def _operation(strimzi: str) -> ACLOperation:
    """Strimzi's `IdempotentWrite` is Kafka's `IDEMPOTENT_WRITE`."""
    return ACLOperation[re.sub(r"(?<!^)(?=[A-Z])", "_", strimzi).upper()]


def kafka_acls(user: str, rules: Iterable[Mapping[str, Any]], prefix: str = "") -> list[ACL]:
    """Strimzi ACL rules as Kafka ACLs for `User:<user>`.

    `prefix` is a topic prefix (`TRADELANE_TOPIC_PREFIX`): it goes in front of topic
    names and group ids alike, as `TopicNames` and `Settings.group_id` put it there.
    """
    acls = []
    for rule in rules:
        resource = rule["resource"]
        kind = RESOURCE_TYPES[resource["type"]]
        name = resource.get("name", "kafka-cluster")
        if kind in (ResourceType.TOPIC, ResourceType.GROUP):
            name = f"{prefix}{name}"
        pattern_type = PATTERN_TYPES[resource.get("patternType", "literal")]  # Strimzi's default
        pattern = ResourcePattern(kind, name, pattern_type)
        for operation in rule["operations"]:
            acls.append(
                ACL(
                    principal=f"User:{user}",
                    host=rule.get("host", "*"),
                    operation=_operation(operation),
                    permission_type=ACLPermissionType.ALLOW,
                    resource_pattern=pattern,
                )
            )
    return acls


def tradelane_acls(prefix: str = "") -> dict[str, list[ACL]]:
    """Each KafkaUser's name (`tradelane-<service>`, `tradelane-shops`): its ACLs."""
    return {
        user_name(user.service): kafka_acls(user_name(user.service), acl_rules(user), prefix)
        for user in all_accesses()
    }


class GrantRefused(RuntimeError):
    pass


def grant(kafka: KafkaConnection, acls: Iterable[ACL]) -> int:
    """Create the ACLs as `kafka`'s user (a super user); returns how many were created."""
    wanted = list(acls)
    admin = KafkaAdminClient(**kafka.kafka_python(), client_id="tradelane-acls")
    try:
        result = admin.create_acls(wanted)
    finally:
        admin.close()
    if result["failed"]:
        raise GrantRefused(f"the broker refused ACLs: {result['failed']}")
    return len(result["succeeded"])
