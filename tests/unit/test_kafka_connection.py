"""The settings become each client's login the same way: kafka-python's options, Faust's
credentials and, through Faust, aiokafka's. No broker: the secured e2e module logs in for real."""

from __future__ import annotations

import logging
import ssl
from pathlib import Path

import pytest
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

from shared.kafka_connection import KafkaConnection
from shared.settings import ConfigError, Settings
from tools.broker_tls import make_broker_certificates

PASSWORD = "hunter2-kafka-password"


@pytest.fixture(scope="module")
def ca_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_broker_certificates(tmp_path_factory.mktemp("tls"), ("127.0.0.1",)).ca_file


def scram(ca_file: Path) -> KafkaConnection:
    settings = Settings(
        KAFKA_BOOTSTRAP_SERVERS="tradelane-kafka-bootstrap:9093,[::1]:9093",
        KAFKA_SECURITY_PROTOCOL="SASL_SSL",
        KAFKA_USERNAME="tradelane-pricing",
        KAFKA_PASSWORD=PASSWORD,
        KAFKA_SSL_CA_FILE=ca_file,
    )
    return KafkaConnection.from_settings(settings)


def test_plaintext_needs_no_login() -> None:
    connection = KafkaConnection.from_settings(Settings(KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:9092"))
    assert connection.kafka_python() == {
        "bootstrap_servers": ["127.0.0.1:9092"],
        "security_protocol": "PLAINTEXT",
    }
    assert connection.faust_credentials() is None
    assert credentials_to_aiokafka_auth(None) == {"security_protocol": "PLAINTEXT"}


def test_scram_over_tls_for_kafka_python(ca_file: Path) -> None:
    options = scram(ca_file).kafka_python()
    context = options.pop("ssl_context")
    assert options == {
        "bootstrap_servers": ["tradelane-kafka-bootstrap:9093", "[::1]:9093"],
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "tradelane-pricing",
        "sasl_plain_password": PASSWORD,
    }
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2
    [trusted] = context.get_ca_certs()  # the CA file alone, not the system's store besides
    assert trusted["subject"] == ((("commonName", "tradelane test CA"),),)


def test_scram_over_tls_reaches_aiokafka_through_faust_with_its_mechanism(ca_file: Path) -> None:
    connection = scram(ca_file)
    auth = credentials_to_aiokafka_auth(connection.faust_credentials())
    assert auth["security_protocol"] == "SASL_SSL"
    assert auth["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (auth["sasl_plain_username"], auth["sasl_plain_password"]) == (
        "tradelane-pricing",
        PASSWORD,
    )
    assert isinstance(auth["ssl_context"], ssl.SSLContext)
    assert connection.faust_brokers() == [
        "kafka://tradelane-kafka-bootstrap:9093",
        "kafka://[::1]:9093",
    ]


def test_tls_alone_reaches_aiokafka_as_ssl(ca_file: Path) -> None:
    connection = KafkaConnection("kafka:9093", protocol="SSL", ca_file=ca_file)
    auth = credentials_to_aiokafka_auth(connection.faust_credentials())
    assert auth["security_protocol"] == "SSL"
    assert isinstance(auth["ssl_context"], ssl.SSLContext)
    assert "sasl_plain_password" not in connection.kafka_python()


def test_the_password_is_never_shown(ca_file: Path, caplog: pytest.LogCaptureFixture) -> None:
    connection = scram(ca_file)
    assert PASSWORD not in repr(connection)
    assert PASSWORD not in connection.describe()
    assert "tradelane-pricing" in connection.describe()
    assert PASSWORD not in repr(connection.faust_credentials())
    with caplog.at_level(logging.DEBUG, logger="kafka.admin.client"):  # as kafka-python does
        logging.getLogger("kafka.admin.client").debug(
            "Starting KafkaAdminClient with configuration: %s", connection.kafka_python()
        )
    assert "tradelane-pricing" in caplog.text
    assert PASSWORD not in caplog.text


def test_a_ca_file_that_is_not_pem_is_named(tmp_path: Path) -> None:
    (tmp_path / "ca.crt").write_text("not a certificate")
    connection = KafkaConnection("kafka:9093", protocol="SSL", ca_file=tmp_path / "ca.crt")
    with pytest.raises(ConfigError, match=r"KAFKA_SSL_CA_FILE=.*not a PEM CA certificate"):
        connection.ssl_context()
