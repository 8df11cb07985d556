"""Approver tokens: a signed JWT (HS256) whose subject is the approver's member id.

The approvals service checks them on its API and web page; the CLI
(`tradelane approvals token`) and the demo issue them. An identity provider
in front of Tradelane would issue the same kind of token with the same secret.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt

AUDIENCE = "tradelane-approvals"
ALGORITHM = "HS256"
DEFAULT_TTL = timedelta(hours=8)


class TokenError(Exception):
    """The request carries no usable token: answer 401 with this message."""


def issue_token(secret: str, approver_id: str, ttl: timedelta = DEFAULT_TTL) -> str:
    now = datetime.now(UTC)
    claims = {"sub": approver_id, "aud": AUDIENCE, "iat": now, "exp": now + ttl}
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def approver_of(secret: str, token: str) -> str:
    """The approver a token was issued to; `TokenError` says why it is not accepted."""
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            options={"require": ["sub", "exp", "aud"]},
        )
    except jwt.ExpiredSignatureError:
        raise TokenError("the token has expired; ask for a new one") from None
    except jwt.InvalidTokenError as invalid:
        raise TokenError(f"the token is not valid: {invalid}") from None
    return str(claims["sub"])


def bearer(authorization: str | None) -> str:
    """The token in an `Authorization: Bearer …` header."""
    if not authorization:
        raise TokenError("missing Authorization header: send 'Authorization: Bearer <token>'")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise TokenError("the Authorization header must be 'Bearer <token>'")
    return token.strip()
