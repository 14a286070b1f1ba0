"""Settings of the embedded single-machine mode (``make run``), environment prefix ``EMO_RUN_``."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[1]


class LauncherSettings(BaseSettings):
    """What ``python -m launcher`` starts and where it keeps its state."""

    model_config = SettingsConfigDict(env_prefix="EMO_RUN_", env_file=".env", extra="ignore")

    host: str = Field(default="127.0.0.1", description="address the API and dashboard bind to")
    port: int = Field(default=8000, ge=1, le=65535)
    source: str | None = Field(
        default=None, description="camera: file path, webcam index, rtsp:// or http(s):// URL"
    )
    var_dir: Path = Field(default=REPO_ROOT / "var", description="SQLite file, demo clip, login")
    data_dir: Path = Field(
        default=REPO_ROOT.parent / "shared" / "data",
        description="shared face data; the demo clip uses its frames when present",
    )
    database_url: str | None = Field(
        default=None, description="Postgres URL; empty = SQLite under var_dir"
    )
    redis_url: str | None = Field(
        default=None, description="Redis URL; empty = in-process bus (no Redis needed)"
    )
    admin_username: str = "admin"
    admin_password: SecretStr | None = Field(
        default=None, description="empty = generated once and kept in var_dir/admin-login.txt"
    )
    fps: float = Field(default=2.0, gt=0.0, le=30.0, description="analysed frames per second")
