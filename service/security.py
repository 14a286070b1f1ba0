"""Passwords (scrypt, salted), API tokens (random, stored only as SHA-256), login limiting."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from service.errors import RateLimitedError, UnauthorizedError
from service.store.tables import ApiToken, LoginFailure, User, utcnow

_N, _R, _P = 2**14, 8, 1
#: A client address may fail this many times more often than one username.
CLIENT_FACTOR = 4
#: Verified against when the username does not exist, so both cases take the same time.
_DUMMY_HASH = (
    "scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
)


def verify_user_password(password: str, stored: str | None) -> bool:
    """Like :func:`verify_password`, but spends the same time when there is no user."""
    if stored is None:
        verify_password(password, _DUMMY_HASH)
        return False
    return verify_password(password, stored)


def hash_password(password: str) -> str:
    """``scrypt$N$r$p$salt$hash`` (base64)."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    b64 = base64.b64encode
    return f"scrypt${_N}${_R}${_P}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    """Constant-time check of ``password`` against a :func:`hash_password` string."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    got = hashlib.scrypt(
        password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p), dklen=32
    )
    return hmac.compare_digest(got, base64.b64decode(digest))


def token_digest(token: str) -> str:
    """What the database stores for a token (tokens are 256-bit random, so SHA-256 suffices)."""
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(db: Session, user: User, ttl_hours: float) -> tuple[str, datetime]:
    """Create a token for ``user``; returns the plain token (shown once) and its expiry."""
    token = secrets.token_urlsafe(32)
    expires = utcnow() + timedelta(hours=ttl_hours)
    db.add(ApiToken(user_id=user.id, token_hash=token_digest(token), expires_at=expires))
    db.flush()
    return token, expires


def user_for_token(db: Session, token: str) -> User:
    """The active user a token belongs to; UnauthorizedError if unknown, expired or revoked."""
    row = db.execute(
        select(ApiToken, User)
        .join(User, User.id == ApiToken.user_id)
        .where(ApiToken.token_hash == token_digest(token))
    ).first()
    if row is None:
        raise UnauthorizedError("unknown token")
    api_token, user = row
    if api_token.revoked_at is not None or _aware(api_token.expires_at) <= utcnow():
        raise UnauthorizedError("token expired or revoked")
    if user.disabled:
        raise UnauthorizedError(f"user {user.username!r} is disabled")
    return user


def revoke_token(db: Session, token: str) -> None:
    """Mark a token revoked (logout)."""
    api_token = db.scalar(select(ApiToken).where(ApiToken.token_hash == token_digest(token)))
    if api_token is not None:
        api_token.revoked_at = utcnow()


def check_login_allowed(
    db: Session, username: str, client: str, max_failures: int, window_s: int
) -> None:
    """Raise RateLimitedError when ``username`` failed ``max_failures`` times recently, or
    ``client`` (one address, possibly a school's NAT) ``CLIENT_FACTOR`` times as often."""
    since = utcnow() - timedelta(seconds=window_s)
    recent = select(func.count()).select_from(LoginFailure).where(LoginFailure.at >= since)
    by_user = db.scalar(recent.where(LoginFailure.username == username[:64])) or 0
    if by_user >= max_failures:
        raise RateLimitedError(f"too many failed logins for {username!r}; retry later", window_s)
    by_client = db.scalar(recent.where(LoginFailure.client == client[:64])) or 0
    if by_client >= max_failures * CLIENT_FACTOR:
        raise RateLimitedError(f"too many failed logins from {client}; retry later", window_s)


def record_login_failure(db: Session, username: str, client: str) -> None:
    """Remember one failed login (old entries are purged by the retention job)."""
    db.add(LoginFailure(username=username[:64], client=client[:64]))


def purge_login_failures(db: Session, older_than: datetime) -> int:
    """Delete failure records older than ``older_than``; returns how many."""
    result = db.execute(delete(LoginFailure).where(LoginFailure.at < older_than))
    return int(getattr(result, "rowcount", 0) or 0)


def _aware(value: datetime) -> datetime:
    """SQLite returns naive datetimes; they are UTC."""
    from datetime import UTC

    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
