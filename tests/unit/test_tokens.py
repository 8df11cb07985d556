"""Approver tokens: who may sign them, how long they live, and the CLI that issues them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
import pytest

from cli.main import main
from shared.settings import DEV_TOKEN_SECRET, ConfigError
from shared.tokens import AUDIENCE, MAX_TTL, TokenError, approver_of, issue_token

SECRET = "unit-test-secret-for-approver-tokens-0123"


def signed(**claims: object) -> str:
    """A token as any issuer might sign it, with exactly these claims."""
    return jwt.encode(claims, SECRET, algorithm="HS256")


def test_tokens_live_at_most_a_day() -> None:
    assert timedelta(hours=24) == MAX_TTL


def test_a_token_issued_for_the_longest_lifetime_is_accepted() -> None:
    assert approver_of(SECRET, issue_token(SECRET, "acme-manager", MAX_TTL)) == "acme-manager"


def test_a_token_valid_for_longer_than_the_maximum_is_refused() -> None:
    now = datetime.now(UTC)
    token = signed(sub="acme-manager", aud=AUDIENCE, iat=now, exp=now + MAX_TTL + timedelta(1))
    with pytest.raises(TokenError, match="at most 24 hours"):
        approver_of(SECRET, token)


def test_a_token_without_its_issue_time_is_refused() -> None:
    """Without `iat` nobody can tell how long it was meant to live: a year, for all we know."""
    token = signed(sub="acme-manager", aud=AUDIENCE, exp=datetime.now(UTC) + timedelta(hours=1))
    with pytest.raises(TokenError, match="iat"):
        approver_of(SECRET, token)


@pytest.mark.parametrize("ttl", [MAX_TTL + timedelta(seconds=1), timedelta(0), timedelta(-1)])
def test_issue_token_refuses_a_lifetime_out_of_bounds(ttl: timedelta) -> None:
    with pytest.raises(ValueError, match="24 hours"):
        issue_token(SECRET, "acme-manager", ttl)


def test_the_cli_ttl_is_bounded_by_the_maximum(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("APPROVALS_TOKEN_SECRET", SECRET)
    with pytest.raises(SystemExit) as exit_:
        main(["approvals", "token", "acme-manager", "--ttl", "25"])
    assert exit_.value.code == 2
    assert "at most 24" in capsys.readouterr().err

    assert main(["approvals", "token", "acme-manager", "--ttl", "24"]) == 0
    token = capsys.readouterr().out.strip()
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], audience=AUDIENCE)
    assert claims["exp"] - claims["iat"] == 24 * 3600


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
