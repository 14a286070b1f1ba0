"""The worker's one typed settings object (environment variables prefixed ``EMO_WORKER_``).

Nested/JSON values come from JSON strings, e.g.
``EMO_WORKER_CAMERAS='[{"camera_id": "room1", "url": "rtsp://cam/stream"}]'``.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from contract import CameraAssignment

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = ROOT / "models" / "weights" / "learning_emotion.onnx"


def _default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class DetectSettings(BaseSettings):
    """Face detection (MTCNN) and its filters."""

    model_config = SettingsConfigDict(env_prefix="EMO_WORKER_DETECT_", extra="ignore")

    long_side: int = Field(default=960, ge=160, description="detect on a copy this long")
    min_face_px: float = Field(default=24.0, ge=8.0, description="in source pixels")
    min_prob: float = Field(default=0.80, ge=0.0, le=1.0)
    min_blur: float = Field(default=10.0, ge=0.0, description="variance of Laplacian, grey")
    full_every: int = Field(
        default=4, ge=1, description="full-frame search every N frames; refine tracks between"
    )
    refine_min_prob: float = Field(default=0.60, ge=0.0, le=1.0)


class WorkerSettings(BaseSettings):
    """Everything `python -m worker` needs, validated at start-up."""

    model_config = SettingsConfigDict(env_prefix="EMO_WORKER_", extra="ignore")

    worker_id: str = Field(default_factory=_default_worker_id, min_length=1, max_length=128)
    redis_url: str | None = "redis://127.0.0.1:6379/0"
    model_path: Path = DEFAULT_MODEL
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int = Field(default=0, ge=0, description="CPU threads per stage; 0 = every core")

    cameras: list[CameraAssignment] = Field(default_factory=list, description="static cameras")
    cameras_from_redis: bool = True
    max_cameras: int = Field(default=16, ge=1)

    detect: DetectSettings = Field(default_factory=DetectSettings)
    track_iou: float = Field(default=0.3, gt=0.0, lt=1.0)
    track_max_age_s: float = Field(default=3.0, gt=0.0)
    smoothing_tau_s: float = Field(default=3.0, ge=0.0, description="EMA time constant")
    max_batch: int = Field(default=64, ge=1, description="faces per model call")

    stream_maxlen: int = Field(default=100_000, ge=100)
    publish_buffer: int = Field(default=1000, ge=1, description="messages kept while Redis is down")
    lease_ttl_s: float = Field(default=6.0, gt=0.5, le=10.0)
    heartbeat_ttl_s: float = Field(default=10.0, gt=1.0)
    coordination_period_s: float = Field(default=1.0, gt=0.05)

    loop_files: bool = True
    stale_after_s: float = Field(default=5.0, gt=0.1)
    open_timeout_s: float = Field(default=5.0, gt=0.1)
    backoff_initial_s: float = Field(default=0.5, gt=0.0)
    backoff_max_s: float = Field(default=10.0, gt=0.0)

    metrics_port: int | None = Field(default=9108, ge=0, le=65535)
    log_level: str = "INFO"

    @field_validator("redis_url", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @model_validator(mode="after")
    def _check(self) -> WorkerSettings:
        ids = [c.camera_id for c in self.cameras]
        if len(ids) != len(set(ids)):
            raise ValueError(f"EMO_WORKER_CAMERAS has duplicate camera ids: {ids}")
        if self.backoff_max_s < self.backoff_initial_s:
            raise ValueError("backoff_max_s must be >= backoff_initial_s")
        if not self.cameras and not (self.redis_url and self.cameras_from_redis):
            raise ValueError(
                "no cameras: set EMO_WORKER_CAMERAS or EMO_WORKER_REDIS_URL with "
                "cameras_from_redis enabled"
            )
        return self
