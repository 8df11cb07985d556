"""Configuration from the environment, checked once at start-up.

A wrong value stops the process before it touches Kafka or a database, with
the variable's name in the message: ops should never debug a half-started pod.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SERVICE_WEB_PORTS = {"catalog": 6061, "pricing": 6062, "approvals": 6063, "fulfillment": 6064}


class ConfigError(SystemExit):
    """Raised for a bad setting; a SystemExit so the CLI prints one line, not a traceback."""


DEV_TOKEN_SECRET = "dev-only-secret-change-me-in-production"
"""Lets `make run` work out of the box; approvals warns at start-up while it is in use."""


class Settings(BaseSettings):
    """Every knob a Tradelane process reads; the env var name is in each field's alias."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:9092", validation_alias="KAFKA_BOOTSTRAP_SERVERS"
    )
    topic_prefix: str = Field("", validation_alias="TRADELANE_TOPIC_PREFIX")
    topic_partitions: int = Field(4, ge=1, le=256, validation_alias="TRADELANE_TOPIC_PARTITIONS")
    data_dir: Path = Field(Path("var"), validation_alias="TRADELANE_DATA_DIR")
    database_url: str | None = Field(None, validation_alias="DATABASE_URL")
    web_port: int | None = Field(None, ge=1, le=65535, validation_alias="WEB_PORT")
    web_bind: str = Field("127.0.0.1", validation_alias="WEB_BIND")
    log_level: str = Field(
        "INFO", validation_alias=AliasChoices("LOG_LEVEL", "TRADELANE_LOG_LEVEL")
    )
    outbox_poll_seconds: float = Field(
        1.0, gt=0, le=60, validation_alias="TRADELANE_OUTBOX_POLL_SECONDS"
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
    approval_token_secret: str = Field(
        DEV_TOKEN_SECRET,
        min_length=32,
        validation_alias="APPROVALS_TOKEN_SECRET",
        description="HMAC key that signs approver tokens (HS256 wants at least 32 bytes).",
    )
    approval_timer_seconds: float = Field(
        1.0,
        gt=0,
        le=300,
        validation_alias="APPROVALS_TIMER_SECONDS",
        description="How often approvals looks for reminders, escalations and expiries due.",
    )

    @field_validator("kafka_bootstrap_servers")
    @classmethod
    def _hosts_and_ports(cls, value: str) -> str:
        for server in value.split(","):
            if not re.fullmatch(r"[A-Za-z0-9._\-\[\]:]+:\d{1,5}", server.strip()):
                raise ValueError(f"expected host:port[,host:port…], got {server!r}")
        return value

    @field_validator("topic_prefix")
    @classmethod
    def _valid_topic_chars(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9._-]*", value):
            raise ValueError("only letters, digits, '.', '_' and '-' may appear in a topic name")
        return value

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, value: str | None) -> str | None:
        if value is not None and not re.match(
            r"^(sqlite\+aiosqlite|postgresql\+asyncpg)://", value
        ):
            raise ValueError(
                "expected an async SQLAlchemy URL: sqlite+aiosqlite:///path.db or "
                "postgresql+asyncpg://user:pass@host/db"
            )
        return value

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        if value.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("expected one of DEBUG, INFO, WARNING, ERROR")
        return value.upper()

    @property
    def inbox_retention(self) -> timedelta:
        return timedelta(days=self.inbox_retention_days)

    def database_url_for(self, service: str) -> str:
        """The service's own database: DATABASE_URL, or a SQLite file per service in data_dir."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.data_dir / f'{service}.db'}"

    def web_port_for(self, service: str) -> int:
        return self.web_port or SERVICE_WEB_PORTS[service]

    def group_id(self, service: str) -> str:
        return f"{self.topic_prefix}tradelane-{service}"


def load_settings() -> Settings:
    """Read the environment or exit with the offending variable's name and what was expected."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else "?"
            alias = (
                Settings.model_fields[field].validation_alias
                if field in Settings.model_fields
                else None
            )
            name = alias if isinstance(alias, str) else field
            if isinstance(alias, AliasChoices):
                name = str(alias.choices[0])
            problems.append(f"{name}={error.get('input')!r}: {error['msg']}")
        raise ConfigError("bad configuration: " + "; ".join(problems)) from None
