"""Login, hashed tokens, brute-force limiting and the role/classroom access matrix."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from service.store.tables import ApiToken
from tests.service.conftest import World, start_session

API = "/api/v1"


def test_login_returns_a_token_stored_only_hashed(
    client: TestClient, world: World, db_factory: sessionmaker[Session]
) -> None:
    r = client.post(f"{API}/auth/login", json={"username": "admin", "password": "password-admin"})
    assert r.status_code == 200, r.text
    token = r.json()["access_token"]
    me = client.get(f"{API}/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert me.json()["username"] == "admin" and me.json()["role"] == "admin"
    with db_factory() as db:
        hashes = list(db.scalars(select(ApiToken.token_hash)))
    assert token not in hashes and len(hashes) == len(world.tokens) + 1
    r = client.post(f"{API}/auth/logout", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 204
    assert (
        client.get(f"{API}/auth/me", headers={"Authorization": f"Bearer {token}"}).status_code
        == 401
    )


def test_bad_credentials_and_missing_token(client: TestClient, world: World) -> None:
    r = client.post(f"{API}/auth/login", json={"username": "admin", "password": "wrong"})
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert client.get(f"{API}/classrooms").status_code == 401
    r = client.get(f"{API}/classrooms", headers={"Authorization": "Bearer forged"})
    assert r.status_code == 401


def test_login_brute_force_is_limited(client: TestClient, world: World) -> None:
    for _ in range(5):
        r = client.post(f"{API}/auth/login", json={"username": "teacher_a", "password": "guess"})
        assert r.status_code == 401
    # even the right password is refused while limited
    r = client.post(
        f"{API}/auth/login", json={"username": "teacher_a", "password": "password-teacher_a"}
    )
    assert r.status_code == 429
    assert int(r.headers["retry-after"]) > 0


@pytest.mark.parametrize(
    ("who", "method", "path", "expected"),
    [
        ("teacher_a", "GET", "/classrooms/{room_b}", 403),
        ("teacher_a", "GET", "/classrooms/{room_a}", 200),
        ("teacher_b", "GET", "/cameras/{camera_a}", 403),
        ("teacher_a", "GET", "/students?classroom_id={room_b}", 403),
        ("teacher_a", "POST", "/users", 403),
        ("teacher_a", "GET", "/audit", 403),
        ("analyst", "GET", "/classrooms/{room_b}", 200),
        ("analyst", "GET", "/cameras/{camera_a}", 403),
        ("analyst", "GET", "/students?classroom_id={room_a}", 403),
        ("analyst_granted", "GET", "/students?classroom_id={room_a}", 200),
        ("analyst", "POST", "/sessions", 403),
        ("admin", "GET", "/audit", 200),
    ],
)
def test_access_matrix(
    client: TestClient, world: World, who: str, method: str, path: str, expected: int
) -> None:
    url = API + path.format(room_a=world.room_a, room_b=world.room_b, camera_a=world.camera_a)
    body: dict[str, object] | None = None
    if method == "POST" and "sessions" in path:
        body = {"classroom_id": world.room_a}
    if method == "POST" and path == "/users":
        body = {"username": "eve", "password": "password1", "role": "admin"}
    r = client.request(method, url, json=body, headers=world.auth(who))
    assert r.status_code == expected, r.text


def test_teacher_lists_only_own_classrooms_and_sessions(
    client: TestClient, world: World, db_factory: sessionmaker[Session]
) -> None:
    start_session(db_factory, world.room_b, world.camera_b, "aggregate_only")
    rooms = client.get(f"{API}/classrooms", headers=world.auth("teacher_a")).json()["items"]
    assert [r["id"] for r in rooms] == [world.room_a]
    sessions = client.get(f"{API}/sessions", headers=world.auth("teacher_a")).json()
    assert sessions["total"] == 0
    assert client.get(f"{API}/sessions", headers=world.auth("teacher_b")).json()["total"] == 1


def test_admin_manages_users_and_grants(client: TestClient, world: World) -> None:
    admin = world.auth("admin")
    r = client.post(
        f"{API}/users",
        json={"username": "newt", "password": "long enough", "role": "teacher"},
        headers=admin,
    )
    assert r.status_code == 201
    uid = r.json()["id"]
    assert "password" not in r.text
    r = client.post(f"{API}/auth/login", json={"username": "newt", "password": "long enough"})
    token = {"Authorization": f"Bearer {r.json()['access_token']}"}
    assert client.get(f"{API}/classrooms/{world.room_b}", headers=token).status_code == 403
    r = client.put(f"{API}/users/{uid}/grants/{world.room_b}", json={}, headers=admin)
    assert r.status_code == 200
    assert client.get(f"{API}/classrooms/{world.room_b}", headers=token).status_code == 200
    assert (
        client.patch(f"{API}/users/{uid}", json={"disabled": True}, headers=admin).status_code
        == 200
    )
    assert client.get(f"{API}/classrooms/{world.room_b}", headers=token).status_code == 401
    r = client.patch(
        f"{API}/users/{world.user_ids['admin']}", json={"role": "analyst"}, headers=admin
    )
    assert r.status_code == 422
