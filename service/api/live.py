"""Live: a WebSocket and a Server-Sent-Events stream per session, fed by the process's hub."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Path, WebSocket
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.websockets import WebSocketDisconnect

from service.access import audit, effective_mode, per_student_visible, require_session
from service.context import AppContext
from service.deps import ContextDep, LiveTokenDep, context_of
from service.errors import ForbiddenError, ServiceError, UnauthorizedError
from service.live.events import LiveEvent
from service.schemas.users import Role
from service.security import user_for_token

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/sessions", tags=["live"])
SessionId = Annotated[str, Path(min_length=1, max_length=64)]
KEEPALIVE_S = 15.0
#: WebSocket close codes: 4000 + the HTTP status the error would have had.
WS_CLOSE_BASE = 4000


@dataclass(frozen=True)
class LiveGrant:
    """What one live client may receive."""

    session_id: str
    privacy_mode: str
    per_student: bool

    def hello(self) -> dict[str, object]:
        return {
            "type": "hello",
            "session_id": self.session_id,
            "privacy_mode": self.privacy_mode,
            "per_student": self.per_student,
        }


def authorize_live(ctx: AppContext, token: str, session_id: str) -> LiveGrant:
    """Admins and teachers of the classroom; per-student scores only when mode and role allow."""
    with ctx.sessions() as db:
        user = user_for_token(db, token)
        if user.role == Role.ANALYST:
            raise ForbiddenError("analysts read history only; live is for admins and teachers")
        sess, classroom, access = require_session(db, user, session_id)
        mode = effective_mode(sess, classroom)
        per_student = per_student_visible(access, mode)
        if per_student:
            audit(db, user, "live", classroom_id=classroom.id, session_id=sess.id)
            db.commit()
        return LiveGrant(sess.id, mode.value, per_student)


def _frame(event: LiveEvent, grant: LiveGrant) -> str:
    return json.dumps(event.render(per_student=grant.per_student))


@router.websocket("/{session_id}/live")
async def live_ws(websocket: WebSocket, session_id: str) -> None:
    """WebSocket: a ``hello`` message, then one ``frame`` message per analysed frame.

    Token: ``Authorization: Bearer``, the subprotocol pair ``["bearer", <token>]`` (browsers:
    ``new WebSocket(url, ["bearer", token])``, keeps the token out of URLs and access logs), or
    ``?token=``. Refusals close with 4000 + HTTP status (4401, 4403, 4404) and the reason.
    """
    ctx = context_of(websocket)
    offered = list(websocket.scope.get("subprotocols", []))
    via_protocol = _protocol_token(offered)
    await websocket.accept(subprotocol="bearer" if via_protocol else None)
    token = (
        via_protocol
        or _bearer(websocket.headers.get("authorization"))
        or websocket.query_params.get("token")
    )
    try:
        if not token:
            raise UnauthorizedError("missing token (Authorization: Bearer <token> or ?token=)")
        grant = await run_in_threadpool(authorize_live, ctx, token, session_id[:64])
    except ServiceError as exc:
        await websocket.close(code=WS_CLOSE_BASE + exc.status_code, reason=str(exc)[:120])
        return
    with ctx.bus.hub.subscribe(grant.session_id) as queue:
        await websocket.send_text(json.dumps(grant.hello()))
        pump = asyncio.create_task(_pump_ws(websocket, queue, grant))
        drain = asyncio.create_task(_drain_ws(websocket))
        _, pending = await asyncio.wait({pump, drain}, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
                await task


async def _pump_ws(websocket: WebSocket, queue: asyncio.Queue[LiveEvent], grant: LiveGrant) -> None:
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        while True:
            event = await queue.get()
            await websocket.send_text(_frame(event, grant))


async def _drain_ws(websocket: WebSocket) -> None:
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return


def _protocol_token(offered: list[str]) -> str | None:
    if "bearer" in offered:
        index = offered.index("bearer")
        if index + 1 < len(offered):
            return offered[index + 1]
    return None


def _bearer(header: str | None) -> str | None:
    if header and header.lower().startswith("bearer "):
        return header[7:].strip()
    return None


@router.get(
    "/{session_id}/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "SSE stream"}},
)
async def live_sse(
    session_id: SessionId, ctx: ContextDep, token: LiveTokenDep
) -> StreamingResponse:
    """Server-Sent Events: ``hello`` then ``frame`` events (same JSON as the WebSocket)."""
    grant = await run_in_threadpool(authorize_live, ctx, token, session_id)
    return StreamingResponse(
        _sse(ctx, grant),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _sse(ctx: AppContext, grant: LiveGrant) -> AsyncIterator[str]:
    with ctx.bus.hub.subscribe(grant.session_id) as queue:
        yield f"event: hello\ndata: {json.dumps(grant.hello())}\n\n"
        while True:
            try:
                event = await asyncio.wait_for(queue.get(), timeout=KEEPALIVE_S)
            except TimeoutError:
                yield ": keepalive\n\n"
                continue
            yield f"event: frame\ndata: {_frame(event, grant)}\n\n"
