"""Approver tokens: who may sign them, how long they live, and the CLI that issues them."""

from __future__ import annotations

import pytest

from shared.cli import main
from shared.settings import DEV_TOKEN_SECRET, ConfigError


def test_the_cli_refuses_to_sign_with_the_development_secret_in_a_deployment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("APPROVALS_TOKEN_SECRET", raising=False)
    monkeypatch.delenv("TRADELANE_DEV_MODE", raising=False)
    monkeypatch.setenv("WEB_BIND", "0.0.0.0")
    with pytest.raises(ConfigError) as error:
        main(["approvals", "token", "acme-manager"])
    assert "APPROVALS_TOKEN_SECRET" in str(error.value)
    assert DEV_TOKEN_SECRET not in str(error.value)
    assert capsys.readouterr().out == ""
