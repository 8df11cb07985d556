"""deploy/k8s proven offline: every overlay and component renders with kustomize, every
object is valid for Kubernetes (built-in kinds) or its CRD (custom resources), and the
manifests agree with the code: settings, ports, topics, ACLs, autoscaling, Pod Security.

The tools come from registries on first use (tools.k8s.toolchain): kustomize from its Go
module, the CRDs from the Prometheus Operator's Go module and Strimzi's Maven artifacts.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from shared.settings import SERVICE_WEB_PORTS, Settings
from shared.topics import ALL_TOPICS, DLQ_CONFIGS, topic_configs
from tools import dashboards
from tools.k8s import check
from tools.k8s.registry import OPS, SERVICES, SHOPS, access, published
from tools.k8s.strimzi import drifted_files, user_name

Object = dict[str, Any]

SET_IN_CONFIGMAP = {
    "KAFKA_BOOTSTRAP_SERVERS": "Strimzi's bootstrap Service of the `tradelane` cluster, TLS port",
    "KAFKA_SECURITY_PROTOCOL": "SASL_SSL: SCRAM over TLS, as the KafkaUsers are made",
    "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512, the KafkaUsers' authentication type",
    "KAFKA_USERNAME": "the service's own KafkaUser (checked below)",
    "KAFKA_PASSWORD_FILE": "the KafkaUser's Secret, mounted (checked below)",
    "KAFKA_SSL_CA_FILE": "the cluster CA Secret, mounted (checked below)",
    "TRADELANE_TOPIC_PARTITIONS": "must equal the KafkaTopics' partitions",
    "TRADELANE_TOPIC_REPLICATION_FACTOR": "must equal the KafkaTopics' replicas",
    "TRADELANE_TOPIC_MIN_INSYNC_REPLICAS": "must equal the KafkaTopics' min.insync.replicas",
    "TRADELANE_DATA_DIR": "the emptyDir: Faust's data (and SQLite in dev)",
    "WEB_BIND": "0.0.0.0: probes and Prometheus reach the pod",
    "WEB_PORT": "said once more beside the containerPort, so the two cannot drift",
    "LOG_LEVEL": "INFO; an overlay may lower it",
}
FROM_SECRETS = {
    "DATABASE_URL": ("{service}-database", "url"),
    "APPROVALS_TOKEN_SECRET": ("approvals-token", "secret"),
    "APPROVALS_TOKEN_SECRET_PREVIOUS": ("approvals-token", "previous"),
}
OPTIONAL_SECRETS = {"APPROVALS_TOKEN_SECRET_PREVIOUS"}
"""Set only for a while (a rotation): the pod starts without them."""
DEFAULTED_ON_PURPOSE = {
    "TRADELANE_TOPIC_PREFIX": "one cluster per environment: no prefix",
    "TRADELANE_OUTBOX_POLL_SECONDS": "every commit wakes the relay; the poll is a fallback",
    "TRADELANE_BATCH_MAX_EVENTS": "256 events per transaction; 1 for one event per transaction",
    "TRADELANE_BATCH_MAX_MS": "20 ms, only while events flow; 0 never waits",
    "TRADELANE_REFERENCE_CACHE_SECONDS": "1 s for another worker's reference change to show",
    "TRADELANE_INBOX_RETENTION_DAYS": "14 days, above the order topics' 7-day retention",
    "TRADELANE_SESSION_TIMEOUT_SECONDS": "30 s, the default rebalance trade-off",
    "TRADELANE_DEV_MODE": "false; only the dev overlay turns it on, for approvals",
    "APPROVALS_TIMER_SECONDS": "1 s between looks for due reminders and expiries",
    "PRICING_QUOTE_TIMER_SECONDS": "1 s between looks for quotes whose valid-until passed",
    "TRADELANE_SHUTDOWN_SECONDS": "20 s, inside the pods' 30 s grace period (checked below)",
    "TRADELANE_DATABASE_POOL_SIZE": "5 kept + 5 overflow per worker; sizing in the runbook",
    "TRADELANE_DATABASE_MAX_OVERFLOW": "5: a prod worker holds at most 10 connections",
    "KAFKA_PASSWORD": "unset: the password is read from KAFKA_PASSWORD_FILE, not the env",
    "KAFKA_SSL_CERT_FILE": "unset: the KafkaUsers log in with SCRAM, not a client certificate",
    "KAFKA_SSL_KEY_FILE": "unset: as KAFKA_SSL_CERT_FILE",
}
KAFKA_CLUSTER_CA = ("tradelane-cluster-ca-cert", "ca.crt")
"""The Secret (and key) where Strimzi publishes the CA of the `tradelane` cluster's brokers."""
SHUTDOWN_MARGIN_SECONDS = 5
"""The kubelet's grace period must outlast the service's own shutdown bound by this much."""
READ_ONLY_BY = {
    "APPROVALS_TOKEN_SECRET": {"approvals"},
    "APPROVALS_TOKEN_SECRET_PREVIOUS": {"approvals"},
}
"""Variables only some services read (the rest of Settings is read by every service)."""

