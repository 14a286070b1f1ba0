"""HTTP API, one router per resource, mounted under ``/api/v1`` by ``service.main``."""

from fastapi import APIRouter

from service.api import (
    audit,
    auth,
    cameras,
    classrooms,
    history,
    live,
    sessions,
    students,
    users,
)

api_router = APIRouter(prefix="/api/v1")
for _module in (auth, users, classrooms, cameras, students, sessions, history, live, audit):
    api_router.include_router(_module.router)
