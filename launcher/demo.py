"""Creates (or reuses) the demo classroom through the public API and starts a session."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import httpx

logger = logging.getLogger(__name__)

CLASSROOM_NAME = "Demo classroom"
CAMERA_ID = "demo-cam"


class DemoSetupError(RuntimeError):
    """The API refused a step of the demo set-up."""


@dataclass(frozen=True)
class DemoSession:
    """What the launcher tells the person at the terminal."""

    classroom_id: int
    session_id: str
    camera_id: str


def _check(resp: httpx.Response, what: str) -> httpx.Response:
    if resp.status_code >= 400:
        raise DemoSetupError(f"{what} failed: HTTP {resp.status_code} {resp.text[:300]}")
    return resp


def _items(resp: httpx.Response) -> list[dict[str, object]]:
    body = resp.json()
    return list(body["items"]) if isinstance(body, dict) else list(body)


def setup_demo(
    client: httpx.Client,
    *,
    username: str,
    password: str,
    source: str,
    seats: dict[str, list[tuple[float, float]]],
    fps: float,
) -> DemoSession:
    """Log in, ensure classroom, students, camera and seat map, stop old runs, start a session."""
    token = _check(
        client.post("/api/v1/auth/login", json={"username": username, "password": password}),
        "login",
    ).json()["access_token"]
    client.headers["Authorization"] = f"Bearer {token}"

    rooms = _items(_check(client.get("/api/v1/classrooms", params={"limit": 200}), "list rooms"))
    room = next((r for r in rooms if r["name"] == CLASSROOM_NAME), None)
    if room is None:
        room = _check(
            client.post(
                "/api/v1/classrooms", json={"name": CLASSROOM_NAME, "privacy_mode": "per_student"}
            ),
            "create classroom",
        ).json()
    room_id = int(str(room["id"]))

    students = _items(
        _check(client.get("/api/v1/students", params={"classroom_id": room_id}), "list students")
    )
    known = {s["code"] for s in students}
    for code in seats:
        if code not in known:
            _check(
                client.post("/api/v1/students", json={"classroom_id": room_id, "code": code}),
                f"create student {code}",
            )

    camera = {"classroom_id": room_id, "name": "Demo camera", "source_url": source, "fps": fps}
    if client.get(f"/api/v1/cameras/{CAMERA_ID}").status_code == 404:
        _check(client.post("/api/v1/cameras", json={"id": CAMERA_ID, **camera}), "create camera")
    else:
        patch = {"source_url": source, "fps": fps}
        _check(client.patch(f"/api/v1/cameras/{CAMERA_ID}", json=patch), "update camera")
    seat_list = [{"student": code, "polygon": poly} for code, poly in seats.items()]
    _check(
        client.put(f"/api/v1/cameras/{CAMERA_ID}/seatmap", json={"seats": seat_list}), "seat map"
    )

    sessions = _items(
        _check(
            client.get("/api/v1/sessions", params={"classroom_id": room_id, "running": True}),
            "list sessions",
        )
    )
    for old in sessions:
        if old.get("running"):
            _check(client.post(f"/api/v1/sessions/{old['id']}/stop"), "stop old session")
    session = _check(
        client.post(
            "/api/v1/sessions",
            json={"classroom_id": room_id, "title": "Demo lesson", "camera_ids": [CAMERA_ID]},
        ),
        "start session",
    ).json()
    logger.info("demo session %s started in classroom %s", session["id"], room_id)
    return DemoSession(room_id, str(session["id"]), CAMERA_ID)