RESTRICTED_VOLUME_TYPES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
    "persistentVolumeClaim", "projected", "secret",
}  # fmt: skip


def variable(field: str) -> str:
    alias = Settings.model_fields[field].validation_alias
    return alias if isinstance(alias, str) else str(alias.choices[0])  # type: ignore[union-attr]


SETTINGS_VARIABLES = {variable(field) for field in Settings.model_fields}


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[Object]]:
    return check.targets()


@pytest.fixture(scope="module")
def overlays(rendered: dict[str, list[Object]]) -> dict[str, list[Object]]:
    return {name: rendered[f"overlays/{name}"] for name in check.OVERLAYS}


def of_kind(objects: list[Object], kind: str) -> dict[str, Object]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def pod_specs(objects: list[Object]) -> Iterator[tuple[str, Object]]:
    for name, deployment in of_kind(objects, "Deployment").items():
        yield name, deployment["spec"]["template"]["spec"]


def environment(objects: list[Object], service: str) -> dict[str, Any]:
    """The service container's variables: its ConfigMaps' data, then its `env` entries."""
    [container] = of_kind(objects, "Deployment")[service]["spec"]["template"]["spec"]["containers"]
    config_maps = of_kind(objects, "ConfigMap")
    found: dict[str, Any] = {}
    for source in container.get("envFrom", []):
        found.update(config_maps[source["configMapRef"]["name"]]["data"])
    found.update({entry["name"]: entry for entry in container.get("env", [])})
    return found


def partitions(objects: list[Object]) -> int:
    [value] = {environment(objects, s)["TRADELANE_TOPIC_PARTITIONS"] for s in SERVICES}
    return int(value)


# --- rendering and schemas ------------------------------------------------------------------


def test_every_overlay_and_component_renders_and_every_object_is_valid(
    rendered: dict[str, list[Object]],
) -> None:
    assert set(rendered) == {
        "overlays/dev",
        "overlays/prod",
        "components/kafka-cluster",
        "components/grafana",
        "components/network-policies",
        "components/prometheus",
        "components/strimzi",
    }
    problems = [
        p for objects in rendered.values() for obj in objects for p in check.problems_of(obj)
    ]
    assert problems == []
    kinds = {obj["kind"] for obj in rendered["overlays/prod"]}
    assert {"KafkaTopic", "KafkaUser", "ServiceMonitor", "PrometheusRule", "NetworkPolicy"} <= kinds


def test_the_grafana_component_ships_every_generated_dashboard_to_the_sidecar(
    rendered: dict[str, list[Object]],
) -> None:
    """One ConfigMap per dashboard, labelled for the Grafana sidecar, its JSON as generated."""
    for target in ("components/grafana", "overlays/prod"):
        shipped = {
            name: config_map
            for name, config_map in of_kind(rendered[target], "ConfigMap").items()
            if config_map["metadata"].get("labels", {}).get("grafana_dashboard") == "1"
        }
        files = {}
        for config_map in shipped.values():
            assert config_map["metadata"]["annotations"]["grafana_folder"] == "Tradelane"
            files.update(config_map["data"])
        assert files == {
            dashboards.file_of(board).name: dashboards.rendered(board)
            for board in dashboards.BOARDS
        }, target


