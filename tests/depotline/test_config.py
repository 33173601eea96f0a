"""Settings: a bad value stops start-up with a message naming the setting."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from depotline.cli import main
from depotline.config import APP_ROLE, SettingsError, load_settings


def test_bad_database_url_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "mysql://root@localhost/db")
    with pytest.raises(SettingsError, match=r"DATABASE_URL: .*postgresql"):
        load_settings()


def test_bad_port_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "99999")
    with pytest.raises(SettingsError, match="PORT"):
        load_settings()


def test_cli_reports_the_bad_setting_instead_of_a_traceback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REDIS_URL", "http://localhost:6379")
    result = CliRunner().invoke(main, ["migrate"])
    assert result.exit_code == 1
    assert "REDIS_URL" in result.output and "redis://" in result.output
    assert "Traceback" not in result.output


def test_commands_without_servers_say_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    result = CliRunner().invoke(main, ["seed-demo"])
    assert result.exit_code == 1
    assert "DATABASE_URL is not set" in result.output


def test_app_connects_as_the_app_role_not_the_owner(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres:ownerpw@db.internal:5432/depotline")
    monkeypatch.setenv("APP_DB_PASSWORD", "apppw")
    settings = load_settings()
    assert settings.app_url == f"postgresql+asyncpg://{APP_ROLE}:apppw@db.internal:5432/depotline"
    assert "ownerpw" not in repr(settings) and "apppw" not in repr(settings)


def test_short_secret_key_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECRET_KEY", "short")
    with pytest.raises(SettingsError, match="SECRET_KEY"):
        load_settings().session_secret()


def test_help_explains_every_command() -> None:
    result = CliRunner().invoke(main, ["--help"])
    for command in ("run", "serve", "worker", "migrate", "seed-demo"):
        assert command in result.output
