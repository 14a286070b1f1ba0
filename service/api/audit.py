"""The audit log of per-student reads (admin only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import func, select

from service.deps import AdminUser, SessionDep
from service.schemas.common import Limit, Offset, Page
from service.schemas.users import AuditPublic
from service.store.tables import AuditEntry

router = APIRouter(prefix="/audit", tags=["audit"])


@router.get("", response_model=Page[AuditPublic])
def list_audit(
    *,
    _: AdminUser,
    db: SessionDep,
    user_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    session_id: Annotated[str | None, Query(max_length=64)] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Page[AuditPublic]:
    """Newest first."""
    query = select(AuditEntry)
    if user_id is not None:
        query = query.where(AuditEntry.user_id == user_id)
    if session_id is not None:
        query = query.where(AuditEntry.session_id == session_id)
    total = db.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = db.scalars(query.order_by(AuditEntry.id.desc()).limit(limit).offset(offset))
    items = [AuditPublic.model_validate(r) for r in rows]
    return Page(items=items, total=total, limit=limit, offset=offset)
