"""Bad configuration stops a process at start-up, naming the variable and what was expected."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.settings import DEV_TOKEN_SECRET, ConfigError, load_settings


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("TRADELANE_TOPIC_PARTITIONS", "zero", "valid integer"),
        ("KAFKA_BOOTSTRAP_SERVERS", "localhost", "host:port"),
        ("DATABASE_URL", "sqlite:///x.db", "async SQLAlchemy URL"),
        ("WEB_PORT", "70000", "less than or equal to 65535"),
        ("LOG_LEVEL", "LOUD", "one of DEBUG"),
        ("TRADELANE_SHUTDOWN_SECONDS", "5", "greater than or equal to 10"),
        ("TRADELANE_DATABASE_POOL_SIZE", "0", "greater than or equal to 1"),
        ("TRADELANE_DATABASE_MAX_OVERFLOW", "-1", "greater than or equal to 0"),
        ("TRADELANE_BATCH_MAX_EVENTS", "0", "greater than or equal to 1"),
        ("TRADELANE_BATCH_MAX_MS", "-1", "greater than or equal to 0"),
        ("TRADELANE_BATCH_MAX_MS", "5000", "less than or equal to 1000"),
        ("TRADELANE_REFERENCE_CACHE_SECONDS", "-1", "greater than or equal to 0"),
        ("TRADELANE_REFERENCE_CACHE_SECONDS", "3600", "less than or equal to 60"),
    ],
)
def test_a_bad_setting_fails_fast_with_its_name(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as error:
        load_settings()
    assert variable in str(error.value)
    assert expected in str(error.value)


def test_defaults_give_each_service_its_own_sqlite_database(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("TRADELANE_DATA_DIR", "/data")
    settings = load_settings()
    assert settings.database_url_for("catalog") == "sqlite+aiosqlite:////data/catalog.db"
    assert settings.database_url_for("pricing") != settings.database_url_for("catalog")


def test_the_shutdown_bound_defaults_below_kubernetes_default_grace_period(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TRADELANE_SHUTDOWN_SECONDS", raising=False)
    assert load_settings().shutdown_seconds == 20  # terminationGracePeriodSeconds: 30
    monkeypatch.setenv("TRADELANE_SHUTDOWN_SECONDS", "45")
    assert load_settings().shutdown_seconds == 45


SECRET = "s3cret-token-key-that-is-long-enough-4711"


def test_a_too_short_token_secret_is_named_but_never_printed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("APPROVALS_TOKEN_SECRET", "hunter2-short")
    with pytest.raises(ConfigError) as error:
        load_settings()
    message = str(error.value)
    assert "APPROVALS_TOKEN_SECRET" in message
    assert "at least 32 characters" in message
    assert "hunter2" not in message


@pytest.mark.parametrize(
    "url",
    [
        "mysql://u:hunter2@h/db",
        "postgresql://u:hunter2@db.internal:5432/orders",
        "u:hunter2@h/db",  # not even a URL: still no password in the message
        "mysql://u:hun@ter2@h/db",  # an unescaped '@' in the password
        "postgresql://h/db?user=u&password=hunter2",
    ],
)
def test_a_bad_database_url_is_named_without_its_password(
    monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    monkeypatch.setenv("DATABASE_URL", url)
    with pytest.raises(ConfigError) as error:
        load_settings()
    message = str(error.value)
    assert "DATABASE_URL" in message
    assert "async SQLAlchemy URL" in message
    assert "hunter2" not in message and "ter2" not in message


def test_a_bad_database_url_still_shows_where_it_points(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "mysql://u:hunter2@h/db")
    with pytest.raises(ConfigError) as error:
        load_settings()
    assert "mysql://u:***@h/db" in str(error.value)


def test_settings_never_show_their_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APPROVALS_TOKEN_SECRET", SECRET)
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://orders:hunter2@db:5432/approvals")
    settings = load_settings()
    for shown in (repr(settings), str(settings)):
        assert SECRET not in shown
        assert "hunter2" not in shown
    assert settings.token_secret() == SECRET
    assert (
        settings.database_url_for("approvals")
        == "postgresql+asyncpg://orders:hunter2@db:5432/approvals"
    )


@pytest.mark.parametrize("bind", ["0.0.0.0", "::", "10.1.2.3", "approvals.internal"])
def test_the_development_token_secret_is_refused_in_a_deployment(
    monkeypatch: pytest.MonkeyPatch, bind: str
) -> None:
    monkeypatch.delenv("APPROVALS_TOKEN_SECRET", raising=False)
    monkeypatch.delenv("TRADELANE_DEV_MODE", raising=False)
    monkeypatch.setenv("WEB_BIND", bind)
    settings = load_settings()  # catalog, pricing, fulfillment never need the secret
    with pytest.raises(ConfigError) as error:
        settings.token_secret()
    message = str(error.value)
    assert "APPROVALS_TOKEN_SECRET" in message
    assert "TRADELANE_DEV_MODE" in message
    assert DEV_TOKEN_SECRET not in message


@pytest.mark.parametrize("bind", ["127.0.0.1", "::1", "localhost", "127.0.0.2"])
def test_the_development_token_secret_serves_a_loopback_server(
    monkeypatch: pytest.MonkeyPatch, bind: str
) -> None:
    monkeypatch.delenv("APPROVALS_TOKEN_SECRET", raising=False)
    monkeypatch.delenv("TRADELANE_DEV_MODE", raising=False)
    monkeypatch.setenv("WEB_BIND", bind)
    assert load_settings().token_secret() == DEV_TOKEN_SECRET


def test_dev_mode_allows_the_development_token_secret_anywhere(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("APPROVALS_TOKEN_SECRET", raising=False)
    monkeypatch.setenv("WEB_BIND", "0.0.0.0")
    monkeypatch.setenv("TRADELANE_DEV_MODE", "true")
    assert load_settings().token_secret() == DEV_TOKEN_SECRET


def test_an_own_token_secret_serves_any_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APPROVALS_TOKEN_SECRET", SECRET)
    monkeypatch.setenv("WEB_BIND", "0.0.0.0")
    monkeypatch.delenv("TRADELANE_DEV_MODE", raising=False)
    assert load_settings().token_secret() == SECRET


def test_dev_mode_is_a_yes_or_no(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADELANE_DEV_MODE", "maybe")
    with pytest.raises(ConfigError) as error:
        load_settings()
    assert "TRADELANE_DEV_MODE" in str(error.value)


# --- Kafka: where it is, how to log in, how topics are replicated ---------------------------

KAFKA_VARIABLES = (
    "KAFKA_SECURITY_PROTOCOL",
    "KAFKA_SASL_MECHANISM",
    "KAFKA_USERNAME",
    "KAFKA_PASSWORD",
    "KAFKA_PASSWORD_FILE",
    "KAFKA_SSL_CA_FILE",
    "KAFKA_SSL_CERT_FILE",
    "KAFKA_SSL_KEY_FILE",
    "TRADELANE_TOPIC_REPLICATION_FACTOR",
    "TRADELANE_TOPIC_MIN_INSYNC_REPLICAS",
)
KAFKA_PASSWORD = "hunter2-kafka-password"


@pytest.fixture
def kafka_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No Kafka login variables from the outside, and a CA file that exists."""
    for name in KAFKA_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\n")
    monkeypatch.chdir(tmp_path)
    return monkeypatch