def test_the_validation_fails_on_unknown_kinds_unknown_fields_and_bad_custom_resources(
    overlays: dict[str, list[Object]],
) -> None:
    unknown = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    assert check.problems_of(unknown) == [
        "Widget/w: no schema for example.com/v1 Widget: vendor its CRD"
    ]
    deployment = dict(of_kind(overlays["prod"], "Deployment")["pricing"])
    deployment["spec"] = {**deployment["spec"], "replica": 2}
    assert check.problems_of(deployment)
    topic = dict(of_kind(overlays["prod"], "KafkaTopic")["orders.submitted"])
    assert check.problems_of(topic) == []
    assert check.problems_of({**topic, "spec": {**topic["spec"], "partition": 3}})
    assert check.problems_of({**topic, "spec": {**topic["spec"], "partitions": "three"}})
    monitor = of_kind(overlays["prod"], "ServiceMonitor")["tradelane"]
    assert check.problems_of({**monitor, "spec": {"endpoints": [{"prot": "http"}], "selector": {}}})


def test_the_strimzi_component_is_generated_from_the_registry() -> None:
    assert drifted_files() == [], (
        "run `python -m tools.k8s` and commit deploy/k8s/components/strimzi"
    )


# --- settings and secrets -------------------------------------------------------------------


def test_every_setting_the_code_reads_is_set_or_defaulted_on_purpose() -> None:
    decided = [*SET_IN_CONFIGMAP, *FROM_SECRETS, *DEFAULTED_ON_PURPOSE]
    assert sorted(decided) == sorted(SETTINGS_VARIABLES), "classify the new setting here"
    assert len(decided) == len(set(decided))


@pytest.mark.parametrize("overlay", check.OVERLAYS)
def test_every_service_gets_the_settings_it_needs_and_only_those_the_code_reads(
    overlays: dict[str, list[Object]], overlay: str
) -> None:
    for service in SERVICES:
        env = environment(overlays[overlay], service)
        assert set(env) <= SETTINGS_VARIABLES, f"{service}: a variable the code never reads"
        assert set(SET_IN_CONFIGMAP) <= set(env), service
        for name, readers in READ_ONLY_BY.items():
            assert name not in env or service in readers, f"{service} does not read {name}"


def test_prod_takes_database_urls_and_the_token_secret_from_secrets_by_reference(
    overlays: dict[str, list[Object]],
) -> None:
    for service in SERVICES:
        env = environment(overlays["prod"], service)
        for name, (secret, key) in FROM_SECRETS.items():
            if name in READ_ONLY_BY and service not in READ_ONLY_BY[name]:
                continue
            reference: dict[str, object] = {"name": secret.format(service=service), "key": key}
            if name in OPTIONAL_SECRETS:
                reference["optional"] = True
            assert env[name] == {"name": name, "valueFrom": {"secretKeyRef": reference}}
        assert env.get("TRADELANE_DEV_MODE", "false") == "false"


@pytest.mark.parametrize("overlay", check.OVERLAYS)
def test_no_secret_value_is_written_into_the_manifests(
    overlays: dict[str, list[Object]], overlay: str
) -> None:
    objects = overlays[overlay]
    assert of_kind(objects, "Secret") == {}
    for service in SERVICES:
        for name in FROM_SECRETS:
            value = environment(objects, service).get(name)
            assert value is None or "valueFrom" in value, f"{service}: {name} written in"


# --- ports and probes -----------------------------------------------------------------------


