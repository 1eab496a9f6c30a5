"""Configuration from environment variables, with the same names in every service (prefix AIDTRAIL_)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent
DEV_JWT_SECRET = "aidtrail-development-secret-change-me-0123456789"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AIDTRAIL_", extra="ignore")

    service: str = Field(default="pledge", description="Which service this process runs.")
    home: Path = Field(default=REPO_ROOT / ".aidtrail", description="Runtime directory: databases, broker data.")
    database_url: str | None = Field(
        default=None,
        description=(
            "SQLAlchemy async URL; SQLite file by default. PostgreSQL on a loopback host is reached without TLS "
            "unless the URL names ssl= or sslmode= (or PGSSLMODE is set); other hosts keep asyncpg's default."
        ),
    )
    kafka_bootstrap: str = "127.0.0.1:9092"
    kafka_security_protocol: str = "PLAINTEXT"
    kafka_sasl_mechanism: str | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: str | None = None
    kafka_ssl_cafile: str | None = None
    topic_partitions: int = Field(default=6, ge=1, le=1000)
    topic_replication: int = Field(default=1, ge=1, le=5)
    topic_prefix: str = "aidtrail"
    jwt_secret: str = DEV_JWT_SECRET
    jwt_previous_secrets: list[str] = Field(default_factory=list, description="Still accepted, for key rotation.")
    jwt_audience: str = "aidtrail"
    jwt_issuer: str = "aidtrail"
    log_level: str = "INFO"
    migrate_on_start: bool = True
    relay_batch_size: int = Field(default=500, ge=1)
    relay_poll_seconds: float = Field(default=1.0, gt=0)
    consumer_batch_size: int = Field(default=500, ge=1)

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        self.home.mkdir(parents=True, exist_ok=True)
        return f"sqlite+aiosqlite:///{self.home / f'{self.service}.db'}"

    @property
    def batch_topic(self) -> str:
        return f"{self.topic_prefix}.batch-events"

    @property
    def reference_topic(self) -> str:
        return f"{self.topic_prefix}.reference-events"

    @property
    def dead_letter_topic(self) -> str:
        return f"{self.topic_prefix}.dead-letter"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
