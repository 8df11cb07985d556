"""Approver tokens: a signed JWT (HS256) whose subject is the approver's member id.

A token carries `sub`, `aud`, `iat` and `exp`, and is valid for at most
`MAX_TTL` (24 hours) from its `iat`: a longer-lived one is refused however it
was signed.

The approvals service checks them on its API and web page; the CLI
(`tradelane approvals token`) and the demo issue them. An identity provider
in front of Tradelane would issue the same kind of token with the same secret.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import jwt

AUDIENCE = "tradelane-approvals"
ALGORITHM = "HS256"
DEFAULT_TTL = timedelta(hours=8)
MAX_TTL = timedelta(hours=24)
"""The longest a token may be valid (`exp - iat`): a leaked token stops working within a day,
and there is no revocation list to stop it sooner."""


class TokenError(Exception):
    """The request carries no usable token: answer 401 with this message."""


def describe_ttl(ttl: timedelta) -> str:
    hours = ttl.total_seconds() / 3600
    return f"{hours:g} hours"


def issue_token(secret: str, approver_id: str, ttl: timedelta = DEFAULT_TTL) -> str:
    """A token for `approver_id`, valid for `ttl` (more than 0, at most `MAX_TTL`)."""
    if not timedelta(0) < ttl <= MAX_TTL:
        raise ValueError(
            f"a token lives more than 0 and at most {describe_ttl(MAX_TTL)}; "
            f"asked for {describe_ttl(ttl)}"
        )
    now = datetime.now(UTC)
    claims = {"sub": approver_id, "aud": AUDIENCE, "iat": now, "exp": now + ttl}
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def approver_of(secret: str, token: str, previous: str | None = None) -> str:
    """The approver a token was issued to; `TokenError` says why it is not accepted.

    `previous` is the secret before a rotation: a token it signed is still accepted,
    so approvers are not all signed out at the moment ops change the secret. Only the
    key differs; every other rule (audience, expiry, lifetime) applies the same.
    """
    try:
        try:
            claims = _claims(secret, token)
        except jwt.InvalidSignatureError:
            if previous is None:
                raise
            claims = _claims(previous, token)
    except jwt.ExpiredSignatureError:
        raise TokenError("the token has expired; ask for a new one") from None
    except jwt.InvalidTokenError as invalid:
        raise TokenError(f"the token is not valid: {invalid}") from None
    lifetime = timedelta(seconds=float(claims["exp"]) - float(claims["iat"]))
    if lifetime > MAX_TTL:
        raise TokenError(
            f"the token is valid for {describe_ttl(lifetime)}; tokens may be valid for "
            f"at most {describe_ttl(MAX_TTL)}: ask for a new one"
        )
    return str(claims["sub"])


def _claims(secret: str, token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(
        token,
        secret,
        algorithms=[ALGORITHM],
        audience=AUDIENCE,
        options={"require": ["sub", "exp", "aud", "iat"]},
    )
    return claims


def bearer(authorization: str | None) -> str:
    """The token in an `Authorization: Bearer …` header."""
    if not authorization:
        raise TokenError("missing Authorization header: send 'Authorization: Bearer <token>'")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise TokenError("the Authorization header must be 'Bearer <token>'")
    return token.strip()
