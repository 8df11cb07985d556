"""The pipeline over a secured Kafka: SCRAM-SHA-512 over TLS, one user and its ACLs per service.

A broker of this module's own (the session's broker stays PLAINTEXT) refuses
what no ACL allows. Each service logs in as its Strimzi KafkaUser would
(`tradelane-<service>`, its password read from a file like a mounted Secret) with
the ACLs `tools.k8s` generates for the manifests, applied by `tools.broker_acls`:
so this module also proves those ACLs are enough for a real service, and no more.
A shop sends its order with the `tradelane` CLI as `tradelane-shops`; the CRM and the ERP
publish reference data and payments, and the CRM reads the quotes' lifecycle, as their own
users (`tradelane-crm`, `tradelane-erp`).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient
from kafka.errors import KafkaTimeoutError, TopicAuthorizationFailedError

from cli.publisher import EventPublisher
from shared.contract import OrderState, PaymentReceived, Quote, QuoteEvent, QuoteEventKind
from shared.kafka_connection import KafkaConnection
from shared.topics import (
    ORDERS_PRICED,
    ORDERS_STATUS,
    ORDERS_SUBMITTED,
    ORDERS_VALIDATED,
    PAYMENTS_RECEIVED,
    QUOTE_EVENTS,
    QUOTES,
    TopicSpec,
)
from tests.e2e.conftest import Pipeline, new_topic_prefix, publish_with_cli, running_pipeline
from tools.broker_acls import grant, tradelane_acls
from tools.fleet import SERVICES, wait_for
from tools.k8s.registry import CRM, ERP, OPS, OUTSIDE_SYSTEMS, SHOPS, outside_access
from tools.k8s.strimzi import user_name
from tools.local_kafka import LocalKafka
from tools.seed import ACME, b2c_order, products

OUTSIDE = {system: user_name(outside_access(system).service) for system in OUTSIDE_SYSTEMS}
"""`tradelane-crm`, `tradelane-erp`."""
USERS = [user_name(service) for service in (*SERVICES, SHOPS, OPS)] + list(OUTSIDE.values())
REFUSAL_TIMEOUT_MS = 3000
"""How long a refused client keeps retrying before it reports that it could not bootstrap."""


@pytest.fixture(scope="module")
def secured_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    users = {user: secrets.token_urlsafe(24) for user in USERS}
    with LocalKafka(tmp_path_factory.mktemp("secured-kafka"), secured=True, users=users) as kafka:
        yield kafka


@pytest.fixture(scope="module")
def secured_pipeline(
    secured_kafka: LocalKafka, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pipeline]:
    """Topics and seed data made by the admin; each service runs as its own user."""
    prefix = new_topic_prefix()
    grant(secured_kafka.connection(), [a for acls in tradelane_acls(prefix).values() for a in acls])
    mounted = tmp_path_factory.mktemp("kafka-user-secrets")
    service_env = {}
    for service in SERVICES:
        password_file = mounted / user_name(service)
        password_file.touch(mode=0o600)
        password_file.write_text(secured_kafka.users[user_name(service)])
        service_env[service] = {
            "KAFKA_USERNAME": user_name(service),
            "KAFKA_PASSWORD_FILE": str(password_file),
        }
    with running_pipeline(
        secured_kafka.connection(),
        Path(tmp_path_factory.mktemp("services")),
        service_env=service_env,
        prefix=prefix,
        extra_env={
            "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "KAFKA_SSL_CA_FILE": str(secured_kafka.ca_file),
        },
    ) as running:
        yield running


def test_an_order_a_shop_sends_with_the_cli_is_fulfilled_by_services_logged_in_as_themselves(
    secured_pipeline: Pipeline, secured_kafka: LocalKafka, tmp_path: Path
) -> None:
    pipeline = secured_pipeline
    order = b2c_order(pipeline.order_id("secured"), [("BOLT-M8-100", 2)])
    shop = user_name(SHOPS)
    result = publish_with_cli([order], tmp_path, logged_in_as(shop, pipeline, secured_kafka))
    assert result.returncode == 0, result.stderr
    assert "sent 1 event(s)" in result.stdout
    assert secured_kafka.users[shop] not in result.stdout + result.stderr

    pipeline.watch.wait_for_status(order.order_id, OrderState.FULFILLMENT_PLANNED)
    assert pipeline.watch.history(order.order_id) == ["received", "approved", "fulfillment_planned"]
    # On a busy machine a client may give up a slow TLS handshake and try again; the broker
    # logs that as "SSL handshake failed". A refused login says why in other words.
    refused_logins = [
        reason
        for reason in secured_kafka.authentication_failures()
        if reason != "SSL handshake failed"
    ]
    assert refused_logins == []  # every service logged in with its own password
    for service in SERVICES:
        log = pipeline.fleet.running[service].log_path.read_text(errors="replace")
        assert secured_kafka.users[user_name(service)] not in log, f"{service} logged its password"


def test_a_shop_publishing_a_topic_it_may_not_write_is_told_so_not_that_it_was_sent(
    secured_pipeline: Pipeline, secured_kafka: LocalKafka, tmp_path: Path
) -> None:
    """The shops' user may not write products (the PIM's topic): the broker refuses the
    record, and `tradelane publish` says so and exits 1, naming the settings to check,
    without a traceback or the password (it once printed `sent 1 event(s)`)."""
    shop = user_name(SHOPS)
    env = logged_in_as(shop, secured_pipeline, secured_kafka)
    result = publish_with_cli(products()[:1], tmp_path, env)
    said = result.stdout + result.stderr
    assert result.returncode == 1, said
    assert "tradelane publish: sending failed" in result.stderr
    assert "TopicAuthorizationFailed" in result.stderr
    assert "KAFKA_BOOTSTRAP_SERVERS, KAFKA_SECURITY_PROTOCOL" in result.stderr
    assert "Traceback" not in said and "sent 1 event" not in said
    assert secured_kafka.users[shop] not in said


def logged_in_as(user: str, pipeline: Pipeline, kafka: LocalKafka) -> dict[str, str]:
    """The environment of a CLI run logged in to the secured broker as `user`."""
    return {
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap,
        "TRADELANE_TOPIC_PREFIX": pipeline.names.prefix,
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_USERNAME": user,
        "KAFKA_PASSWORD": kafka.users[user],
        "KAFKA_SSL_CA_FILE": str(kafka.ca_file),
    }


def refused(kafka: KafkaConnection) -> KafkaTimeoutError:
    """Connect an admin client with `kafka`: the broker must refuse it (no metadata, no topics)."""
    with pytest.raises(KafkaTimeoutError, match="Unable to bootstrap") as error:
        admin = KafkaAdminClient(
            **kafka.kafka_python(),
            bootstrap_timeout_ms=REFUSAL_TIMEOUT_MS,
            request_timeout_ms=REFUSAL_TIMEOUT_MS,
        )
        admin.close()
    return error.value


def broker_refuses(kafka: LocalKafka, reason: str, since: int) -> None:
    """Wait until the broker has logged a refused login for `reason` (after `since` others)."""
    wait_for(
        f"the broker to refuse a login with {reason!r}",
        lambda: reason in kafka.authentication_failures()[since:],
        timeout=10,
    )


def test_a_client_without_credentials_is_refused(secured_kafka: LocalKafka) -> None:
    anonymous = replace(secured_kafka.connection(), username=None, password=None)

    before = len(secured_kafka.authentication_failures())
    refused(replace(anonymous, protocol="PLAINTEXT", ca_file=None))
    broker_refuses(secured_kafka, "SSL handshake failed", before)

    before = len(secured_kafka.authentication_failures())
    refused(replace(anonymous, protocol="SSL"))  # TLS is fine, but it never logs in
    broker_refuses(
        secured_kafka, "Unexpected Kafka request of type METADATA during SASL handshake.", before
    )


def test_a_wrong_password_is_refused(
    secured_kafka: LocalKafka, caplog: pytest.LogCaptureFixture
) -> None:
    before = len(secured_kafka.authentication_failures())
    with caplog.at_level(logging.DEBUG, logger="kafka"):
        refused(secured_kafka.connection(user_name("pricing"), password="not-the-password"))
    broker_refuses(
        secured_kafka,
        "Authentication failed during authentication due to invalid credentials with SASL "
        "mechanism SCRAM-SHA-512",
        before,
    )
    assert "not-the-password" not in caplog.text


def test_the_broker_speaks_scram_sha_512_only_so_the_services_logged_in_with_it(
    secured_kafka: LocalKafka,
) -> None:
    before = len(secured_kafka.authentication_failures())
    refused(replace(secured_kafka.connection(user_name("pricing")), mechanism="SCRAM-SHA-256"))
    broker_refuses(secured_kafka, "Unsupported SASL mechanism SCRAM-SHA-256", before)


@pytest.mark.parametrize(
    ("user", "topic"),
    [
        (user_name("pricing"), ORDERS_VALIDATED),  # catalog's topic
        (user_name("fulfillment"), ORDERS_PRICED),  # pricing's topic
        (user_name(SHOPS), ORDERS_STATUS),  # only the services report statuses
        (OUTSIDE[CRM], ORDERS_SUBMITTED),  # the shops' topic
        (OUTSIDE[ERP], QUOTES),  # the CRM's topic
    ],
)
def test_a_user_writing_a_topic_its_acl_does_not_allow_is_refused(
    secured_pipeline: Pipeline, secured_kafka: LocalKafka, user: str, topic: TopicSpec
) -> None:
    assert user in secured_kafka.users
    producer = KafkaProducer(**secured_kafka.connection(user).kafka_python(), max_block_ms=10_000)
    try:
        sent = producer.send(secured_pipeline.names.of(topic), key=b"k", value=b"{}")
        with pytest.raises(TopicAuthorizationFailedError):
            sent.get(timeout=10)
    finally:
        producer.close(timeout=5)


def read_until(kafka: KafkaConnection, topic: str, group_id: str, key: str, what: str) -> bytes:
    """Read `topic` from its start as `kafka`'s user, with consumer group `group_id`, until a
    record keyed `key` comes; its value."""
    consumer = KafkaConsumer(
        topic,
        **kafka.kafka_python(),
        group_id=group_id,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    values: list[bytes] = []

    def read_it() -> bool:
        for batch in consumer.poll(timeout_ms=500).values():
            values.extend(r.value for r in batch if r.key == key.encode())
        return bool(values)

    try:
        wait_for(what, read_it, timeout=30)
    finally:
        consumer.close()
    return values[0]


def test_ops_read_any_topic_and_look_at_a_services_group(
    secured_pipeline: Pipeline, secured_kafka: LocalKafka
) -> None:
    """The runbook's commands work as `tradelane-ops`: read a topic with a group of its own,
    and see a service's consumer group (members, committed offsets) without joining it."""
    pipeline = secured_pipeline
    order = b2c_order(pipeline.order_id("ops"), [("BOLT-M8-100", 1)])
    pipeline.publisher.publish(ORDERS_SUBMITTED, order)
    pipeline.publisher.flush()
    pipeline.watch.wait_for_status(order.order_id, OrderState.FULFILLMENT_PLANNED)
    ops = secured_kafka.connection(user_name(OPS))

    read_until(
        ops,
        pipeline.names.of(ORDERS_STATUS),
        f"{pipeline.names.prefix}tradelane-ops-runbook",
        order.order_id,
        "ops to read the order's statuses",
    )

    admin = KafkaAdminClient(**ops.kafka_python(), request_timeout_ms=15_000)
    try:
        group = f"{pipeline.names.prefix}tradelane-catalog"
        described = admin.describe_groups([group])[group]
        assert described["group_state"] == "Stable" and described["members"], described
        assert admin.list_group_offsets({group: None})[group]  # what the lag is measured from
    finally:
        admin.close()

    # Ops look, they never write. (Without idempotence: with it, a user who may write no
    # topic at all is refused a producer id before any topic is asked.)
    producer = KafkaProducer(**ops.kafka_python(), enable_idempotence=False, max_block_ms=10_000)
    try:
        sent = producer.send(pipeline.names.of(ORDERS_SUBMITTED), key=b"k", value=b"{}")
        with pytest.raises(TopicAuthorizationFailedError):
            sent.get(timeout=10)
    finally:
        producer.close(timeout=5)


