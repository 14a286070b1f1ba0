"""CRUD of classrooms, cameras, seat maps, students and sessions on real Postgres and Redis."""

from __future__ import annotations

import json

import redis
from fastapi.testclient import TestClient

from contract import CameraAssignment
from contract.keys import CAMERA_STATUS_HASH, CAMERAS_HASH
from tests.service.conftest import World

API = "/api/v1"


def test_classroom_crud_and_conflicts(client: TestClient, world: World) -> None:
    admin = world.auth("admin")
    r = client.post(f"{API}/classrooms", json={"name": "Lab 7"}, headers=admin)
    assert r.status_code == 201, r.text
    room = r.json()
    assert room["privacy_mode"] == "aggregate_only"  # privacy by default
    assert (
        client.post(f"{API}/classrooms", json={"name": "Lab 7"}, headers=admin).status_code == 409
    )
    r = client.patch(f"{API}/classrooms/{room['id']}", json={"privacy_mode": "off"}, headers=admin)
    assert r.json()["privacy_mode"] == "off"
    listed = client.get(f"{API}/classrooms?limit=2&offset=0", headers=admin).json()
    assert listed["total"] == 3 and len(listed["items"]) == 2
    assert client.delete(f"{API}/classrooms/{room['id']}", headers=admin).status_code == 204
    assert client.get(f"{API}/classrooms/{room['id']}", headers=admin).status_code == 404
    # teachers may not create classrooms
    r = client.post(f"{API}/classrooms", json={"name": "x"}, headers=world.auth("teacher_a"))
    assert r.status_code == 403


def test_camera_source_url_is_never_returned(client: TestClient, world: World) -> None:
    admin = world.auth("admin")
    body = {
        "id": "cam-new",
        "classroom_id": world.room_a,
        "name": "back",
        "source_url": "rtsp://alice:s3cret@10.1.2.3:8554/live?token=abc",
    }
    r = client.post(f"{API}/cameras", json=body, headers=admin)
    assert r.status_code == 201, r.text
    assert r.json()["source"] == "rtsp://10.1.2.3:8554"
    for resp in (
        r,
        client.get(f"{API}/cameras/cam-new", headers=admin),
        client.get(f"{API}/cameras?classroom_id={world.room_a}", headers=admin),
    ):
        assert "s3cret" not in resp.text and "alice" not in resp.text
    assert client.post(f"{API}/cameras", json=body, headers=admin).status_code == 409
    r = client.patch(f"{API}/cameras/cam-new", json={"fps": 1.5}, headers=admin)
    assert r.json()["fps"] == 1.5
    assert client.delete(f"{API}/cameras/cam-new", headers=admin).status_code == 204
    assert client.get(f"{API}/cameras/cam-new", headers=admin).status_code == 404


def test_seatmap_validates_students(client: TestClient, world: World) -> None:
    teacher = world.auth("teacher_a")
    square = [[0, 0], [50, 0], [50, 50], [0, 50]]
    ok = {"seats": [{"student": "s01", "polygon": square}, {"student": "s02", "polygon": square}]}
    r = client.put(f"{API}/cameras/{world.camera_a}/seatmap", json=ok, headers=teacher)
    assert r.status_code == 200, r.text
    assert [s["student"] for s in r.json()["seats"]] == ["s01", "s02"]
    bad = {"seats": [{"student": "nobody", "polygon": square}]}
    r = client.put(f"{API}/cameras/{world.camera_a}/seatmap", json=bad, headers=teacher)
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "seats"]
    assert "nobody" in r.json()["detail"][0]["msg"]
    dup = {"seats": [{"student": "s01", "polygon": square}] * 2}
    assert (
        client.put(f"{API}/cameras/{world.camera_a}/seatmap", json=dup, headers=teacher).status_code
        == 422
    )


def test_student_crud(client: TestClient, world: World) -> None:
    teacher = world.auth("teacher_a")
    body = {"classroom_id": world.room_a, "code": "s42", "display_name": "Sam"}
    r = client.post(f"{API}/students", json=body, headers=teacher)
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    assert client.post(f"{API}/students", json=body, headers=teacher).status_code == 409
    r = client.patch(f"{API}/students/{sid}", json={"opted_out": True}, headers=teacher)
    assert r.json()["opted_out"] is True
    roster = client.get(f"{API}/students?classroom_id={world.room_a}", headers=teacher).json()
    assert "s42" in [s["code"] for s in roster["items"]]
    assert client.delete(f"{API}/students/{sid}", headers=teacher).status_code == 204
    assert client.get(f"{API}/students/{sid}", headers=teacher).status_code == 404


