"""/health really pings Postgres and Redis; /metrics is Prometheus text."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from service.main import create_app
from service.settings import ServiceSettings


def test_health_reports_each_dependency(client: TestClient) -> None:
    r = client.get("/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok"
    assert body["database"]["ok"] and body["database"]["latency_ms"] >= 0
    assert body["redis"]["ok"] and body["redis"]["latency_ms"] >= 0


@pytest.mark.faults
def test_health_is_503_when_redis_is_down(
    settings: ServiceSettings, db_factory: sessionmaker[Session]
) -> None:
    dead = settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    with TestClient(create_app(dead, sessions=db_factory)) as client:
        r = client.get("/health")
    assert r.status_code == 503
    body = r.json()
    assert body["status"] == "degraded" and body["database"]["ok"] is True
    assert body["redis"]["ok"] is False and "Connection" in body["redis"]["detail"]


def test_metrics_exposition(client: TestClient) -> None:
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    assert "# TYPE emo_samples_ingested_total counter" in r.text
    assert "emo_live_clients 0.0" in r.text