@pytest.mark.parametrize(
    "servers",
    [
        "my-cluster-kafka-bootstrap.kafka.svc:9093",
        "tradelane-kafka-bootstrap:9093",
        "b-1.msk.eu-central-1.amazonaws.com:9096,b-2.msk.eu-central-1.amazonaws.com:9096",
        "10.0.0.7:9092, 10.0.0.8:9092",
        "[::1]:9093",
        "[2001:db8::7]:9092,kafka-0:9092",
        "127.0.0.1:9092",
    ],
)
def test_the_bootstrap_servers_real_clusters_use_are_accepted(
    kafka_env: pytest.MonkeyPatch, servers: str
) -> None:
    kafka_env.setenv("KAFKA_BOOTSTRAP_SERVERS", servers)
    assert load_settings().kafka_bootstrap_servers == servers.replace(" ", "")


@pytest.mark.parametrize(
    "servers",
    [
        "localhost",
        "kafka:",
        "kafka:0",
        "kafka:65536",
        "-kafka:9092",
        "kafka..svc:9092",
        "kafka_bootstrap:9092",
        "999.1.1.1:9092",
        "::1:9092",
        "[not-ipv6]:9092",
        "kafka://broker:9092",
        "broker:9092,",
        "broker:9092;other:9092",
    ],
)
def test_garbage_bootstrap_servers_are_refused(kafka_env: pytest.MonkeyPatch, servers: str) -> None:
    kafka_env.setenv("KAFKA_BOOTSTRAP_SERVERS", servers)
    with pytest.raises(ConfigError) as error:
        load_settings()
    assert "KAFKA_BOOTSTRAP_SERVERS" in str(error.value)
    assert "host:port" in str(error.value)


