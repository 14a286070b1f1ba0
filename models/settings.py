"""Typed settings of the offline jobs (the only place that reads the environment)."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[1]


class ModelsSettings(BaseSettings):
    """Where the shared data, caches and run outputs live.

    ``EMO_DATA_DIR`` points at the shared data folder (``learning-emotions/``, ``fer2013/``);
    ``EMO_CACHE_DIR`` holds decoded-image caches (never committed).
    """

    model_config = SettingsConfigDict(env_prefix="EMO_", extra="ignore")

    data_dir: Path = REPO_ROOT.parent / "shared" / "data"
    cache_dir: Path = REPO_ROOT / "var" / "cache"
    runs_dir: Path = REPO_ROOT / "runs"
    weights_dir: Path = REPO_ROOT / "models" / "weights"
    torch_threads: int = 0  # 0 = leave torch's default

    @property
    def learning_emotions_dir(self) -> Path:
        """The six-class face-crop set (a manifest.csv directory)."""
        return self.data_dir / "learning-emotions"

    @property
    def fer2013_dir(self) -> Path:
        """FER2013 npz files for pre-training."""
        return self.data_dir / "fer2013"
