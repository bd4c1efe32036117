"""What a bot must not forget across a restart: running countdowns, the errors it met, and
per-guild settings — in SQLite (embedded, next to the event log) or PostgreSQL.

Every write is durable when the call returns (SQLite ``synchronous=FULL``; a PostgreSQL
commit), so a kill -9 loses nothing a call acknowledged. Calls are thread-safe: the bot
runs them off its event loop.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from ..stores.small_sql import SmallSQL, connector

ErrorKind = Literal["command", "general"]
STATE_FILE = "discord.sqlite3"

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS bot_countdowns (
        channel TEXT PRIMARY KEY, guild TEXT, target INTEGER NOT NULL,
        started DOUBLE PRECISION NOT NULL, sent INTEGER NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS bot_errors (
        id {serial} PRIMARY KEY, at DOUBLE PRECISION NOT NULL, kind TEXT NOT NULL,
        guild TEXT, channel TEXT, command TEXT, error TEXT NOT NULL,
        traceback TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS bot_guilds (
        guild TEXT PRIMARY KEY, tracked TEXT NOT NULL, untracked TEXT NOT NULL,
        streak_minutes INTEGER NOT NULL)""",
]


@dataclass(frozen=True)
class Countdown:
    """`count to target` in `channel`: tick k (1..target) is due at ``started + k``;
    `sent` is the last tick handed to Discord (0: none yet)."""

    channel: str
    guild: str | None
    target: int
    started: float
    sent: int = 0


@dataclass(frozen=True)
class BotError:
    """One failure, kept for `tallyboard errors` and ``GET /v1/bot/errors``."""

    at: float
    kind: ErrorKind
    error: str
    traceback: str
    guild: str | None = None
    channel: str | None = None
    command: str | None = None
    id: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "at": self.at, "kind": self.kind, "guild": self.guild,
                "channel": self.channel, "command": self.command, "error": self.error,
                "traceback": self.traceback}


@dataclass(frozen=True)
class GuildSettings:
    """A guild's bot settings: which voice channels count (those in `tracked`, channels
    or categories — all when it is empty — but none in `untracked`, nor the AFK channel)
    and the daily minutes that keep a streak going."""

    guild: str
    tracked: tuple[str, ...] = field(default=())
    untracked: tuple[str, ...] = field(default=())
    streak_minutes: int = 1

    def counts(self, channel: str, category: str | None) -> bool:
        """Whether time in `channel` (in `category`) counts."""
        mine = {channel} | ({category} if category else set())
        return (not self.tracked or not mine.isdisjoint(self.tracked)) \
            and mine.isdisjoint(self.untracked)


class BotState(SmallSQL):
    """Countdowns, errors and guild settings in one SQL database (SQLite or PostgreSQL)."""

    def __init__(self, connect: Callable[[], Any], placeholder: str, serial: str) -> None:
        super().__init__(connect, placeholder, serial, SCHEMA, "bot state")

    # ---- countdowns -------------------------------------------------------------------------
    def save_countdown(self, c: Countdown) -> None:
        """Start (or restart) the countdown of `c.channel`."""
        self._run("INSERT INTO bot_countdowns VALUES (?, ?, ?, ?, ?) ON CONFLICT (channel) "
                  "DO UPDATE SET guild = excluded.guild, target = excluded.target, "
                  "started = excluded.started, sent = excluded.sent",
                  (c.channel, c.guild, c.target, c.started, c.sent))

    def mark_sent(self, c: Countdown, tick: int) -> bool:
        """Tick `tick` of `c` is being sent: a restart will not send it again. False when
        `c` is no longer kept (stopped, or replaced by a newer count in its channel)."""
        changed = self._run("UPDATE bot_countdowns SET sent = ? WHERE channel = ? AND "
                            "started = ?", (tick, c.channel, c.started))
        return bool(changed[0][0])

    def end_countdown(self, c: Countdown) -> None:
        """Forget `c` — not a newer count started in its channel meanwhile."""
        self._run("DELETE FROM bot_countdowns WHERE channel = ? AND started = ?",
                  (c.channel, c.started))

    def countdowns(self) -> list[Countdown]:
        rows = self._run("SELECT channel, guild, target, started, sent FROM bot_countdowns "
                         "ORDER BY started")
        return [Countdown(*row) for row in rows]

    # ---- errors -----------------------------------------------------------------------------
    def add_error(self, e: BotError) -> int:
        """Keep `e`; its id."""
        rows = self._run("INSERT INTO bot_errors (at, kind, guild, channel, command, error, "
                         "traceback) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
                         (e.at, e.kind, e.guild, e.channel, e.command, e.error, e.traceback))
        return int(rows[0][0])

    def errors(self, *, limit: int = 50, kind: ErrorKind | None = None,
               guild: str | None = None) -> list[BotError]:
        """The newest errors first, optionally of one kind or guild."""
        where, args = [], []
        for column, value in (("kind", kind), ("guild", guild)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        sql = ("SELECT at, kind, error, traceback, guild, channel, command, id FROM bot_errors"
               + (" WHERE " + " AND ".join(where) if where else "")
               + " ORDER BY id DESC LIMIT ?")
        return [BotError(*row) for row in self._run(sql, [*args, limit])]

    # ---- guild settings ---------------------------------------------------------------------
    def guild_settings(self, guild: str) -> GuildSettings:
        rows = self._run("SELECT tracked, untracked, streak_minutes FROM bot_guilds "
                         "WHERE guild = ?", (guild,))
        if not rows:
            return GuildSettings(guild)
        tracked, untracked, minutes = rows[0]
        return GuildSettings(guild, _ids(tracked), _ids(untracked), minutes)

    def save_guild_settings(self, s: GuildSettings) -> None:
        self._run("INSERT INTO bot_guilds VALUES (?, ?, ?, ?) ON CONFLICT (guild) DO UPDATE "
                  "SET tracked = excluded.tracked, untracked = excluded.untracked, "
                  "streak_minutes = excluded.streak_minutes",
                  (s.guild, ",".join(s.tracked), ",".join(s.untracked), s.streak_minutes))


def _ids(text: str) -> tuple[str, ...]:
    return tuple(t for t in text.split(",") if t)


def open_state(url: str) -> BotState:
    """``sqlite:///path/file.sqlite3``, a directory (its ``discord.sqlite3``),
    ``postgresql://…`` or ``memory://`` (nothing kept; for tests)."""
    return BotState(*connector(url, STATE_FILE, "bot state"))


def error_record(kind: ErrorKind, exc: BaseException, *, guild: str | None = None,
                 channel: str | None = None, command: str | None = None,
                 at: float | None = None) -> BotError:
    """A BotError for `exc`: its type and message, and the last frames of its traceback."""
    import traceback

    frames = traceback.format_exception(type(exc), exc, exc.__traceback__)
    summary = "".join(frames[-6:])[-2000:]
    return BotError(time.time() if at is None else at, kind,
                    f"{type(exc).__name__}: {exc}"[:500], summary, guild, channel, command)
