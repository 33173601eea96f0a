"""Settings: one pydantic-settings object, read from the environment (and `.env` in development).

Secrets (database passwords, the session key, carrier credentials) only ever come from the
environment; nothing secret has a default that ships with the code.
"""

from __future__ import annotations

import secrets
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

REPO_ROOT = Path(__file__).resolve().parents[2]

#: The role the application connects as. It owns nothing and is not a superuser, so PostgreSQL
#: row-level security applies to every query it makes.
APP_ROLE = "depotline_app"


class SettingsError(Exception):
    """Raised with a message naming the setting that is wrong."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", env_prefix="")

    environment: Literal["development", "test", "production"] = "development"
    # URLs may carry passwords: kept out of repr() so they never reach a log line.
    #: Owner connection used by migrations. Empty means "start the embedded PostgreSQL".
    database_url: str | None = Field(default=None, repr=False)
    #: Connection the app uses. Empty means: DATABASE_URL with the user replaced by the app role.
    app_database_url: str | None = Field(default=None, repr=False)
    app_db_password: SecretStr | None = Field(default=None)
    #: Empty means "start the embedded Redis".
    redis_url: str | None = Field(default=None, repr=False)
    data_dir: Path = Field(default=REPO_ROOT / ".data")
    #: The address carriers reach Depotline at (webhooks, delivery reports).
    public_url: str = "http://127.0.0.1:8000"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    secret_key: SecretStr | None = Field(default=None)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["auto", "json", "console"] = "auto"
    db_pool_size: int = Field(default=10, ge=1, le=200)
    frontend_dir: Path = Field(default=REPO_ROOT / "frontend")
    default_locale: Literal["en", "zh_Hans", "zh_Hant"] = "en"

    @field_validator("database_url", "app_database_url")
    @classmethod
    def _postgres_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        try:
            url = make_url(value)
        except ArgumentError as exc:
            raise ValueError(f"not a database URL: {exc}") from exc
        if not url.drivername.startswith("postgresql"):
            raise ValueError("must be a postgresql:// URL")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        return value

    @property
    def owner_database_url(self) -> str:
        if not self.database_url:
            raise SettingsError(
                "DATABASE_URL is not set and the embedded PostgreSQL is not running"
            )
        return async_url(self.database_url)

    @property
    def app_url(self) -> str:
        """The URL the application connects with: as the unprivileged app role."""
        if self.app_database_url:
            return async_url(self.app_database_url)
        url = make_url(self.owner_database_url).set(username=APP_ROLE, password=None)
        if self.app_db_password is not None:
            url = url.set(password=self.app_db_password.get_secret_value())
        return url.render_as_string(hide_password=False)

    @property
    def required_redis_url(self) -> str:
        if not self.redis_url:
            raise SettingsError("REDIS_URL is not set and the embedded Redis is not running")
        return self.redis_url

    def session_secret(self) -> bytes:
        """The key that signs session cookies: from SECRET_KEY, or in development a key kept
        under the data directory so sessions survive a restart."""
        if self.secret_key is not None:
            key = self.secret_key.get_secret_value()
            if len(key) < 32:
                raise SettingsError("SECRET_KEY must be at least 32 characters")
            return key.encode()[:32]
        if self.environment == "production":
            raise SettingsError("SECRET_KEY must be set in production")
        path = self.data_dir / "secret_key"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_hex(16))
            path.chmod(0o600)
        return path.read_text().strip().encode()[:32]


def async_url(url: str) -> str:
    """Normalise any postgresql URL to the asyncpg driver."""
    parsed = make_url(url)
    return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


def load_settings(**overrides: object) -> Settings:
    """Build the settings, turning a validation error into one line per bad setting."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = ".".join(str(part) for part in error["loc"]).upper()
            problems.append(f"{name}: {error['msg']}")
        raise SettingsError("invalid setting " + "; ".join(problems)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
