"""Smoke test of ``python -m service.bench`` with a tiny configuration (not a measurement)."""

from __future__ import annotations

from service.bench import BenchConfig, run
from tests.conftest import PG_ADMIN_URL


def test_bench_runs_end_to_end(redis_url: str) -> None:
    tiny = BenchConfig(
        seconds=60,
        students=5,
        timeline_clients=3,
        timeline_seconds=1,
        timeline_requests=2,
        baseline=False,
        live_clients=3,
        live_events=2,
    )
    result = run(tiny, PG_ADMIN_URL, redis_url)
    assert result["ingest_samples"] == 300
    assert float(result["ingest_samples_per_s"]) > 0  # type: ignore[arg-type]
    assert result["timeline_requests"] == 3
    assert result["live_deliveries"] == 6
    assert float(result["live_p95_ms"]) >= 0  # type: ignore[arg-type]