def test_plaintext_without_a_login_is_the_default(kafka_env: pytest.MonkeyPatch) -> None:
    settings = load_settings()
    assert settings.kafka_security_protocol == "PLAINTEXT"
    assert settings.kafka_sasl_mechanism == "SCRAM-SHA-512"
    assert settings.kafka_password_value() is None
    assert (settings.topic_replication_factor, settings.topic_min_insync_replicas) == (1, 1)


def test_sasl_ssl_with_a_password_in_the_environment(kafka_env: pytest.MonkeyPatch) -> None:
    kafka_env.setenv("KAFKA_SECURITY_PROTOCOL", "sasl_ssl")
    kafka_env.setenv("KAFKA_USERNAME", "tradelane-pricing")
    kafka_env.setenv("KAFKA_PASSWORD", KAFKA_PASSWORD)
    kafka_env.setenv("KAFKA_SSL_CA_FILE", "ca.crt")
    settings = load_settings()
    assert settings.kafka_security_protocol == "SASL_SSL"
    assert settings.kafka_password_value() == KAFKA_PASSWORD
    assert KAFKA_PASSWORD not in repr(settings) and KAFKA_PASSWORD not in str(settings)


def test_the_password_file_is_read_once_at_start_up_without_its_newline(
    kafka_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "password").write_text(KAFKA_PASSWORD + "\n")
    kafka_env.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    kafka_env.setenv("KAFKA_USERNAME", "tradelane-pricing")
    kafka_env.setenv("KAFKA_PASSWORD_FILE", str(tmp_path / "password"))
    settings = load_settings()
    (tmp_path / "password").write_text("rotated")  # a restart picks a new one up, not a read
    assert settings.kafka_password_value() == KAFKA_PASSWORD
    assert KAFKA_PASSWORD not in repr(settings)


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_PASSWORD": "x"}, "needs KAFKA_USERNAME"),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_USERNAME": "u"},
            "needs KAFKA_PASSWORD or KAFKA_PASSWORD_FILE",
        ),
        (
            {
                "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                "KAFKA_USERNAME": "u",
                "KAFKA_PASSWORD": "x",
                "KAFKA_PASSWORD_FILE": "ca.crt",
            },
            "KAFKA_PASSWORD or KAFKA_PASSWORD_FILE, not both",
        ),
        (
            {
                "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                "KAFKA_USERNAME": "u",
                "KAFKA_PASSWORD_FILE": "missing-password",
            },
            "KAFKA_PASSWORD_FILE='missing-password': no such file",
        ),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CA_FILE": "missing.crt"},
            "KAFKA_SSL_CA_FILE='missing.crt': no such file",
        ),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CA_FILE": "."},
            "KAFKA_SSL_CA_FILE='.': no such file",
        ),
        ({"KAFKA_USERNAME": "u", "KAFKA_PASSWORD": "x"}, "KAFKA_SECURITY_PROTOCOL=PLAINTEXT"),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_USERNAME": "u"},
            "KAFKA_USERNAME set, but KAFKA_SECURITY_PROTOCOL=SSL sends no login",
        ),
        ({"KAFKA_SSL_CA_FILE": "ca.crt"}, "PLAINTEXT uses no TLS"),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CERT_FILE": "ca.crt"},
            "KAFKA_SSL_CERT_FILE and KAFKA_SSL_KEY_FILE go together",
        ),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_USERNAME": "u", "KAFKA_PASSWORD": ""},
            "KAFKA_PASSWORD is empty",
        ),
        ({"KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT"}, "unencrypted; use SASL_SSL"),
        ({"KAFKA_SECURITY_PROTOCOL": "TLS"}, "KAFKA_SECURITY_PROTOCOL='TLS'"),
        ({"KAFKA_SASL_MECHANISM": "GSSAPI"}, "KAFKA_SASL_MECHANISM='GSSAPI'"),
        ({"TRADELANE_TOPIC_REPLICATION_FACTOR": "0"}, "TRADELANE_TOPIC_REPLICATION_FACTOR='0'"),
        (
            {"TRADELANE_TOPIC_REPLICATION_FACTOR": "3", "TRADELANE_TOPIC_MIN_INSYNC_REPLICAS": "4"},
            "TRADELANE_TOPIC_MIN_INSYNC_REPLICAS=4 is more than "
            "TRADELANE_TOPIC_REPLICATION_FACTOR=3",
        ),
        ({"TRADELANE_TOPIC_MIN_INSYNC_REPLICAS": "2"}, "TRADELANE_TOPIC_REPLICATION_FACTOR=1"),
    ],
)
def test_a_kafka_login_that_does_not_fit_together_fails_naming_the_variables(
    kafka_env: pytest.MonkeyPatch, variables: dict[str, str], expected: str
) -> None:
    for name, value in variables.items():
        kafka_env.setenv(name, value)
    with pytest.raises(ConfigError) as error:
        load_settings()
    assert expected in str(error.value)


