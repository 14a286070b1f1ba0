"""Login (token), logout, who am I."""

from __future__ import annotations

from fastapi import APIRouter, Request, status
from sqlalchemy import select

from service.deps import CurrentUser, SessionDep, SettingsDep, TokenDep
from service.errors import UnauthorizedError
from service.schemas.users import LoginRequest, TokenPublic, UserPublic
from service.security import (
    check_login_allowed,
    issue_token,
    record_login_failure,
    revoke_token,
    verify_user_password,
)
from service.store.tables import User

router = APIRouter(prefix="/auth", tags=["auth"])

AUTH_ERRORS: dict[int | str, dict[str, object]] = {
    401: {"description": "bad credentials"},
    429: {"description": "too many failed logins (Retry-After)"},
}


@router.post("/login", response_model=TokenPublic, responses=AUTH_ERRORS)
def login(
    body: LoginRequest, request: Request, db: SessionDep, settings: SettingsDep
) -> TokenPublic:
    """Exchange username and password for a bearer token (stored hashed; shown once)."""
    client = request.client.host if request.client else "unknown"
    check_login_allowed(
        db, body.username, client, settings.login_max_failures, settings.login_window_s
    )
    user = db.scalar(select(User).where(User.username == body.username))
    stored = user.password_hash if user is not None else None
    ok = verify_user_password(body.password.get_secret_value(), stored)
    if user is None or not ok or user.disabled:
        record_login_failure(db, body.username, client)
        db.commit()
        raise UnauthorizedError("wrong username or password")
    token, expires = issue_token(db, user, settings.token_ttl_hours)
    db.commit()
    return TokenPublic(access_token=token, expires_at=expires)


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
def logout(user: CurrentUser, token: TokenDep, db: SessionDep) -> None:
    """Revoke the token used for this request."""
    revoke_token(db, token)
    db.commit()


@router.get("/me", response_model=UserPublic)
def me(user: CurrentUser) -> User:
    """The caller."""
    return user
