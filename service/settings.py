"""Service settings (environment variables prefixed ``EMO_``), validated at start-up."""

from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    """One typed settings object for the API, ingest and retention processes."""

    model_config = SettingsConfigDict(env_prefix="EMO_", env_file=".env", extra="ignore")

    database_url: str = "postgresql+psycopg://postgres@127.0.0.1:5432/emotions"
    redis_url: str = "redis://127.0.0.1:6379/0"
