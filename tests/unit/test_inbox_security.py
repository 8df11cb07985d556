"""The inbox page's defences as pure rules: where a form may come from, its token, the cookie."""

from __future__ import annotations

import pytest

from services.approvals.web import (
    form_token,
    form_token_ok,
    same_origin,
    served_over_tls,
    session_cookie,
)

SECRET = "unit-test-secret-for-approver-tokens-0123"
HOST = "approvals.example:6063"


@pytest.mark.parametrize(
    ("origin", "referer", "tls"),
    [
        ("http://approvals.example:6063", None, False),
        ("https://approvals.example:6063", None, False),  # TLS ended at a proxy that did not say
        ("https://approvals.example:6063", None, True),
        ("HTTP://Approvals.Example:6063", None, False),
        (None, "http://approvals.example:6063/inbox/o-1", False),
        (None, "https://approvals.example:6063/inbox", True),
    ],
)
def test_a_form_from_the_page_itself_is_accepted(
    origin: str | None, referer: str | None, tls: bool
) -> None:
    assert same_origin(origin, referer, HOST, tls=tls)


def test_default_ports_are_the_same_origin() -> None:
    assert same_origin("https://approvals.example", None, "approvals.example:443", tls=True)
    assert same_origin("http://approvals.example:80", None, "approvals.example", tls=False)


@pytest.mark.parametrize(
    ("origin", "referer", "tls"),
    [
        ("https://evil.example", None, False),
        ("http://approvals.example:6064", None, False),  # another port is another origin
        ("http://approvals.example.evil.example:6063", None, False),
        ("null", "http://approvals.example:6063/inbox", False),  # Origin wins over Referer
        ("https://evil.example", "http://approvals.example:6063/inbox", False),
        (None, "https://evil.example/approvals.example:6063", False),
        (None, None, False),  # neither: nothing says where it came from
        ("", "", False),
        ("http://approvals.example:6063", None, True),  # https page, form over plain http
        ("ftp://approvals.example:6063", None, False),
    ],
)
def test_a_form_from_anywhere_else_is_refused(
    origin: str | None, referer: str | None, tls: bool
) -> None:
    assert not same_origin(origin, referer, HOST, tls=tls)


def test_without_a_host_nothing_is_the_same_origin() -> None:
    assert not same_origin("http://approvals.example:6063", None, None, tls=False)


def test_the_form_token_belongs_to_one_session_and_one_secret() -> None:
    token = form_token(SECRET, "session-a")
    assert form_token_ok(SECRET, "session-a", token)
    assert token == form_token(SECRET, "session-a")
    assert "session-a" not in token
    assert not form_token_ok(SECRET, "session-b", token)
    assert not form_token_ok("another-secret-for-approver-tokens-0123", "session-a", token)
    assert not form_token_ok(SECRET, "session-a", "")
    assert not form_token_ok(SECRET, "session-a", None)


@pytest.mark.parametrize(
    ("scheme", "forwarded", "expected"),
    [
        ("http", None, False),
        ("https", None, True),
        ("http", "https", True),
        ("http", "HTTPS", True),
        ("http", "https, http", True),  # the first proxy saw https
        ("http", "http", False),
    ],
)
def test_tls_is_the_scheme_or_what_the_proxy_says(
    scheme: str, forwarded: str | None, expected: bool
) -> None:
    assert served_over_tls(scheme, forwarded) is expected


def test_the_session_cookie_is_httponly_strict_and_secure_over_tls() -> None:
    plain = [a.strip() for a in session_cookie("tok", secure=False).split(";")]
    assert plain[0] == "tradelane_approver=tok"
    assert {"HttpOnly", "SameSite=Strict", "Path=/inbox"} <= set(plain)
    assert "Secure" not in plain
    assert "Secure" in [a.strip() for a in session_cookie("tok", secure=True).split(";")]
