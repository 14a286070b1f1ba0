"""FastAPI dependencies as ``Annotated`` aliases (the only way routers reach shared parts)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, cast

from fastapi import Depends, Query
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session
from starlette.requests import HTTPConnection

from service.context import AppContext
from service.errors import ForbiddenError, UnauthorizedError
from service.schemas.users import Role
from service.security import user_for_token
from service.settings import ServiceSettings
from service.store.tables import User

_bearer = HTTPBearer(auto_error=False, description="token from POST /api/v1/auth/login")


def context_of(conn: HTTPConnection) -> AppContext:
    """The process's parts, placed in the lifespan state by ``create_app``."""
    return cast(AppContext, conn.state.ctx)


async def get_context(conn: HTTPConnection) -> AppContext:
    """Dependency form of :func:`context_of` (async: no thread-pool hop for a lookup)."""
    return cast(AppContext, conn.state.ctx)


ContextDep = Annotated[AppContext, Depends(get_context)]


async def get_settings(ctx: ContextDep) -> ServiceSettings:
    return ctx.settings


SettingsDep = Annotated[ServiceSettings, Depends(get_settings)]


def get_db(ctx: ContextDep) -> Iterator[Session]:
    """One database session per request; routers commit explicitly."""
    with ctx.sessions() as db:
        yield db


SessionDep = Annotated[Session, Depends(get_db)]


async def get_token(
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    if creds is None:
        raise UnauthorizedError("missing bearer token (Authorization: Bearer <token>)")
    return creds.credentials


TokenDep = Annotated[str, Depends(get_token)]


def get_current_user(db: SessionDep, token: TokenDep) -> User:
    return user_for_token(db, token)


CurrentUser = Annotated[User, Depends(get_current_user)]


async def require_admin(user: CurrentUser) -> User:
    if user.role != Role.ADMIN:
        raise ForbiddenError(f"role {user.role!r} may not do this (admin only)")
    return user


AdminUser = Annotated[User, Depends(require_admin)]


async def require_staff(user: CurrentUser) -> User:
    """Admins and teachers (analysts are read-only)."""
    if user.role not in (Role.ADMIN, Role.TEACHER):
        raise ForbiddenError(f"role {user.role!r} may not do this (admin or teacher only)")
    return user


StaffUser = Annotated[User, Depends(require_staff)]


async def get_live_token(
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    token: Annotated[
        str | None, Query(max_length=256, description="for EventSource/WebSocket clients")
    ] = None,
) -> str:
    """Bearer header, or ``?token=`` (browsers cannot set headers on EventSource/WebSocket)."""
    if creds is not None:
        return creds.credentials
    if token:
        return token
    raise UnauthorizedError("missing token (Authorization: Bearer <token> or ?token=)")


LiveTokenDep = Annotated[str, Depends(get_live_token)]
