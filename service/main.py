"""Composition root: ``create_app(settings)`` builds every part, wires it, and starts it.

To add the dashboard later, one line each after the API router:
``app.include_router(dashboard.router)`` and
``app.mount("/", StaticFiles(directory=STATIC_DIR, html=True), name="static")``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from service import dashboard
from service.api import alerts as alerts_api
from service.api import api_router
from service.api import health as health_api
from service.context import AppContext, build_context
from service.http import BodyLimitMiddleware, ServedPageCache, install_error_handlers
from service.ingest.runner import start_in_thread
from service.schemas.users import Role
from service.settings import ServiceSettings
from service.store.db import migrate, wait_for_db
from service.store.tables import User

logger = logging.getLogger(__name__)

TAGS = [
    {"name": "auth", "description": "Login returns a bearer token (stored hashed)."},
    {"name": "users", "description": "Users, roles and classroom grants (admin)."},
    {"name": "classrooms", "description": "Classrooms and their privacy mode."},
    {"name": "cameras", "description": "Cameras (source URL write-only) and seat maps."},
    {"name": "students", "description": "Pseudonymous students and opt-out."},
    {"name": "sessions", "description": "Start/stop class sessions (assigns cameras to workers)."},
    {"name": "live", "description": "WebSocket and SSE per session."},
    {"name": "history", "description": "Timeline, summary, classroom history, CSV."},
    {"name": "audit", "description": "Who read which per-student data."},
    {"name": "health", "description": "Health and Prometheus metrics."},
]


def create_app(
    settings: ServiceSettings | None = None,
    *,
    sessions: sessionmaker[Session] | None = None,
    context: AppContext | None = None,
) -> FastAPI:
    """The API process.

    ``sessions`` replaces the DB session factory (tests: rolled back); ``context`` passes parts
    built by an embedding process (``service.embedded``), which then shares its ingestor.
    """
    settings = context.settings if context is not None else settings or ServiceSettings()
    ctx = context or build_context(settings, sessions)
    app = FastAPI(
        title="classroom-emotions service",
        version="0.1.0",
        description="Live and historical learning-emotion scores per class session.",
        openapi_tags=TAGS,
        lifespan=_lifespan(ctx),
    )
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(ServedPageCache, cache=ctx.cache)
    install_error_handlers(app)
    app.include_router(health_api.router)
    app.include_router(api_router)
    app.include_router(alerts_api.router, prefix="/api/v1")  # issue 7: alert rules
    app.include_router(dashboard.router)  # issue 7: /dashboard/ pages
    return app


def prepare_database(ctx: AppContext) -> None:
    """Wait for the database, migrate, and create the bootstrap admin if configured."""
    settings = ctx.settings
    wait_for_db(ctx.engine, settings.db_connect_retries, settings.db_retry_interval_s)
    if settings.migrate_on_start:
        migrate(ctx.engine)
    if settings.bootstrap_admin_username and settings.bootstrap_admin_password:
        ensure_admin(
            ctx.sessions,
            settings.bootstrap_admin_username,
            settings.bootstrap_admin_password.get_secret_value(),
        )


def ensure_admin(sessions: sessionmaker[Session], username: str, password: str) -> bool:
    """Create admin ``username`` unless a user of that name exists; True when created."""
    from service.api.users import create_user

    with sessions() as db:
        if db.scalar(select(User.id).where(User.username == username)) is not None:
            return False
        create_user(db, username, password, Role.ADMIN.value)
        db.commit()
    logger.info("bootstrap admin %r created", username)
    return True


def _lifespan(ctx: AppContext) -> Callable[[FastAPI], AbstractAsyncContextManager[Any]]:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[dict[str, Any]]:
        await run_in_threadpool(prepare_database, ctx)
        await ctx.bus.start()
        stop = threading.Event()
        ingest = start_in_thread(ctx, stop) if ctx.settings.ingest_in_api else None
        try:
            yield {"ctx": ctx}
        finally:
            stop.set()
            if ingest is not None:
                await run_in_threadpool(ingest.join, 10)
            await ctx.bus.stop()
            if ctx.redis is not None:
                ctx.redis.close()
            ctx.engine.dispose()

    return lifespan
