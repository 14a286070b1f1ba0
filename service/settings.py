"""Service settings (environment variables prefixed ``EMO_``), validated at start-up."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    """One typed settings object for the API, ingest and retention processes."""

    model_config = SettingsConfigDict(env_prefix="EMO_", env_file=".env", extra="ignore")

    # --- storage -------------------------------------------------------------------------
    database_url: str = "postgresql+psycopg://postgres@127.0.0.1:5432/emotions"
    db_pool_size: int = Field(default=10, ge=1, le=200)
    db_connect_retries: int = Field(default=30, ge=1)
    db_retry_interval_s: float = Field(default=1.0, gt=0)
    migrate_on_start: bool = True

    # --- bus: "redis" (production, several processes) or "memory" (embedded, one process) ----
    bus: Literal["redis", "memory"] = "redis"
    redis_url: str = "redis://127.0.0.1:6379/0"
    live_channel: str = "emo:live"
    live_queue_size: int = Field(default=256, ge=1)

    # --- ingest ----------------------------------------------------------------------------
    ingest_in_api: bool = False
    ingest_group: str = "emo-ingest"
    ingest_consumer: str = ""  # empty: hostname-pid
    ingest_batch: int = Field(default=500, ge=1, le=10_000)
    ingest_block_ms: int = Field(default=100, ge=1)
    ingest_claim_idle_ms: int = Field(default=30_000, ge=0)
    ingest_dead_letter_stream: str = "emo:frames:dead"
    ingest_metrics_port: int = Field(default=0, ge=0, le=65535)  # 0: no separate endpoint

    # --- API -------------------------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    workers: int = Field(default=1, ge=1, le=64, description="uvicorn worker processes")
    max_body_bytes: int = Field(default=1 << 20, ge=1024)
    token_ttl_hours: float = Field(default=12.0, gt=0)
    login_max_failures: int = Field(default=5, ge=1)
    login_window_s: int = Field(default=300, ge=1)
    k_anonymity: int = Field(default=5, ge=1, description="aggregate_only hides fewer faces")
    max_timeline_range_days: int = Field(default=2, ge=1)
    max_history_range_days: int = Field(default=366, ge=1)
    max_buckets: int = Field(default=10_000, ge=10)
    history_cache_s: float = Field(
        default=2.0, ge=0, description="timeline results are shared this long (0: off)"
    )

    # --- jobs and bootstrap ----------------------------------------------------------------
    retention_days: int = Field(default=30, ge=1)
    bootstrap_admin_username: str | None = None
    bootstrap_admin_password: SecretStr | None = None

    @field_validator("database_url")
    @classmethod
    def _psycopg3(cls, value: str) -> str:
        """``postgresql://`` means psycopg 3 here (the only Postgres driver installed)."""
        for prefix in ("postgresql://", "postgres://"):
            if value.startswith(prefix):
                return "postgresql+psycopg://" + value[len(prefix) :]
        return value

    @model_validator(mode="after")
    def _bootstrap_pair(self) -> ServiceSettings:
        if self.bootstrap_admin_username is not None and self.bootstrap_admin_password is None:
            raise ValueError(
                "EMO_BOOTSTRAP_ADMIN_USERNAME is set but EMO_BOOTSTRAP_ADMIN_PASSWORD is not"
            )
        return self

    @property
    def is_sqlite(self) -> bool:
        """True for the embedded single-machine mode."""
        return self.database_url.startswith("sqlite")
