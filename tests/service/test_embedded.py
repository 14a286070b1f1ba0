"""Embedded mode: SQLite, in-process bus, FrameMessages handed to ingest directly (no Redis)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

from fastapi.testclient import TestClient

from service.embedded import EmbeddedService, embedded_settings
from service.main import ensure_admin
from tests.service.conftest import frame

API = "/api/v1"


def test_embedded_api_ingest_live_and_history_on_sqlite(tmp_path: Path) -> None:
    service = EmbeddedService(embedded_settings(tmp_path / "emo.db"))
    with TestClient(service.app) as client:
        assert client.get("/health").json()["redis"]["detail"] == "not used (in-process bus)"
        ensure_admin(service.context.sessions, "root", "root-password")
        token = client.post(
            f"{API}/auth/login", json={"username": "root", "password": "root-password"}
        )
        auth = {"Authorization": f"Bearer {token.json()['access_token']}"}
        room = client.post(
            f"{API}/classrooms", json={"name": "R", "privacy_mode": "per_student"}, headers=auth
        )
        room_id = room.json()["id"]
        cam = {"id": "cam1", "classroom_id": room_id, "name": "c", "source_url": "/v.mp4"}
        assert client.post(f"{API}/cameras", json=cam, headers=auth).status_code == 201
        for code in ("s01", "s02"):
            client.post(
                f"{API}/students", json={"classroom_id": room_id, "code": code}, headers=auth
            )
        sid = client.post(f"{API}/sessions", json={"classroom_id": room_id}, headers=auth).json()[
            "id"
        ]
        assert service.control.assignments["cam1"].session_id == sid
        now = time.time()
        with client.websocket_connect(f"{API}/sessions/{sid}/live", headers=auth) as ws:
            assert ws.receive_json()["per_student"] is True
            result = service.ingest(
                [frame("cam1", now + i, ["s01", "s02"], seq=i) for i in range(3)]
            )
            assert (result.samples, result.aggregates) == (6, 3)
            assert ws.receive_json()["students"]["s01"]["focus"] > 0.5
        again = service.ingest([frame("cam1", now + i, ["s01", "s02"], seq=i) for i in range(3)])
        assert again.samples == 0
        end = datetime.fromtimestamp(now + 10, UTC).isoformat().replace("+00:00", "Z")
        url = f"{API}/sessions/{sid}/timeline?bucket=1m&student=s02&end={end}"
        timeline = client.get(url, headers=auth)
        assert sum(b["samples"] for b in timeline.json()["items"]) == 3
        assert "emo_samples_ingested_total 6.0" in client.get("/metrics").text
