"""Bad configuration stops a process at start-up, naming the variable and what was expected."""

from __future__ import annotations

import pytest

from shared.settings import ConfigError, load_settings


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("TRADELANE_TOPIC_PARTITIONS", "zero", "valid integer"),
        ("KAFKA_BOOTSTRAP_SERVERS", "localhost", "host:port"),
        ("DATABASE_URL", "sqlite:///x.db", "async SQLAlchemy URL"),
        ("WEB_PORT", "70000", "less than or equal to 65535"),
        ("LOG_LEVEL", "LOUD", "one of DEBUG"),
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