@pytest.mark.parametrize(
    "variables",
    [
        {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_PASSWORD": KAFKA_PASSWORD},
        {"KAFKA_PASSWORD": KAFKA_PASSWORD, "KAFKA_USERNAME": "u"},
        {
            "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "KAFKA_USERNAME": "u",
            "KAFKA_PASSWORD": KAFKA_PASSWORD,
            "KAFKA_SSL_CA_FILE": "missing.crt",
        },
        {
            "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "KAFKA_USERNAME": "u",
            "KAFKA_PASSWORD": KAFKA_PASSWORD,
            "TRADELANE_TOPIC_PARTITIONS": "zero",
        },
    ],
)
def test_a_bad_kafka_login_never_shows_the_password(
    kafka_env: pytest.MonkeyPatch, variables: dict[str, str]
) -> None:
    for name, value in variables.items():
        kafka_env.setenv(name, value)
    with pytest.raises(ConfigError) as error:
        load_settings()
    assert "hunter2" not in str(error.value)


def test_an_empty_password_file_is_refused_without_showing_anything(
    kafka_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "password").write_text("\n")
    kafka_env.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    kafka_env.setenv("KAFKA_USERNAME", "u")
    kafka_env.setenv("KAFKA_PASSWORD_FILE", str(tmp_path / "password"))
    with pytest.raises(ConfigError) as error:
        load_settings()
    assert "KAFKA_PASSWORD_FILE" in str(error.value) and "is empty" in str(error.value)
