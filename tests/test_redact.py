"""Credentials never reach output: the redaction helper, and the real CLI given URLs,
settings and keys that carry a password (issue 12, item 7)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from pg_support import OwnRedis, PgDatabase
from support import free_port
from tallyboard.redact import is_secret, redact, settings_problems
from tallyboard.settings import load_settings

SECRET = "s3cret-Pa55"


@pytest.mark.parametrize(("text", "want"), [
    ("postgresql://app:s3cret@db:5432/tally", "postgresql://app:***@db:5432/tally"),
    ("postgres://app:p@ss@db/tally", "postgres://app:***@db/tally"),  # '@' in the password
    ("redis://:s3cret@cache:6379/0", "redis://:***@cache:6379/0"),
    ("rediss://default:s3cret@[::1]:6380", "rediss://default:***@[::1]:6380"),
    ("http://bot:s3cret@127.0.0.1:8080/v1", "http://bot:***@127.0.0.1:8080/v1"),
    ("postgresql://db/tally?sslmode=require&password=s3cret",
     "postgresql://db/tally?sslmode=require&password=***"),
    ("host=db user=app password='s 3cret' port=5432", "host=db user=app password=*** port=5432"),
    ("the hot store (Redis at redis://u:s3cret@h:1/0) is unavailable: refused",
     "the hot store (Redis at redis://u:***@h:1/0) is unavailable: refused"),
    ("a 'postgresql://a:s3cret@h/d' and 'redis://:s3cret@r'",
     "a 'postgresql://a:***@h/d' and 'redis://:***@r'"),
    ("redis://?token=s3cret", "redis://?token=***"),
])
def test_redact_hides_passwords_and_keeps_the_rest(text: str, want: str) -> None:
    assert redact(text) == want


@pytest.mark.parametrize("text", [
    "postgresql://postgres@127.0.0.1:5432/tallyboard", "redis://127.0.0.1:6379/0",
    "sqlite:///var/lib/tallyboard/events.sqlite3", "tallyboard-data", "user@example.com",
    "http://[::1]:8080/v1/sum?metric=points&member=alice", "sslkey=/etc/ssl/client.key",
])
def test_redact_leaves_text_without_credentials_alone(text: str) -> None:
    assert redact(text) == text


def test_secret_setting_names() -> None:
    assert all(map(is_secret, ["key", "keys", "token", "password", "client_secret"]))
    assert not any(map(is_secret, ["log", "store", "host", "port", "rate_burst", "metric"]))


def test_settings_errors_never_show_a_secret(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(f'port = "eighty"\nlog = "postgresql://u:{SECRET}@db/x"\n'
                      f'tokn = "{SECRET}"\n[[keys]]\nkey = "{SECRET[:5]}"\n'
                      f'[discord]\ntoken = 12\nkey = ["{SECRET}"]\n')
    with pytest.raises(ValidationError) as caught:
        load_settings(config)
    assert SECRET[:5] not in str(caught.value)  # pydantic's own text hides every input
    shown = settings_problems(caught.value.errors())
    assert SECRET[:5] not in shown
    assert "keys.0.key: Value error, an API key needs at least 8 characters" in shown
    assert "tokn: Extra inputs are not permitted" in shown
    assert "port: Input should be a valid integer" in shown and "(got 'eighty')" in shown


# ---- the real CLI -------------------------------------------------------------------------

def cli(*args: str, env: dict[str, str] | None = None,
        timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """The CLI in a process of its own; wide, so rich never wraps a secret across lines."""
    return subprocess.run([sys.executable, "-m", "tallyboard.cli", *args], capture_output=True,
                          text=True, timeout=timeout,
                          env={**os.environ, "COLUMNS": "1000", **(env or {})})


def no_secret(got: subprocess.CompletedProcess[str], *secrets: str) -> str:
    """Stdout and stderr together, asserting no secret is in either."""
    both = got.stdout + got.stderr
    for secret in (SECRET, *secrets):
        assert secret not in both, both
    return both


@pytest.fixture
def pg_url(postgres: PgDatabase) -> str:
    """The test database with a password in its URL (trust auth ignores it)."""
    return postgres.url.replace("postgres@", f"postgres:{SECRET}@", 1)


@pytest.fixture
def own_redis() -> Iterator[OwnRedis]:
    server = OwnRedis(password=SECRET)
    server.start()
    yield server
    server.remove()


def test_rebuild_shows_the_log_and_hot_store_without_passwords(
        pg_url: str, own_redis: OwnRedis, tmp_path: Path) -> None:
    got = cli("rebuild", "--log", pg_url)
    assert got.returncode == 0, got.stderr
    assert "replayed" in no_secret(got)
    got = cli("rebuild", "--log", pg_url, "--store", own_redis.url)
    assert got.returncode == 0, got.stderr
    out = no_secret(got)
    assert f"hot store redis://:***@127.0.0.1:{own_redis.port}/0" in out
    assert "from postgresql://postgres:***@127.0.0.1" in out


def test_a_redis_startup_error_hides_the_password(pg_url: str, tmp_path: Path) -> None:
    store = f"redis://:{SECRET}@127.0.0.1:{free_port()}/0"  # nothing listens there
    got = cli("serve", "--port", str(free_port()), "--data", str(tmp_path / "d"), "--log",
              pg_url, "--store", store)
    assert got.returncode == 1
    assert "Redis at redis://:***@127.0.0.1" in no_secret(got)
    got = cli("serve", "--port", str(free_port()), "--data", str(tmp_path / "d"), "--log",
              pg_url, "--durability", "buffered", "--buffer", store)
    assert got.returncode == 1
    assert "unavailable" in no_secret(got)


def test_store_and_state_url_errors_hide_the_password(tmp_path: Path) -> None:
    got = cli("serve", "--data", str(tmp_path / "d"), "--log", f"mysql://u:{SECRET}@db/x")
    assert got.returncode == 1 and "Traceback" not in got.stderr
    assert "unsupported log URL 'mysql://u:***@db/x'" in no_secret(got)
    dead = f"postgresql://postgres:{SECRET}@127.0.0.1:{free_port()}/x"
    got = cli("rebuild", "--log", dead)
    assert got.returncode == 1 and "PostgreSQL" in no_secret(got)
    got = cli("migrate", "--log", dead)
    assert got.returncode == 1 and "PostgreSQL" in no_secret(got)
    got = cli("discord", "--data", str(tmp_path / "d"), "--state", f"mongodb://u:{SECRET}@h",
              env={"TALLYBOARD_DISCORD__TOKEN": "t0ken-Secret-value"})
    assert got.returncode == 1
    assert "mongodb://u:***@h" in no_secret(got, "t0ken-Secret-value")


@pytest.mark.parametrize("config", [
    f'[[keys]]\nkey = "{SECRET[:6]}"\nscopes = ["read"]\n',
    f'[[keys]]\nkey = "{SECRET}"\nscopes = ["root"]\n',
    f'apikey = "{SECRET}"\n',
    f'durability = "buffered"\nlog = "postgresql://u:{SECRET}@db/x"\n',
    f'store = "redis://:{SECRET}@cache:6379/0"\n',
    f'[discord]\ntoken = "{SECRET}"\nmetric = ""\n',
], ids=["short key", "bad scope", "unknown key", "buffered needs", "store needs", "discord"])
def test_invalid_settings_are_explained_without_secrets(tmp_path: Path, config: str) -> None:
    path = tmp_path / "tallyboard.toml"
    path.write_text(config)
    got = cli("serve", "--config", str(path), "--data", str(tmp_path / "d"))
    assert got.returncode == 1 and "invalid settings:" in got.stderr
    no_secret(got, SECRET[:6])


def test_keys_from_the_environment_are_not_echoed(tmp_path: Path) -> None:
    got = cli("serve", "--data", str(tmp_path / "d"),
              env={"TALLYBOARD_KEYS": f'[{{"key": "{SECRET[:6]}"}}]'})
    assert got.returncode == 1 and "keys.0.key" in got.stderr
    no_secret(got, SECRET[:6])
