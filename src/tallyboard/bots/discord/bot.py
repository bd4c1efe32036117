"""The Discord bot: a discord.py client whose features are cogs, one per file.

It is handed three things: the tallyboard it reports to (the embedded engine, or a server
by URL — same methods), the bot state (countdowns, errors, guild settings) and its
metrics. Every blocking call runs in a worker thread so the gateway heartbeat and the
countdown ticks never wait on it: tallyboard calls on the default pool (`ask`), state
calls on a thread of their own (`keep`), in order, so a slow or hung server cannot hold
up a countdown's durable marks.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sys
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar, cast

import discord
import yarl
from discord.ext import commands
from discord.gateway import DiscordWebSocket

from ...client import RemoteTallyboard
from ...core.config import FIELDS, MetricConfig
from ...engine import Tallyboard
from ...errors import StoreUnavailable
from ..state import BotState, ErrorKind, GuildSettings, error_record
from .telemetry import BotMetrics

log = logging.getLogger("tallyboard.discord")
T = TypeVar("T")
Tally = Tallyboard | RemoteTallyboard

EXTENSIONS = [f"tallyboard.bots.discord.{name}"
              for name in ("failures", "voice", "stats", "admin", "countdown")]


def intents() -> discord.Intents:
    """Guilds (channels, AFK channel), voice states (members in voice are cached from
    them: no privileged members intent), and messages with their content (the plain-text
    commands; message content is privileged: enable it in the developer portal)."""
    wanted = discord.Intents.none()
    wanted.guilds = wanted.voice_states = True
    wanted.guild_messages = wanted.dm_messages = wanted.message_content = True
    return wanted


def hybrid(**options: Any) -> Callable[[Callable[..., Awaitable[None]]], Any]:
    """`commands.hybrid_command` (a slash command that also works as text), typed so mypy
    accepts a cog method (discord.py's overloads infer Never for one)."""
    return cast(Callable[[Callable[..., Awaitable[None]]], Any],
                commands.hybrid_command(**options))


def _prefix(bot: commands.Bot, message: discord.Message) -> list[str]:
    """Text commands answer a mention anywhere, and anything in a DM."""
    mentioned = commands.when_mentioned(bot, message)
    return mentioned if message.guild is not None else [*mentioned, ""]


class StatsBot(commands.Bot):
    """Voice-time tracking, leaderboards and stats, settings and countdowns."""

    def __init__(self, tally: Tally, state: BotState, metrics: BotMetrics, *,
                 metric: str = "presence_seconds", sync_commands: bool = True,
                 clock: Callable[[], float] = time.time) -> None:
        # The bot never joins voice: no warning about voice libraries it does not need.
        discord.VoiceClient.warn_nacl = discord.VoiceClient.warn_dave = False
        super().__init__(command_prefix=_prefix, intents=intents(), help_command=None,
                         allowed_mentions=discord.AllowedMentions.none())
        self.tally = tally
        self.state = state
        self.metrics = metrics
        self.metric = metric
        self.clock = clock
        self.sync_commands = sync_commands
        self._state_thread = ThreadPoolExecutor(1, thread_name_prefix="tallyboard-state")
        self._connections = 0
        self._settings: dict[str, GuildSettings] = {}

    async def setup_hook(self) -> None:
        """After login, before the gateway: ask the REST API where the gateway is, as
        Discord recommends (discord.py would dial its built-in address; a REST proxy or
        the test stand-in names another), then load the cogs and sync the commands.
        Safe to run again: a login that failed part way is retried whole."""
        _, gateway, _ = await self.http.get_bot_gateway()
        DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway)
        for extension in EXTENSIONS:
            if extension not in self.extensions:
                await self.load_extension(extension)
        if self.sync_commands:
            synced = await self.tree.sync()
            log.info("slash commands synced: %s", ", ".join(c.name for c in synced))

    async def ask(self, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`call(*args, **kwargs)` in a worker thread (tallyboard calls, drawing)."""
        return await asyncio.to_thread(functools.partial(call, *args, **kwargs))

    async def keep(self, call: Callable[..., T], *args: Any) -> T:
        """A bot-state call, on the state's own thread: in the order they are made."""
        return await asyncio.get_running_loop().run_in_executor(
            self._state_thread, functools.partial(call, *args))

    async def close(self) -> None:
        await super().close()
        self._state_thread.shutdown(wait=True)

    async def guild_settings(self, guild: str) -> GuildSettings:
        """A guild's settings, read from the state once and kept (admin changes write
        through `save_guild_settings`)."""
        found = self._settings.get(guild)
        if found is None:
            found = self._settings[guild] = await self.keep(self.state.guild_settings, guild)
        return found

    async def save_guild_settings(self, settings: GuildSettings) -> None:
        await self.keep(self.state.save_guild_settings, settings)
        self._settings[settings.guild] = settings

    async def metric_config(self, space: str) -> MetricConfig:
        """The settings (calendar) of the guild's presence metric; defaults before the
        first join creates it."""
        for info in await self.ask(self.tally.metrics, space=space):
            if info["metric"] == self.metric:
                return MetricConfig.from_dict({k: info[k] for k in FIELDS})
        return MetricConfig()

    async def report(self, kind: ErrorKind, exc: BaseException, *, guild: str | None = None,
                     channel: str | None = None, command: str | None = None) -> int:
        """Keep `exc` in the bot state (and the log); its error number (0 if the state
        itself is unavailable: the log still has it)."""
        log.error("%s error in %s (guild %s, channel %s)", kind, command, guild, channel,
                  exc_info=exc)
        self.metrics.errors.labels(kind).inc()
        try:
            return await self.keep(self.state.add_error, error_record(
                kind, exc, guild=guild, channel=channel, command=command, at=self.clock()))
        except StoreUnavailable:
            return 0

    async def on_error(self, event_method: str, /, *args: Any, **kwargs: Any) -> None:
        """An exception in any event handler: kept as a general error."""
        exc = sys.exc_info()[1]
        if exc is not None:
            await self.report("general", exc, command=event_method)

    async def on_connect(self) -> None:
        self._connections += 1
        if self._connections > 1:
            self.metrics.reconnects.inc()

    async def on_resumed(self) -> None:
        self.metrics.reconnects.inc()

    async def on_message(self, message: discord.Message) -> None:
        """Countdown words first (plain text, as the countdown bot had them), then text
        commands (after a mention, or in a DM)."""
        if message.author.bot:
            return
        countdown = self.get_cog("Countdowns")
        if countdown is not None and await countdown.handle(message):  # type: ignore[attr-defined]
            return
        await self.process_commands(message)


def strip_mention(bot: commands.Bot, message: discord.Message) -> str | None:
    """The message text without a leading mention of the bot; None when the message
    is not addressed to the bot (a guild message mentioning someone else first)."""
    text = message.content.strip()
    assert bot.user is not None
    for mention in (f"<@{bot.user.id}>", f"<@!{bot.user.id}>"):
        if text.startswith(mention):
            return text[len(mention):].strip()
    return None if text.startswith("<@") else text
