"""Settings: defaults, MOCKSERVER_* variables, overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from mockserver.resources import bundled_fixtures, bundled_spec
from mockserver.settings import Settings, SettingsError


def test_defaults_are_safe() -> None:
    settings = Settings()
    assert settings.host == "127.0.0.1"
    assert settings.port == 8080
    assert settings.strict is True
    assert settings.api_keys is None
    assert settings.spec == bundled_spec() and settings.spec.exists()
    assert settings.fixtures == bundled_fixtures() and settings.fixtures.exists()
    assert settings.max_body_bytes == 1024 * 1024


def test_environment_variables_are_read() -> None:
    env = {
        "MOCKSERVER_HOST": "0.0.0.0",
        "MOCKSERVER_PORT": "9000",
        "MOCKSERVER_FIXTURES": "/tmp/seed.yaml",
        "MOCKSERVER_API_KEYS": "/tmp/keys.json",
        "MOCKSERVER_STRICT": "false",
        "MOCKSERVER_THREADS": "4",
        "OTHER_PORT": "1",
    }
    settings = Settings.from_env(env)
    assert (settings.host, settings.port, settings.threads, settings.strict) == ("0.0.0.0", 9000, 4, False)
    assert settings.fixtures == Path("/tmp/seed.yaml")
    assert settings.api_keys == Path("/tmp/keys.json")


def test_explicit_values_beat_the_environment_and_none_means_unset() -> None:
    settings = Settings.from_env({"MOCKSERVER_PORT": "9000", "MOCKSERVER_STRICT": "0"}, port=7000, strict=None)
    assert settings.port == 7000
    assert settings.strict is False


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MOCKSERVER_PORT": "eighty"}, "MOCKSERVER_PORT='eighty': expected an integer"),
        ({"MOCKSERVER_STRICT": "maybe"}, "MOCKSERVER_STRICT='maybe': expected one of true, false"),
        ({"MOCKSERVER_VALIDATION": "quick"}, "MOCKSERVER_VALIDATION='quick': expected one of fast, reference, shadow"),
        ({"MOCKSERVER_ERROR_RATE": "often"}, "MOCKSERVER_ERROR_RATE='often': expected a number"),
    ],
    ids=["port", "strict", "validation", "error-rate"],
)
def test_bad_values_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(env)


def test_strings_are_accepted_for_paths_and_options() -> None:
    settings = Settings(fixtures="x.json", validation="shadow", state="s.sqlite")  # type: ignore[arg-type]
    assert settings.fixtures == Path("x.json") and settings.state == Path("s.sqlite")
    assert settings.validation.value == "shadow"
    assert Settings.from_env({"MOCKSERVER_ERROR_RATE": "0.25", "MOCKSERVER_SEED": "3"}).error_rate == 0.25


SQLITE_HINT = "a SQLite file is given by its path, without a scheme (e.g. ./mock.db)"
KNOWN = "known schemes: postgresql:// and postgres:// (not supported yet)"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "postgresql://mock@127.0.0.1:5432/mock",
            f"MOCKSERVER_STATE='postgresql://mock@127.0.0.1:5432/mock': a state in PostgreSQL is not supported yet; "
            f"{SQLITE_HINT}",
        ),
        (
            "postgres://mock:hunter2@db/mock",
            "MOCKSERVER_STATE='postgres://mock:***@db/mock': a state in PostgreSQL is not supported yet; "
            f"{SQLITE_HINT}",
        ),
        (
            "postgresql:///mock?host=/run&password=hunter2",
            "MOCKSERVER_STATE='postgresql:///mock?host=/run&password=***': a state in PostgreSQL is not supported yet; "
            f"{SQLITE_HINT}",
        ),
        (
            "redis://cache:6379/0",
            f"MOCKSERVER_STATE='redis://cache:6379/0': unknown scheme 'redis'; {SQLITE_HINT}; {KNOWN}",
        ),
        (
            "sqlite:///tmp/mock.db",
            f"MOCKSERVER_STATE='sqlite:///tmp/mock.db': unknown scheme 'sqlite'; {SQLITE_HINT}; {KNOWN}",
        ),
        ("file:/tmp/mock.db", f"MOCKSERVER_STATE='file:/tmp/mock.db': unknown scheme 'file'; {SQLITE_HINT}; {KNOWN}"),
    ],
    ids=["postgresql", "postgres-password-masked", "password-parameter-masked", "redis", "sqlite-url", "file-url"],
)
def test_a_state_url_is_refused_never_taken_for_a_file_name(value: str, message: str) -> None:
    with pytest.raises(SettingsError) as refused:
        Settings.from_env({"MOCKSERVER_STATE": value})
    assert str(refused.value) == message
    assert "hunter2" not in str(refused.value)


def test_a_state_url_that_became_a_path_is_refused_too() -> None:
    # pathlib folds "//" into "/": what code that built a Path from a URL hands over.
    with pytest.raises(
        SettingsError, match=r"^state='postgresql:/mock@db/mock': a state in PostgreSQL is not supported"
    ):
        Settings(state=Path("postgresql://mock@db/mock"))


@pytest.mark.parametrize(
    "value", ["mock.db", "./state/mock.db", "/tmp/mock.db", "C:/mock.db", "odd:name.db"], ids=lambda v: v
)
def test_a_plain_path_stays_the_sqlite_file(value: str) -> None:
    assert Settings.from_env({"MOCKSERVER_STATE": value}).state == Path(value)
    assert Settings(state=value).state == Path(value)  # type: ignore[arg-type]
