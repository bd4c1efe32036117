"""The bot state (countdowns, errors, guild settings) on SQLite and PostgreSQL: durable
across reopening, newest errors first, filters."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from pg_support import PgDatabase
from tallyboard.bots.state import (
    BotState,
    Countdown,
    GuildSettings,
    error_record,
    open_state,
)


@pytest.fixture(params=["sqlite", "postgres"])
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield str(tmp_path)
        return
    pg: PgDatabase = request.getfixturevalue("postgres")
    url = pg.url
    yield url
    with psycopg.connect(url, autocommit=True) as db:
        db.execute("DROP TABLE IF EXISTS bot_countdowns, bot_errors, bot_guilds")


def test_countdowns_survive_reopening(state_url: str) -> None:
    state = open_state(state_url)
    state.save_countdown(Countdown("c1", "g1", 10, 1000.5))
    state.save_countdown(Countdown("c2", None, 3, 1001.0))
    assert state.mark_sent(Countdown("c1", "g1", 10, 1000.5), 4)
    state.close()
    again = open_state(state_url)
    assert again.countdowns() == [Countdown("c1", "g1", 10, 1000.5, 4),
                                  Countdown("c2", None, 3, 1001.0, 0)]
    again.end_countdown(Countdown("c1", "g1", 10, 1000.5))
    old = Countdown("c2", None, 3, 1001.0)
    again.save_countdown(Countdown("c2", None, 7, 1002.0))  # a new count in that channel
    assert not again.mark_sent(old, 2)  # the old count's last steps touch not the new one
    again.end_countdown(old)
    assert again.countdowns() == [Countdown("c2", None, 7, 1002.0, 0)]
    again.close()


def test_errors_newest_first_with_filters(state_url: str) -> None:
    state = open_state(state_url)
    try:
        raise ValueError("boom")
    except ValueError as exc:
        first = state.add_error(error_record("command", exc, guild="g1", channel="c",
                                             command="top", at=100.0))
    second = state.add_error(error_record("general", RuntimeError("later"), at=200.0))
    assert second > first
    newest = state.errors()
    assert [e.id for e in newest] == [second, first]
    assert newest[1].error == "ValueError: boom"
    assert "raise ValueError" in newest[1].traceback
    assert (newest[1].guild, newest[1].channel, newest[1].command) == ("g1", "c", "top")
    assert [e.id for e in state.errors(kind="command")] == [first]
    assert [e.id for e in state.errors(guild="g1")] == [first]
    assert [e.id for e in state.errors(limit=1)] == [second]
    state.close()


def test_guild_settings_default_and_saved(state_url: str) -> None:
    state = open_state(state_url)
    assert state.guild_settings("g") == GuildSettings("g")
    state.save_guild_settings(GuildSettings("g", ("1", "2"), (), 30))
    state.save_guild_settings(GuildSettings("g", ("2",), ("9", "10"), 45))
    state.close()
    again = open_state(state_url)
    assert again.guild_settings("g") == GuildSettings("g", ("2",), ("9", "10"), 45)
    again.close()


def test_which_channels_count() -> None:
    everything = GuildSettings("g")
    assert everything.counts("v1", None) and everything.counts("v2", "cat")
    some = GuildSettings("g", tracked=("v1", "cat"), untracked=("v3",))
    assert some.counts("v1", None) and some.counts("v2", "cat")  # a tracked category
    assert not some.counts("v4", None) and not some.counts("v3", "cat")  # untracked wins
    but = GuildSettings("g", untracked=("v2", "cat2"))
    assert but.counts("v1", None) and not but.counts("v2", None)
    assert not but.counts("v5", "cat2")


def test_memory_state_and_bad_urls() -> None:
    state: BotState = open_state("memory://")
    state.save_countdown(Countdown("c", None, 1, 0.0))
    assert len(state.countdowns()) == 1
    state.close()
    with pytest.raises(ValueError, match="unsupported bot state URL"):
        open_state("redis://localhost")


def test_a_dropped_postgres_connection_is_opened_again(postgres: PgDatabase) -> None:
    state = open_state(postgres.url)
    try:
        pid = state._db.info.backend_pid  # the state's own connection ends (idle timeout)
        with psycopg.connect(postgres.url, autocommit=True) as db:
            db.execute("SELECT pg_terminate_backend(%s)", (pid,))
        state.save_countdown(Countdown("c", None, 3, 1.0))  # the first call after it
        assert [c.channel for c in state.countdowns()] == ["c"]
    finally:
        state.close()
        with psycopg.connect(postgres.url, autocommit=True) as db:
            db.execute("DROP TABLE IF EXISTS bot_countdowns, bot_errors, bot_guilds")


def test_unreachable_postgres_is_store_unavailable() -> None:
    from support import free_port
    from tallyboard.errors import StoreUnavailable

    with pytest.raises(StoreUnavailable):
        open_state(f"postgresql://postgres@127.0.0.1:{free_port()}/x")
