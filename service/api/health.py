"""``/health`` (really pings Postgres/SQLite and Redis) and ``/metrics`` (Prometheus)."""

from __future__ import annotations

import time

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from service.context import AppContext
from service.deps import ContextDep

router = APIRouter(tags=["health"])


class Check(BaseModel):
    ok: bool
    latency_ms: float | None = None
    detail: str = ""


class HealthPublic(BaseModel):
    status: str
    database: Check
    redis: Check


def _ping_db(ctx: AppContext) -> Check:
    start = time.perf_counter()
    try:
        with ctx.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        return Check(ok=False, detail=f"{type(exc).__name__}: {str(exc)[:200]}")
    return Check(ok=True, latency_ms=round((time.perf_counter() - start) * 1000, 2))


def _ping_redis(ctx: AppContext) -> Check:
    if ctx.redis is None:
        return Check(ok=True, detail="not used (in-process bus)")
    start = time.perf_counter()
    try:
        ctx.redis.ping()
    except Exception as exc:  # any client failure means "not healthy"
        return Check(ok=False, detail=f"{type(exc).__name__}: {str(exc)[:200]}")
    return Check(ok=True, latency_ms=round((time.perf_counter() - start) * 1000, 2))


@router.get(
    "/health",
    response_model=HealthPublic,
    responses={503: {"model": HealthPublic, "description": "a dependency is down"}},
)
def health(ctx: ContextDep) -> JSONResponse:
    """200 when the database and Redis answer, else 503; each check reported."""
    result = HealthPublic(status="ok", database=_ping_db(ctx), redis=_ping_redis(ctx))
    if not (result.database.ok and result.redis.ok):
        result.status = "degraded"
    code = 200 if result.status == "ok" else 503
    return JSONResponse(result.model_dump(), status_code=code)


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
def metrics(ctx: ContextDep) -> Response:
    """Prometheus text format (``emo_samples_ingested_total`` and friends)."""
    return Response(ctx.metrics.render(), media_type=CONTENT_TYPE_LATEST)