def test_the_crm_and_the_erp_publish_to_pricing_and_the_crm_reads_the_quotes_lifecycle(
    secured_pipeline: Pipeline, secured_kafka: LocalKafka
) -> None:
    """As their own users: the CRM's quote reaches pricing, which announces it `expired` (its
    valid-until has passed) on the topic the CRM reads with a group of its own; the ERP's
    payment reaches pricing too (for an order pricing never priced: a dead letter)."""
    pipeline = secured_pipeline
    crm = secured_kafka.connection(OUTSIDE[CRM])
    now = datetime.now(UTC).replace(microsecond=0)
    quote = Quote.new(
        quote_id=f"Q-crm-{pipeline.run_id}",
        account_id=ACME,
        version=3,
        currency="EUR",
        lines=[{"sku": "BOLT-M8-100", "quantity": 100, "unit_price": "11.00"}],
        issued_at=now - timedelta(days=2),
        valid_until=now - timedelta(hours=1),
        use="single",
    )
    with EventPublisher(crm, pipeline.names) as publisher:
        publisher.publish(QUOTES, quote)

    value = read_until(
        crm,
        pipeline.names.of(QUOTE_EVENTS),
        f"{pipeline.names.prefix}{OUTSIDE[CRM]}-quotes",
        quote.quote_id,
        "the CRM to read its quote's lifecycle",
    )
    announced = QuoteEvent.model_validate_json(value)
    assert (announced.kind, announced.version) == (QuoteEventKind.EXPIRED, 3)

    payment = PaymentReceived.new(
        payment_id=f"pay-erp-{pipeline.run_id}",
        account_id=ACME,
        order_id=pipeline.order_id("never-priced"),
        amount=Decimal("100.00"),
        currency="EUR",
        received_at=now,
    )
    with EventPublisher(secured_kafka.connection(OUTSIDE[ERP]), pipeline.names) as publisher:
        publisher.publish(PAYMENTS_RECEIVED, payment)
    letters = pipeline.watch.dead_letters[f"{PAYMENTS_RECEIVED.name}.dlq"]
    pipeline.watch.wait_until(
        "pricing to read the ERP's payment",
        lambda: any(payment.payment_id in (letter.original_text or "") for letter in letters),
    )
