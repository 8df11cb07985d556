"""Bad configuration stops a process at start-up, naming the variable and what was expected."""

from __future__ import annotations

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
