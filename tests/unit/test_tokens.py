"""Approver tokens: who may sign them, how long they live, and the CLI that issues them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import cast

import jwt
import pytest

from cli.main import main
from services.approvals.api import approver_signed_in
from shared.service import Service
from shared.settings import DEV_TOKEN_SECRET, ConfigError, load_settings
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


# --- rotating the secret ---------------------------------------------------------------------

NEW_SECRET = "unit-test-secret-after-the-rotation-4567"


def test_after_a_rotation_tokens_signed_with_the_previous_secret_still_name_their_approver() -> (
    None
):
    before = issue_token(SECRET, "acme-manager")
    assert approver_of(NEW_SECRET, before, previous=SECRET) == "acme-manager"
    assert approver_of(NEW_SECRET, issue_token(NEW_SECRET, "acme-cfo"), SECRET) == "acme-cfo"


def test_without_the_previous_secret_its_tokens_are_refused() -> None:
    with pytest.raises(TokenError, match="Signature verification failed"):
        approver_of(NEW_SECRET, issue_token(SECRET, "acme-manager"))


def test_a_token_signed_with_neither_secret_is_refused() -> None:
    forged = issue_token("someone-elses-secret-0123456789abcdef", "acme-manager")
    with pytest.raises(TokenError, match="Signature verification failed"):
        approver_of(NEW_SECRET, forged, previous=SECRET)


def test_the_previous_secret_keeps_every_other_rule() -> None:
    now = datetime.now(UTC)
    expired = signed(sub="acme-manager", aud=AUDIENCE, iat=now - timedelta(2), exp=now)
    with pytest.raises(TokenError, match="expired"):
        approver_of(NEW_SECRET, expired, previous=SECRET)
    too_long = signed(sub="acme-manager", aud=AUDIENCE, iat=now, exp=now + timedelta(days=30))
    with pytest.raises(TokenError, match="at most 24 hours"):
        approver_of(NEW_SECRET, too_long, previous=SECRET)


def test_the_approvals_service_accepts_the_previous_secret_from_its_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("APPROVALS_TOKEN_SECRET", NEW_SECRET)
    monkeypatch.setenv("APPROVALS_TOKEN_SECRET_PREVIOUS", SECRET)
    service = cast(Service, SimpleNamespace(settings=load_settings()))
    assert approver_signed_in(service, issue_token(SECRET, "acme-manager")) == "acme-manager"
    monkeypatch.delenv("APPROVALS_TOKEN_SECRET_PREVIOUS")
    service = cast(Service, SimpleNamespace(settings=load_settings()))
    with pytest.raises(TokenError):
        approver_signed_in(service, issue_token(SECRET, "acme-manager"))


def test_a_short_previous_secret_is_named_but_never_printed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("APPROVALS_TOKEN_SECRET", NEW_SECRET)
    monkeypatch.setenv("APPROVALS_TOKEN_SECRET_PREVIOUS", "short-and-secret")
    with pytest.raises(ConfigError) as error:
        load_settings()
    assert "APPROVALS_TOKEN_SECRET_PREVIOUS" in str(error.value)
    assert "short-and-secret" not in str(error.value)