def test_session_start_stop_writes_camera_assignments(
    client: TestClient, world: World, redis_url: str
) -> None:
    teacher = world.auth("teacher_a")
    square = [[0, 0], [50, 0], [50, 50], [0, 50]]
    seats = {"seats": [{"student": "s01", "polygon": square}]}
    client.put(f"{API}/cameras/{world.camera_a}/seatmap", json=seats, headers=teacher)
    body = {"classroom_id": world.room_a, "title": "Maths", "privacy_mode": "per_student"}
    r = client.post(f"{API}/sessions", json=body, headers=teacher)
    assert r.status_code == 201, r.text
    session = r.json()
    r_db = redis.Redis.from_url(redis_url)
    assignment = CameraAssignment.model_validate_json(
        r_db.hget(CAMERAS_HASH, world.camera_a) or b""
    )
    assert assignment.session_id == session["id"]
    assert assignment.privacy_mode == "per_student"
    assert assignment.url.startswith("rtsp://u:pw@")  # workers get the real URL
    assert list(assignment.seats) == ["s01"]
    # a camera can be in one running session only
    assert client.post(f"{API}/sessions", json=body, headers=teacher).status_code == 409
    # the worker's status shows in the session detail
    r_db.hset(CAMERA_STATUS_HASH, world.camera_a, json.dumps({"state": "running", "fps": 2.0}))
    detail = client.get(f"{API}/sessions/{session['id']}", headers=teacher).json()
    assert detail["cameras"][0]["status"]["state"] == "running"
    # mode change re-assigns
    r = client.patch(
        f"{API}/sessions/{session['id']}", json={"privacy_mode": "off"}, headers=teacher
    )
    assert r.json()["privacy_mode"] == "off"
    assignment = CameraAssignment.model_validate_json(
        r_db.hget(CAMERAS_HASH, world.camera_a) or b""
    )
    assert assignment.privacy_mode == "off"
    r = client.post(f"{API}/sessions/{session['id']}/stop", headers=teacher)
    assert r.status_code == 200 and r.json()["running"] is False
    assert r_db.hget(CAMERAS_HASH, world.camera_a) is None
    assert client.post(f"{API}/sessions/{session['id']}/stop", headers=teacher).status_code == 409
    listed = client.get(
        f"{API}/sessions?classroom_id={world.room_a}&running=false", headers=teacher
    )
    assert [s["id"] for s in listed.json()["items"]] == [session["id"]]


def test_session_mode_never_weaker_than_classroom(client: TestClient, world: World) -> None:
    body = {"classroom_id": world.room_b, "privacy_mode": "per_student"}
    r = client.post(f"{API}/sessions", json=body, headers=world.auth("teacher_b"))
    assert r.status_code == 201
    assert r.json()["privacy_mode"] == "aggregate_only"


def test_bad_input_gets_field_level_422(client: TestClient, world: World) -> None:
    admin = world.auth("admin")
    r = client.post(f"{API}/classrooms", json={"name": "", "privacy_mode": "loud"}, headers=admin)
    assert r.status_code == 422
    locs = {tuple(d["loc"]) for d in r.json()["detail"]}
    assert ("body", "name") in locs and ("body", "privacy_mode") in locs
    r = client.post(
        f"{API}/cameras", json={"classroom_id": world.room_a, "name": "c"}, headers=admin
    )
    assert ("body", "source_url") in {tuple(d["loc"]) for d in r.json()["detail"]}
    r = client.post(
        f"{API}/sessions",
        json={"classroom_id": world.room_a, "camera_ids": [world.camera_b]},
        headers=admin,
    )
    assert r.status_code == 422 and world.camera_b in r.json()["detail"][0]["msg"]
    r = client.get(f"{API}/classrooms/not-a-number", headers=admin)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["path", "classroom_id"]


def test_unknown_ids_are_404(client: TestClient, world: World) -> None:
    admin = world.auth("admin")
    for path in (
        "/classrooms/999999",
        "/cameras/nope",
        "/students/999999",
        "/sessions/nope",
        "/users/999999",
    ):
        r = client.get(API + path, headers=admin)
        assert r.status_code == 404, path
        assert "not found" in r.json()["detail"]


def test_oversized_bodies_are_rejected(client: TestClient, world: World) -> None:
    admin = world.auth("admin")
    big = {"name": "x" * 100, "pad": "y" * (2 << 20)}
    r = client.post(f"{API}/classrooms", json=big, headers=admin)
    assert r.status_code == 413
    assert "exceeds the limit" in r.json()["detail"]

    def chunks():  # no Content-Length: counted while streaming
        for _ in range(40):
            yield b"x" * 65536

    r = client.post(
        f"{API}/classrooms", content=chunks(), headers={**admin, "Content-Type": "application/json"}
    )
    assert r.status_code == 413
