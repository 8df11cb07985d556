"""Configuration from the environment, checked once at start-up.

A wrong value stops the process before it touches Kafka or a database, with
the variable's name in the message: ops should never debug a half-started pod.
"""

from __future__ import annotations

import ipaddress
import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal, Self
from urllib.parse import urlsplit, urlunsplit

from pydantic import (
    AliasChoices,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.reference_cache import DEFAULT_SECONDS as DEFAULT_REFERENCE_SECONDS

SERVICE_WEB_PORTS = {"catalog": 6061, "pricing": 6062, "approvals": 6063, "fulfillment": 6064}


class ConfigError(SystemExit):
    """Raised for a bad setting; a SystemExit so the CLI prints one line, not a traceback."""


DEV_TOKEN_SECRET = "dev-only-secret-change-me-in-production"
"""Lets `make run` work out of the box: accepted only on a loopback web server or in dev mode."""


MIN_TOKEN_SECRET_LENGTH = 32

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_SSL"]
"""How a client talks to Kafka. SASL_PLAINTEXT is refused (see `_no_clear_text_logins`)."""
SaslMechanism = Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"]

_HOST_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_BOOTSTRAP_SERVER = re.compile(
    rf"(?:\[(?P<ipv6>[0-9A-Fa-f:.]+)\]|(?P<host>{_HOST_LABEL}(?:\.{_HOST_LABEL})*))"
    r":(?P<port>\d{1,5})"
)


class Settings(BaseSettings):
    """Every knob a Tradelane process reads; the env var name is in each field's alias."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:9092", validation_alias="KAFKA_BOOTSTRAP_SERVERS"
    )
    topic_prefix: str = Field("", validation_alias="TRADELANE_TOPIC_PREFIX")
    topic_partitions: int = Field(4, ge=1, le=256, validation_alias="TRADELANE_TOPIC_PARTITIONS")
    topic_replication_factor: int = Field(
        1,
        ge=1,
        le=16,
        validation_alias="TRADELANE_TOPIC_REPLICATION_FACTOR",
        description="Copies of each topic the services create (3 on a production cluster).",
    )
    topic_min_insync_replicas: int = Field(
        1,
        ge=1,
        le=16,
        validation_alias="TRADELANE_TOPIC_MIN_INSYNC_REPLICAS",
        description="Copies a write must reach before it counts (acks=all); at most the "
        "replication factor, 2 with 3 replicas so one broker may be down.",
    )
    kafka_security_protocol: SecurityProtocol = Field(
        "PLAINTEXT", validation_alias="KAFKA_SECURITY_PROTOCOL"
    )
    kafka_sasl_mechanism: SaslMechanism = Field(
        "SCRAM-SHA-512", validation_alias="KAFKA_SASL_MECHANISM"
    )
    kafka_username: str | None = Field(None, min_length=1, validation_alias="KAFKA_USERNAME")
    kafka_password: SecretStr | None = Field(
        None,
        validation_alias="KAFKA_PASSWORD",
        description="With SASL_SSL; or KAFKA_PASSWORD_FILE. Kept secret: never printed.",
    )
    kafka_password_file: Path | None = Field(
        None,
        validation_alias="KAFKA_PASSWORD_FILE",
        description="A file holding the password (a mounted Secret); read once at start-up.",
    )
    kafka_ssl_ca_file: Path | None = Field(
        None,
        validation_alias="KAFKA_SSL_CA_FILE",
        description="PEM certificates the broker's certificate must chain to; without it the "
        "system's trust store is used.",
    )
    kafka_ssl_cert_file: Path | None = Field(
        None,
        validation_alias="KAFKA_SSL_CERT_FILE",
        description="PEM client certificate for mutual TLS (with KAFKA_SSL_KEY_FILE).",
    )
    kafka_ssl_key_file: Path | None = Field(None, validation_alias="KAFKA_SSL_KEY_FILE")
    data_dir: Path = Field(Path("var"), validation_alias="TRADELANE_DATA_DIR")
    database_url: SecretStr | None = Field(
        None,
        validation_alias="DATABASE_URL",
        description="May carry a password: kept secret, read it through `database_url_for`.",
    )
    web_port: int | None = Field(None, ge=1, le=65535, validation_alias="WEB_PORT")
    web_bind: str = Field("127.0.0.1", validation_alias="WEB_BIND")
    log_level: str = Field(
        "INFO", validation_alias=AliasChoices("LOG_LEVEL", "TRADELANE_LOG_LEVEL")
    )
    outbox_poll_seconds: float = Field(
        1.0, gt=0, le=60, validation_alias="TRADELANE_OUTBOX_POLL_SECONDS"
    )
    batch_max_events: int = Field(
        256,
        ge=1,
        le=10_000,
        validation_alias="TRADELANE_BATCH_MAX_EVENTS",
        description="Most events a service takes from a topic into one transaction; "
        "1 handles every event in a transaction of its own.",
    )
    batch_max_ms: float = Field(
        20.0,
        ge=0,
        le=1000,
        validation_alias="TRADELANE_BATCH_MAX_MS",
        description="How long a batch may wait for more events after its first, while "
        "events flow (a quiet agent's lone event goes at once); 0 never waits.",
    )
    reference_cache_seconds: float = Field(
        DEFAULT_REFERENCE_SECONDS,
        ge=0,
        le=60,
        validation_alias="TRADELANE_REFERENCE_CACHE_SECONDS",
        description="How long a worker answers from reference data (accounts, products, "
        "prices, promotions, warehouses) it read before; another worker's change shows within it, "
        "its own at once; 0 reads it in every transaction.",
    )
    inbox_retention_days: float = Field(
        14,
        ge=1,
        le=3650,
        validation_alias="TRADELANE_INBOX_RETENTION_DAYS",
        description="How long event ids stay in the inbox (and sent rows in the outbox).",
    )
    session_timeout_seconds: float = Field(
        30.0, ge=6, le=300, validation_alias="TRADELANE_SESSION_TIMEOUT_SECONDS"
    )
    shutdown_seconds: float = Field(
        20.0,
        ge=10,
        le=600,
        validation_alias="TRADELANE_SHUTDOWN_SECONDS",
        description="How long a service may take from SIGTERM to exit; the pod's "
        "terminationGracePeriodSeconds must be longer.",
    )
    approval_token_secret: SecretStr = Field(
        SecretStr(DEV_TOKEN_SECRET),
        validation_alias="APPROVALS_TOKEN_SECRET",
        description="HMAC key that signs approver tokens (HS256 wants at least 32 bytes).",
    )
    previous_approval_token_secret: SecretStr | None = Field(
        None,
        validation_alias="APPROVALS_TOKEN_SECRET_PREVIOUS",
        description="The token secret before a rotation: tokens it signed stay valid until "
        "they expire (at most 24 h), so approvers are not signed out by a rotation.",
    )
    dev_mode: bool = Field(
        False,
        validation_alias="TRADELANE_DEV_MODE",
        description="A development machine: allows the development token secret on any address.",
    )
    database_pool_size: int = Field(
        5,
        ge=1,
        le=100,
        validation_alias="TRADELANE_DATABASE_POOL_SIZE",
        description="PostgreSQL connections a worker keeps open (SQLite ignores it).",
    )
    database_max_overflow: int = Field(
        5,
        ge=0,
        le=100,
        validation_alias="TRADELANE_DATABASE_MAX_OVERFLOW",
        description="Connections a worker may open beyond the pool under load, closed after use; "
        "a worker never holds more than pool size + overflow.",
    )
    approval_timer_seconds: float = Field(
        1.0,
        gt=0,
        le=300,
        validation_alias="APPROVALS_TIMER_SECONDS",
        description="How often approvals looks for reminders, escalations and expiries due.",
    )
    quote_timer_seconds: float = Field(
        1.0,
        gt=0,
        le=300,
        validation_alias="PRICING_QUOTE_TIMER_SECONDS",
        description="How often pricing looks for quotes whose valid-until passed (`expired`).",
    )

    _kafka_password_read: SecretStr | None = PrivateAttr(None)

    @field_validator("kafka_bootstrap_servers")
    @classmethod
    def _hosts_and_ports(cls, value: str) -> str:
        """host:port, comma-separated: names with dots and dashes, IPv4, or [IPv6]."""
        for server in value.split(","):
            if not is_bootstrap_server(server.strip()):
                raise ValueError(
                    f"expected host:port[,host:port…] (a name, an IPv4 address or [IPv6], "
                    f"and a port 1-65535), got {server.strip()!r}"
                )
        return ",".join(server.strip() for server in value.split(","))

    @field_validator("kafka_security_protocol", mode="before")
    @classmethod
    def _no_clear_text_logins(cls, value: object) -> object:
        """SASL_PLAINTEXT is refused: orders and prices would cross the network unencrypted,
        and with PLAIN the password too. Every cluster we target offers TLS (Strimzi's
        port 9093, managed Kafka), and the test broker does as well."""
        if isinstance(value, str) and value.upper() == "SASL_PLAINTEXT":
            raise ValueError(
                "SASL_PLAINTEXT sends every order (and, with PLAIN, the password) unencrypted; "
                "use SASL_SSL"
            )
        return value.upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _kafka_login_fits_the_protocol(self) -> Self:
        """The Kafka settings must make one consistent login, checked before any connection.

        Errors name the variables and never carry the password. The password file is
        read here, once: a pod whose Secret is missing fails at start-up, not later.
        """
        protocol = self.kafka_security_protocol
        if self.kafka_password is not None and self.kafka_password_file is not None:
            raise ValueError("set KAFKA_PASSWORD or KAFKA_PASSWORD_FILE, not both")
        if protocol == "SASL_SSL":
            if not self.kafka_username:
                raise ValueError("KAFKA_SECURITY_PROTOCOL=SASL_SSL needs KAFKA_USERNAME")
            if self.kafka_password is None and self.kafka_password_file is None:
                raise ValueError(
                    "KAFKA_SECURITY_PROTOCOL=SASL_SSL needs KAFKA_PASSWORD or KAFKA_PASSWORD_FILE"
                )
        else:
            given = [
                name
                for name, value in (
                    ("KAFKA_USERNAME", self.kafka_username),
                    ("KAFKA_PASSWORD", self.kafka_password),
                    ("KAFKA_PASSWORD_FILE", self.kafka_password_file),
                )
                if value is not None
            ]
            if given:
                raise ValueError(
                    f"{', '.join(given)} set, but KAFKA_SECURITY_PROTOCOL={protocol} sends no "
                    "login: set KAFKA_SECURITY_PROTOCOL=SASL_SSL"
                )
        if protocol == "PLAINTEXT":
            given = [
                name
                for name, value in (
                    ("KAFKA_SSL_CA_FILE", self.kafka_ssl_ca_file),
                    ("KAFKA_SSL_CERT_FILE", self.kafka_ssl_cert_file),
                    ("KAFKA_SSL_KEY_FILE", self.kafka_ssl_key_file),
                )
                if value is not None
            ]
            if given:
                raise ValueError(
                    f"{', '.join(given)} set, but KAFKA_SECURITY_PROTOCOL=PLAINTEXT uses no TLS: "
                    "set KAFKA_SECURITY_PROTOCOL=SSL or SASL_SSL"
                )
        if (self.kafka_ssl_cert_file is None) != (self.kafka_ssl_key_file is None):
            raise ValueError("KAFKA_SSL_CERT_FILE and KAFKA_SSL_KEY_FILE go together: set both")
        for name, path in (
            ("KAFKA_SSL_CA_FILE", self.kafka_ssl_ca_file),
            ("KAFKA_SSL_CERT_FILE", self.kafka_ssl_cert_file),
            ("KAFKA_SSL_KEY_FILE", self.kafka_ssl_key_file),
            ("KAFKA_PASSWORD_FILE", self.kafka_password_file),
        ):
            if path is not None:
                _readable_file(name, path)
        if self.kafka_password_file is not None:
            self._kafka_password_read = SecretStr(
                self.kafka_password_file.read_text().rstrip("\r\n")
            )
            if not self._kafka_password_read.get_secret_value():
                raise ValueError(f"KAFKA_PASSWORD_FILE={str(self.kafka_password_file)!r} is empty")
        elif self.kafka_password is not None:
            if not self.kafka_password.get_secret_value():
                raise ValueError("KAFKA_PASSWORD is empty")
            self._kafka_password_read = self.kafka_password
        return self

    @model_validator(mode="after")
    def _min_insync_within_replicas(self) -> Self:
        if self.topic_min_insync_replicas > self.topic_replication_factor:
            raise ValueError(
                f"TRADELANE_TOPIC_MIN_INSYNC_REPLICAS={self.topic_min_insync_replicas} is more "
                f"than TRADELANE_TOPIC_REPLICATION_FACTOR={self.topic_replication_factor}: "
                "no write with acks=all could ever succeed"
            )
        return self

    @field_validator("topic_prefix")
    @classmethod
    def _valid_topic_chars(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9._-]*", value):
            raise ValueError("only letters, digits, '.', '_' and '-' may appear in a topic name")
        return value

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not re.match(
            r"^(sqlite\+aiosqlite|postgresql\+asyncpg)://", value.get_secret_value()
        ):
            raise ValueError(
                "expected an async SQLAlchemy URL: sqlite+aiosqlite:///path.db or "
                "postgresql+asyncpg://user:pass@host/db"
            )
        return value

    @field_validator("approval_token_secret", "previous_approval_token_secret")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < MIN_TOKEN_SECRET_LENGTH:
            raise ValueError(
                f"expected at least {MIN_TOKEN_SECRET_LENGTH} characters "
                "(HS256 wants a key of 32 bytes or more)"
            )
        return value

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        if value.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("expected one of DEBUG, INFO, WARNING, ERROR")
        return value.upper()

    def kafka_password_value(self) -> str | None:
        """The Kafka password (from KAFKA_PASSWORD or the file), for the client only."""
        read = self._kafka_password_read
        return read.get_secret_value() if read is not None else None

    @property
    def inbox_retention(self) -> timedelta:
        return timedelta(days=self.inbox_retention_days)

    def database_url_for(self, service: str) -> str:
        """The service's own database: DATABASE_URL, or a SQLite file per service in data_dir.

        The URL as it is, password included: for the engine, never for a message
        (`without_password` renders one to show).
        """
        if self.database_url is not None and self.database_url.get_secret_value():
            return self.database_url.get_secret_value()
        return f"sqlite+aiosqlite:///{self.data_dir / f'{service}.db'}"

    @property
    def uses_dev_token_secret(self) -> bool:
        return self.approval_token_secret.get_secret_value() == DEV_TOKEN_SECRET

    def token_secret(self) -> str:
        """The key approver tokens are signed and checked with (approvals and its CLI only).

        The built-in development value is refused unless the web server listens on
        loopback only or TRADELANE_DEV_MODE says this is a development machine:
        anyone can read it in the source and sign tokens for any approver.
        """
        if self.uses_dev_token_secret and not (self.dev_mode or is_loopback(self.web_bind)):
            raise ConfigError(
                "bad configuration: APPROVALS_TOKEN_SECRET is not set, and its built-in "
                f"development value signs tokens anyone can forge; WEB_BIND={self.web_bind!r} "
                "is reachable from other machines. Set APPROVALS_TOKEN_SECRET to a secret of "
                f"at least {MIN_TOKEN_SECRET_LENGTH} characters (the same for the approvals "
                "service and `tradelane approvals token`), or, on a development machine only, "
                "TRADELANE_DEV_MODE=true"
            )
        return self.approval_token_secret.get_secret_value()

    def previous_token_secret(self) -> str | None:
        """The secret before a rotation, still accepted on tokens it signed (never signs)."""
        previous = self.previous_approval_token_secret
        return previous.get_secret_value() if previous and previous.get_secret_value() else None

    def web_port_for(self, service: str) -> int:
        return self.web_port or SERVICE_WEB_PORTS[service]

    def group_id(self, service: str) -> str:
        return f"{self.topic_prefix}tradelane-{service}"


def is_bootstrap_server(server: str) -> bool:
    """Whether `server` is one `host:port` a Kafka client can dial.

    Host names are RFC 1123 labels joined by dots (Strimzi's
    `my-cluster-kafka-bootstrap.kafka.svc`), or IPv4, or IPv6 in brackets.
    """
    match = _BOOTSTRAP_SERVER.fullmatch(server)
    if match is None or not 1 <= int(match["port"]) <= 65535:
        return False
    if match["ipv6"] is not None:
        try:
            ipaddress.IPv6Address(match["ipv6"])
        except ValueError:
            return False
        return True
    host = match["host"]
    if re.fullmatch(r"[\d.]+", host):  # looks numeric: must be a real IPv4 address
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            return False
    return len(host) <= 253


def _readable_file(variable: str, path: Path) -> None:
    """Fail naming `variable` unless `path` is a file this process can read."""
    if not path.is_file():
        raise ValueError(f"{variable}={str(path)!r}: no such file")
    if not os.access(path, os.R_OK):
        raise ValueError(f"{variable}={str(path)!r}: not readable by this process")


def is_loopback(bind: str) -> bool:
    """Whether a web server bound to `bind` is reachable from this machine only."""
    host = bind.strip().strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


HIDDEN = "**********"
"""What a secret setting's value is shown as (pydantic's `SecretStr` shows the same)."""


def without_password(url: str) -> str:
    """A database URL fit for a message: `scheme://user:***@host/db`.

    A `password=` in the query is starred too. Something that is not a
    `scheme://…` URL but has an `@` in it may hold a password in a place we
    cannot tell: it is hidden whole.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return HIDDEN
    userinfo, at, host = parts.netloc.rpartition("@")  # a password may contain '@' itself
    if not at and "@" in url:
        return HIDDEN
    user, colon, _ = userinfo.partition(":")
    return urlunsplit(
        parts._replace(
            netloc=f"{user}:***@{host}" if colon else parts.netloc,
            query=re.sub(r"(?i)(password=)[^&]*", r"\1***", parts.query),
        )
    )


