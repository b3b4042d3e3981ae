"""Settings: defaults, MOCKSERVER_* variables, overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from mockserver.resources import bundled_fixtures, bundled_spec
from mockserver.settings import Settings, SettingsError, masked


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
KNOWN = "known schemes: postgresql:// and postgres://"


@pytest.mark.parametrize(
    "value",
    ["postgresql://mock@127.0.0.1:5432/mock", "postgres://mock:hunter2@db/mock", "postgresql:///mock?host=/run"],
    ids=["postgresql", "postgres", "socket"],
)
def test_a_postgresql_url_is_the_state_url_never_a_file(value: str) -> None:
    settings = Settings.from_env({"MOCKSERVER_STATE": value})
    assert (settings.state, settings.state_url) == (None, value)
    assert Settings(state=value).state_url == value  # type: ignore[arg-type]


def test_a_state_given_explicitly_replaces_the_variables_file_or_url() -> None:
    env = {"MOCKSERVER_STATE": "postgresql://mock@db/mock"}
    assert Settings.from_env(env, state=Path("mock.db")) == Settings(state=Path("mock.db"))
    assert Settings.from_env({"MOCKSERVER_STATE": "mock.db"}, state="postgres://db/m").state_url == "postgres://db/m"
    with pytest.raises(SettingsError, match="state and state_url name two different states"):
        Settings(state=Path("mock.db"), state_url="postgresql://db/mock")


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://mock:hunter2@db:5432/mock", "postgresql://mock:***@db:5432/mock"),
        ("postgres://:hunter2@db/mock", "postgres://:***@db/mock"),
        (
            "postgresql:///mock?host=/run&password=hunter2&sslmode=off",
            "postgresql:///mock?host=/run&password=***&sslmode=off",
        ),
        ("postgresql://mock@db/mock", "postgresql://mock@db/mock"),
    ],
    ids=["user-password", "password-only", "parameter", "none"],
)
def test_where_the_state_is_shows_no_password(url: str, shown: str) -> None:
    assert masked(url) == shown
    assert Settings(state_url=url).state_shown == shown
    assert "hunter2" not in repr(Settings(state_url=url))
    assert "hunter2" not in repr(shown)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "redis://cache:6379/0",
            f"MOCKSERVER_STATE='redis://cache:6379/0': unknown scheme 'redis'; {SQLITE_HINT}; {KNOWN}",
        ),
        (
            "redis://user:hunter2@cache:6379/0",
            f"MOCKSERVER_STATE='redis://user:***@cache:6379/0': unknown scheme 'redis'; {SQLITE_HINT}; {KNOWN}",
        ),
        (
            "sqlite:///tmp/mock.db",
            f"MOCKSERVER_STATE='sqlite:///tmp/mock.db': unknown scheme 'sqlite'; {SQLITE_HINT}; {KNOWN}",
        ),
        ("file:/tmp/mock.db", f"MOCKSERVER_STATE='file:/tmp/mock.db': unknown scheme 'file'; {SQLITE_HINT}; {KNOWN}"),
        (
            "postgresql:/mock:hunter2@db/mock",
            "MOCKSERVER_STATE='postgresql:/mock:***@db/mock': not a URL; give a PostgreSQL state as "
            "postgresql://USER@HOST:PORT/DATABASE",
        ),
    ],
    ids=["redis", "redis-password-masked", "sqlite-url", "file-url", "one-slash"],
)
def test_a_state_url_of_another_scheme_is_refused_never_taken_for_a_file_name(value: str, message: str) -> None:
    with pytest.raises(SettingsError) as refused:
        Settings.from_env({"MOCKSERVER_STATE": value})
    assert str(refused.value) == message
    assert "hunter2" not in str(refused.value)


def test_a_state_url_that_became_a_path_is_refused() -> None:
    # pathlib folds "//" into "/": what code that built a Path from a URL hands over is no longer the URL.
    with pytest.raises(SettingsError, match=r"^state='postgresql:/mock@db/mock': not a URL; give a PostgreSQL"):
        Settings(state=Path("postgresql://mock@db/mock"))


def test_a_state_url_must_be_postgresql() -> None:
    with pytest.raises(SettingsError, match=r"^state_url='redis://cache/0': unknown scheme 'redis'"):
        Settings(state_url="redis://cache/0")


def test_workers_are_one_or_more_and_an_instance_is_a_name() -> None:
    settings = Settings.from_env({"MOCKSERVER_WORKERS": "3", "MOCKSERVER_INSTANCE": "eu-1"})
    assert (settings.workers, settings.instance) == (3, "eu-1")
    assert (Settings().workers, Settings().instance) == (1, None)
    with pytest.raises(SettingsError, match="workers: expected 1 or more, got 0"):
        Settings.from_env({"MOCKSERVER_WORKERS": "0"})


@pytest.mark.parametrize(
    "value", ["mock.db", "./state/mock.db", "/tmp/mock.db", "C:/mock.db", "odd:name.db"], ids=lambda v: v
)
def test_a_plain_path_stays_the_sqlite_file(value: str) -> None:
    assert Settings.from_env({"MOCKSERVER_STATE": value}).state == Path(value)
    assert Settings(state=value).state == Path(value)  # type: ignore[arg-type]