@pytest.mark.parametrize("overlay", check.OVERLAYS)
def test_ports_match_the_services_web_ports_the_services_and_the_monitor(
    overlays: dict[str, list[Object]], overlay: str
) -> None:
    objects = overlays[overlay]
    services = of_kind(objects, "Service")
    for name, pod in pod_specs(objects):
        [container] = pod["containers"]
        assert container["ports"] == [
            {"name": "http", "containerPort": SERVICE_WEB_PORTS[name], "protocol": "TCP"}
        ]
        assert environment(objects, name)["WEB_PORT"] == str(SERVICE_WEB_PORTS[name])
        assert services[name]["spec"]["ports"] == [
            {
                "name": "http",
                "port": SERVICE_WEB_PORTS[name],
                "targetPort": "http",
                "protocol": "TCP",
            }
        ]
        assert services[name]["spec"]["selector"].items() <= pod_labels(objects, name).items()
    for monitor in of_kind(objects, "ServiceMonitor").values():
        selected = [
            s for s in services.values()
            if monitor["spec"]["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()
        ]  # fmt: skip
        assert sorted(s["metadata"]["name"] for s in selected) == sorted(SERVICES)
        assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["http"]
        assert [e["path"] for e in monitor["spec"]["endpoints"]] == ["/metrics"]


def pod_labels(objects: list[Object], deployment: str) -> dict[str, str]:
    labels: dict[str, str] = of_kind(objects, "Deployment")[deployment]["spec"]["template"][
        "metadata"
    ]["labels"]
    return labels


@pytest.mark.parametrize("overlay", check.OVERLAYS)
def test_liveness_and_readiness_probe_distinct_endpoints_of_the_web_port(
    overlays: dict[str, list[Object]], overlay: str
) -> None:
    for name, pod in pod_specs(overlays[overlay]):
        [container] = pod["containers"]
        assert container["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "http"}
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
        assert container["startupProbe"]["httpGet"] == {"path": "/livez", "port": "http"}
        assert container["command"] == ["python", "-m", f"services.{name}"]
        assert container["image"].split(":")[0] == "tradelane"
        grace = pod["terminationGracePeriodSeconds"]
        assert grace >= Settings().shutdown_seconds + SHUTDOWN_MARGIN_SECONDS


# --- topics and ACLs ------------------------------------------------------------------------


def replication(objects: list[Object]) -> tuple[int, int]:
    """The replication factor and min.insync.replicas every service's ConfigMap sets."""
    [(factor, min_insync)] = {
        (
            environment(objects, s)["TRADELANE_TOPIC_REPLICATION_FACTOR"],
            environment(objects, s)["TRADELANE_TOPIC_MIN_INSYNC_REPLICAS"],
        )
        for s in SERVICES
    }
    return int(factor), int(min_insync)


@pytest.mark.parametrize(("overlay", "durability"), [("dev", (1, 1)), ("prod", (3, 2))])
def test_every_registry_topic_has_its_kafka_topic_with_the_same_partitions_and_configs(
    overlays: dict[str, list[Object]], overlay: str, durability: tuple[int, int]
) -> None:
    objects = overlays[overlay]
    assert replication(objects) == durability
    replicas, min_insync = durability
    topics = {t["spec"]["topicName"]: t["spec"] for t in of_kind(objects, "KafkaTopic").values()}
    wanted = {spec.name: topic_configs(spec) for spec in ALL_TOPICS}
    wanted |= {f"{spec.name}.dlq": DLQ_CONFIGS for spec in ALL_TOPICS}
    assert sorted(topics) == sorted(wanted)
    for name, configs in wanted.items():
        assert topics[name]["partitions"] == partitions(objects), name
        assert topics[name]["replicas"] == replicas, name
        assert topics[name]["config"] == {**configs, "min.insync.replicas": str(min_insync)}, name


@pytest.mark.parametrize("overlay", check.OVERLAYS)
def test_every_service_logs_in_to_kafka_as_its_own_kafka_user_over_tls(
    overlays: dict[str, list[Object]], overlay: str
) -> None:
    objects = overlays[overlay]
    users = of_kind(objects, "KafkaUser")
    for service, pod in pod_specs(objects):
        env = environment(objects, service)
        assert env["KAFKA_BOOTSTRAP_SERVERS"] == "tradelane-kafka-bootstrap:9093"
        assert env["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
        assert env["KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
        assert env["KAFKA_USERNAME"] == user_name(service)
        user = users[env["KAFKA_USERNAME"]]
        assert user["spec"]["authentication"] == {"type": "scram-sha-512"}
        assert "KAFKA_PASSWORD" not in env
        assert mounted_secret(pod, env["KAFKA_PASSWORD_FILE"]) == (user_name(service), "password")
        assert mounted_secret(pod, env["KAFKA_SSL_CA_FILE"]) == KAFKA_CLUSTER_CA


@pytest.mark.parametrize("overlay", check.OVERLAYS)
def test_the_kafka_cluster_serves_what_the_services_log_in_with(
    overlays: dict[str, list[Object]], overlay: str
) -> None:
    """The overlay's own Strimzi cluster: the listener, ACLs and replication the services expect."""
    objects = overlays[overlay]
    [kafka] = of_kind(objects, "Kafka").values()
    [pool] = of_kind(objects, "KafkaNodePool").values()
    name = kafka["metadata"]["name"]
    assert pool["metadata"]["labels"]["strimzi.io/cluster"] == name
    for kind in ("KafkaTopic", "KafkaUser"):
        assert {
            o["metadata"]["labels"]["strimzi.io/cluster"] for o in of_kind(objects, kind).values()
        } == {name}
    [listener] = kafka["spec"]["kafka"]["listeners"]  # nothing else gets in
    assert listener["tls"] is True and listener["authentication"] == {"type": "scram-sha-512"}
    assert kafka["spec"]["kafka"]["authorization"]["type"] == "simple"  # the ACLs are enforced
    config = kafka["spec"]["kafka"]["config"]
    assert config["auto.create.topics.enable"] is False
    for service in SERVICES:
        env = environment(objects, service)
        assert env["KAFKA_BOOTSTRAP_SERVERS"] == f"{name}-kafka-bootstrap:{listener['port']}"
        replication = int(env["TRADELANE_TOPIC_REPLICATION_FACTOR"])
        min_insync = int(env["TRADELANE_TOPIC_MIN_INSYNC_REPLICAS"])
        assert config["default.replication.factor"] == replication, service
        assert config["min.insync.replicas"] == min_insync, service
        assert pool["spec"]["replicas"] >= replication, "fewer brokers than copies of a topic"
        assert replication == 1 or min_insync < replication, "one broker down must not stop writes"
    assert "broker" in pool["spec"]["roles"]


def mounted_secret(pod: Object, path: str) -> tuple[str, str]:
    """The Secret and key behind the file at `path`, which must be mounted read-only."""
    [container] = pod["containers"]
    directory, _, file_name = path.rpartition("/")
    [mount] = [m for m in container["volumeMounts"] if m["mountPath"] == directory]
    assert mount.get("readOnly") is True, path
    [volume] = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    [key] = [item["key"] for item in volume["secret"]["items"] if item["path"] == file_name]
    return volume["secret"]["secretName"], key


def test_the_writes_found_in_the_code_include_what_each_service_is_known_to_publish() -> None:
    reports = {"orders.status"}
    rejections = reports | {"orders.status.ended", "orders.status.holds", "orders.status.stock"}
    catalog = {"orders.validated", "orders.backorder_filled"}
    assert catalog | rejections <= published("catalog")
    assert published("pricing") == {"orders.priced", "pricing.quote_events"} | rejections
    approvals = {"orders.approved", "approvals.notifications", "approvals.decisions"}
    assert approvals | rejections <= published("approvals")
    assert published("fulfillment") == reports | {"orders.status.stock"}


@pytest.mark.parametrize("overlay", check.OVERLAYS)
def test_every_acl_covers_exactly_what_its_service_reads_and_writes(
    overlays: dict[str, list[Object]], overlay: str
) -> None:
    users = of_kind(overlays[overlay], "KafkaUser")
    all_topics = {t["spec"]["topicName"] for t in of_kind(overlays[overlay], "KafkaTopic").values()}
    for service in SERVICES:
        wants = access(service)
        acls = users[user_name(service)]["spec"]["authorization"]["acls"]
        allowed: dict[str, set[str]] = {}
        for rule in acls:
            resource = rule["resource"]
            assert resource["patternType"] == "literal"
            allowed.setdefault(f"{resource['type']}:{resource['name']}", set()).update(
                rule["operations"]
            )
        reads = {
            n.split(":", 1)[1]
            for n, ops in allowed.items()
            if n.startswith("topic:") and "Read" in ops
        }
        writes = {
            n.split(":", 1)[1]
            for n, ops in allowed.items()
            if n.startswith("topic:") and "Write" in ops
        }
        assert reads == wants.reads, service
        assert writes == wants.writes, service
        assert (reads | writes) <= all_topics
        assert "Read" in allowed[f"group:{wants.group}"]
        assert {n for n in allowed if n.startswith("group:")} == {f"group:{wants.group}"}
        everything = {"Read", "Write", "Describe"}
        assert all(ops <= everything for ops in allowed.values()), service


def beyond_describe(user: Object) -> dict[str, set[str]]:
    """What a KafkaUser may do besides describing, by `type:name` (`…*` for a prefix)."""
    granted: dict[str, set[str]] = {}
    for rule in user["spec"]["authorization"]["acls"]:
        resource = rule["resource"]
        star = "*" if resource["patternType"] == "prefix" else ""
        name = f"{resource['type']}:{resource['name']}{star}"
        granted.setdefault(name, set()).update(set(rule["operations"]) - {"Describe"})
    return {name: ops for name, ops in granted.items() if ops}


@pytest.mark.parametrize("overlay", check.OVERLAYS)
def test_the_shops_user_writes_orders_and_cancellations_and_reads_statuses_only(
    overlays: dict[str, list[Object]], overlay: str
) -> None:
    shops = of_kind(overlays[overlay], "KafkaUser")[user_name(SHOPS)]
    assert shops["spec"]["authentication"] == {"type": "scram-sha-512"}
    assert beyond_describe(shops) == {
        "topic:orders.submitted": {"Write"},
        "topic:orders.cancelled": {"Write"},
        "topic:orders.status": {"Read"},
        "group:tradelane-shops": {"Read"},
    }


OUTSIDE_SYSTEMS_MAY = {
    "crm": {
        "topic:accounts": {"Write"},
        "topic:approvals.policies": {"Write"},
        "topic:pricing.quotes": {"Write"},
        "topic:pricing.quote_events": {"Read"},
        "group:tradelane-crm*": {"Read"},  # any consumer of its own: tradelane-crm-quotes
    },
    "erp": {
        "topic:payments.received": {"Write"},
        "topic:pricing.price_lists": {"Write"},
        "topic:pricing.promotions": {"Write"},
        "topic:warehouses": {"Write"},
        "group:tradelane-erp*": {"Read"},
    },
    "pim": {"topic:catalog.products": {"Write"}, "group:tradelane-pim*": {"Read"}},
    "wms": {
        "topic:catalog.stock": {"Write"},
        "topic:catalog.stock_adjustments": {"Write"},
        "topic:fulfillment.dispatches": {"Write"},
        "group:tradelane-wms*": {"Read"},
    },
}
"""The CRM writes accounts, policies and quotes and reads the quotes' lifecycle; the ERP
writes prices, promotions, warehouses and payments; the PIM writes products; the WMS writes
stock, stock adjustments and dispatches. None but the CRM reads anything."""


@pytest.mark.parametrize("overlay", check.OVERLAYS)
@pytest.mark.parametrize("system", sorted(OUTSIDE_SYSTEMS_MAY))
def test_an_outside_systems_user_writes_and_reads_what_the_registry_names_it_for(
    overlays: dict[str, list[Object]], overlay: str, system: str
) -> None:
    user = of_kind(overlays[overlay], "KafkaUser")[user_name(system)]
    assert user["spec"]["authentication"] == {"type": "scram-sha-512"}
    assert beyond_describe(user) == OUTSIDE_SYSTEMS_MAY[system]


@pytest.mark.parametrize("overlay", check.OVERLAYS)
def test_the_ops_user_reads_every_topic_and_inspects_groups_but_writes_nothing(
    overlays: dict[str, list[Object]], overlay: str
) -> None:
    objects = overlays[overlay]
    ops = of_kind(objects, "KafkaUser")[user_name(OPS)]
    all_topics = {t["spec"]["topicName"] for t in of_kind(objects, "KafkaTopic").values()}
    granted: dict[tuple[str, str, str], set[str]] = {}
    for rule in ops["spec"]["authorization"]["acls"]:
        resource = rule["resource"]
        key = (resource["type"], resource["name"], resource["patternType"])
        granted.setdefault(key, set()).update(rule["operations"])
    topics = {name: ops for (kind, name, _), ops in granted.items() if kind == "topic"}
    assert topics == {topic: {"Describe", "Read"} for topic in all_topics}
    groups = {
        (name, pattern): ops for (kind, name, pattern), ops in granted.items() if kind == "group"
    }
    assert groups == {
        ("tradelane-ops", "prefix"): {"Read", "Describe"},  # groups of its own
        ("tradelane-", "prefix"): {"Describe"},  # the services' groups: look, never join
    }


# --- scaling --------------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", check.OVERLAYS)
def test_autoscalers_and_disruption_budgets_target_what_exists(
    overlays: dict[str, list[Object]], overlay: str
) -> None:
    objects = overlays[overlay]
    deployments = of_kind(objects, "Deployment")
    autoscalers = of_kind(objects, "HorizontalPodAutoscaler")
    assert sorted(autoscalers) == sorted(SERVICES)
    for hpa in autoscalers.values():
        target = hpa["spec"]["scaleTargetRef"]
        assert (target["apiVersion"], target["kind"]) == ("apps/v1", "Deployment")
        assert target["name"] in deployments
        assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"] <= partitions(objects)
    for pdb in of_kind(objects, "PodDisruptionBudget").values():
        selector = pdb["spec"]["selector"]["matchLabels"]
        assert [d for d in deployments if selector.items() <= pod_labels(objects, d).items()]
    if overlay == "dev":  # SQLite in each pod's own emptyDir: one worker per service
        assert {hpa["spec"]["maxReplicas"] for hpa in autoscalers.values()} == {1}
        assert all("DATABASE_URL" not in environment(objects, s) for s in SERVICES)


# --- Pod Security "restricted" and the rest of the pod hygiene ------------------------------


def restricted_violations(pod: Object) -> list[str]:
    """The Pod Security Standard "restricted" (and "baseline") checks of one pod spec."""
    found = []
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(flag):
            found.append(f"{flag} is set")
    pod_context = pod.get("securityContext", {})
    for volume in pod.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUME_TYPES:
            found.append(f"volume {volume['name']}: {sorted(kinds)} is not allowed")
    containers = pod["containers"] + pod.get("initContainers", [])
    for container in containers:
        context = container.get("securityContext", {})
        name = container["name"]
        if context.get("privileged"):
            found.append(f"{name}: privileged")
        if context.get("allowPrivilegeEscalation") is not False:
            found.append(f"{name}: allowPrivilegeEscalation is not false")
        if not (context.get("runAsNonRoot") or pod_context.get("runAsNonRoot")):
            found.append(f"{name}: runAsNonRoot is not true")
        if 0 in (context.get("runAsUser"), pod_context.get("runAsUser")):
            found.append(f"{name}: runs as user 0")
        seccomp = context.get("seccompProfile") or pod_context.get("seccompProfile") or {}
        if seccomp.get("type") not in {"RuntimeDefault", "Localhost"}:
            found.append(f"{name}: seccompProfile is not RuntimeDefault or Localhost")
        capabilities = context.get("capabilities", {})
        if "ALL" not in capabilities.get("drop", []):
            found.append(f"{name}: capabilities are not all dropped")
        if set(capabilities.get("add", [])) - {"NET_BIND_SERVICE"}:
            found.append(f"{name}: adds capabilities")
        if any(port.get("hostPort") for port in container.get("ports", [])):
            found.append(f"{name}: uses a hostPort")
    return found


def test_the_restricted_check_finds_what_it_looks_for() -> None:
    pod = {
        "hostNetwork": True,
        "volumes": [{"name": "h", "hostPath": {"path": "/"}}],
        "containers": [{"name": "c", "securityContext": {"capabilities": {"add": ["SYS_ADMIN"]}}}],
    }
    assert len(restricted_violations(pod)) == 7


@pytest.mark.parametrize("overlay", check.OVERLAYS)
def test_pods_pass_the_restricted_pod_security_rules(
    overlays: dict[str, list[Object]], overlay: str
) -> None:
    for name, pod in pod_specs(overlays[overlay]):
        assert restricted_violations(pod) == [], name


@pytest.mark.parametrize("overlay", check.OVERLAYS)
def test_pods_have_a_read_only_root_writable_data_dirs_and_bounded_resources(
    overlays: dict[str, list[Object]], overlay: str
) -> None:
    objects = overlays[overlay]
    for name, pod in pod_specs(objects):
        [container] = pod["containers"]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        empty_dirs = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        data_dir = environment(objects, name)["TRADELANE_DATA_DIR"]
        assert mounts[data_dir] in empty_dirs and mounts["/tmp"] in empty_dirs, name
        for bound in ("requests", "limits"):
            assert set(container["resources"][bound]) == {"cpu", "memory"}, name
        assert pod["automountServiceAccountToken"] is False
        assert pod["serviceAccountName"] in of_kind(objects, "ServiceAccount")