def _variables(field: str) -> list[str]:
    """The environment variables a field is read from, the documented one first."""
    alias = Settings.model_fields[field].validation_alias
    if isinstance(alias, AliasChoices):
        return [str(choice) for choice in alias.choices]
    return [alias] if isinstance(alias, str) else [field]


def _shown(field: str | None, value: Any) -> str:
    """A bad setting's value for the error message, with secrets left out.

    A secret is shown as stars, a database URL without its password, and the
    value of anything we cannot place is not shown at all.
    """
    if field == "database_url":
        return repr(without_password(value)) if isinstance(value, str) else repr(HIDDEN)
    if field is None or "SecretStr" in str(Settings.model_fields[field].annotation):
        return repr(HIDDEN)
    return repr(value)


def load_settings() -> Settings:
    """Read the environment or exit with the offending variable's name and what was expected.

    Never with a secret's value: `APPROVALS_TOKEN_SECRET` is shown as stars and
    `DATABASE_URL` without its password.
    """
    try:
        return Settings()
    except ValidationError as exc:
        field_of = {
            name: field for field in Settings.model_fields for name in [field, *_variables(field)]
        }
        problems = []
        for error in exc.errors():
            if not error["loc"]:  # a rule across fields: its message names the variables
                problems.append(str(error["msg"]).removeprefix("Value error, "))
                continue
            where = str(error["loc"][0])
            field = field_of.get(where)
            name = _variables(field)[0] if field else where
            problems.append(f"{name}={_shown(field, error.get('input'))}: {error['msg']}")
        raise ConfigError("bad configuration: " + "; ".join(problems)) from None
