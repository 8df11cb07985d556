"""The KafkaUsers' Strimzi ACL rules become the same Kafka ACLs on the secured test broker."""

from __future__ import annotations

from kafka.admin import ACLOperation, ACLPermissionType, ACLResourcePatternType, ResourceType

from tools.broker_acls import kafka_acls


def test_strimzi_rules_become_allow_acls_with_the_prefix_on_topics_and_groups() -> None:
    rules = [
        {
            "resource": {"type": "topic", "name": "orders.priced", "patternType": "literal"},
            "operations": ["Describe", "Write"],
            "host": "*",
        },
        {
            "resource": {"type": "group", "name": "tradelane-pricing", "patternType": "literal"},
            "operations": ["Read"],
            "host": "*",
        },
        {"resource": {"type": "cluster"}, "operations": ["IdempotentWrite"], "host": "*"},
    ]
    acls = kafka_acls("tradelane-pricing", rules, prefix="e2e1.")
    assert {acl.resource_pattern.pattern_type for acl in acls} == {ACLResourcePatternType.LITERAL}
    assert [
        (acl.resource_pattern.resource_type, acl.resource_pattern.resource_name, acl.operation)
        for acl in acls
    ] == [
        (ResourceType.TOPIC, "e2e1.orders.priced", ACLOperation.DESCRIBE),
        (ResourceType.TOPIC, "e2e1.orders.priced", ACLOperation.WRITE),
        (ResourceType.GROUP, "e2e1.tradelane-pricing", ACLOperation.READ),
        (ResourceType.CLUSTER, "kafka-cluster", ACLOperation.IDEMPOTENT_WRITE),
    ]
    assert {acl.principal for acl in acls} == {"User:tradelane-pricing"}
    assert {acl.permission_type for acl in acls} == {ACLPermissionType.ALLOW}
    assert {acl.host for acl in acls} == {"*"}


def test_a_strimzi_prefix_rule_becomes_a_prefixed_kafka_acl_behind_the_topic_prefix() -> None:
    rules = [
        {
            "resource": {"type": "group", "name": "tradelane-", "patternType": "prefix"},
            "operations": ["Describe"],
            "host": "*",
        }
    ]
    [acl] = kafka_acls("tradelane-ops", rules, prefix="e2e1.")
    assert acl.resource_pattern.pattern_type == ACLResourcePatternType.PREFIXED
    assert acl.resource_pattern.resource_name == "e2e1.tradelane-"
