"""Voice tracking: guild = space, voice channel = room, user id = member.

A move is a leave and a join at the same second; bots and the AFK channel never count;
a guild may track only some channels or categories. On every (re)connect each guild
arrives with its current voice states, and one snapshot per room makes tallyboard agree
with them: restarts and gateway drops lose nothing and count nothing twice (whoever left
while the bot was away is counted until the bot is back: Discord does not say when).

Presence writes go through one queue in gateway order (a leave must follow its join);
whatever queued up while a write was in flight goes in the next one. While tallyboard is
unavailable or rate-limits the bot, writes wait and are tried again, in order; a write it
refuses outright is kept as an error and the guild is reconciled, so the bot and
tallyboard agree again.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import discord
from discord.ext import commands

from ...errors import TallyboardError
from ..state import GuildSettings
from .bot import StatsBot

log = logging.getLogger("tallyboard.discord.voice")
Op = dict[str, Any]
R = TypeVar("R")
MAX_PAUSE = 30.0  # seconds between tries while tallyboard is unavailable


def room_of(channel: Any, guild: discord.Guild, settings: GuildSettings) -> str | None:
    """The room `channel` counts as, or None: not a voice channel, the AFK channel, or
    not counted by the guild's settings (tracked and untracked channels, categories)."""
    if not isinstance(channel, discord.VoiceChannel | discord.StageChannel):
        return None
    if guild.afk_channel is not None and channel.id == guild.afk_channel.id:
        return None
    category = str(channel.category_id) if channel.category_id else None
    return str(channel.id) if settings.counts(str(channel.id), category) else None


class VoiceTracker(commands.Cog):
    """Joins, leaves, moves and reconnects, as tallyboard presence."""

    def __init__(self, bot: StatsBot) -> None:
        self.bot = bot
        self.where: dict[str, dict[str, str]] = {}  # guild -> member -> room counted
        self._queue: asyncio.Queue[tuple[list[Op], asyncio.Future[float]]] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        self._last_ts: dict[str, float] = {}  # per guild: presence never goes back in time
        self._resyncs: dict[str, asyncio.Task[None]] = {}  # reconciles after a refusal
        self._closed = False
        bot.metrics.track(lambda: sum(len(w) for w in self.where.values()),
                          lambda: _running(bot))

    async def cog_load(self) -> None:
        self._writer = asyncio.create_task(self._write_forever(), name="presence-writer")

    async def cog_unload(self) -> None:
        """Shutdown: write what is queued, for up to 10 s (sessions stay open through a
        restart; the reconcile on return settles what is not written), then stop."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), 10)
        self._closed = True
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
        while not self._queue.empty():  # nobody waits forever on a write never made
            _, done = self._queue.get_nowait()
            if not done.done():
                done.set_result(0.0)

    # ---- gateway events ---------------------------------------------------------------------
    @commands.Cog.listener()
    async def on_voice_state_update(self, member: discord.Member, before: discord.VoiceState,
                                    after: discord.VoiceState) -> None:
        """Where `member` is now (discord.py's cache), against where the bot last counted
        them. Not `after`: discord.py updates that object in place, so in a burst a
        handler may see a later state than its own event's (coalesced moves then show as
        one move, never as a leave without its join)."""
        if member.bot:
            return
        started = time.perf_counter()
        guild = member.guild
        space, who = str(guild.id), str(member.id)
        settings = await self.bot.guild_settings(space)
        channel = member.voice.channel if member.voice is not None else None
        new = room_of(channel, guild, settings)
        where = self.where.setdefault(space, {})
        old = where.get(who)
        if old == new:
            return  # mute, deafen, stream and video changes, or a move already counted
        if new is None:
            del where[who]
        else:
            where[who] = new
        ts = self._now(space)
        ops = [{"space": space, "type": kind, "room": room, "member": who, "ts": ts}
               for kind, room in (("leave", old), ("join", new)) if room is not None]
        stored = await self._write(ops)
        took = time.perf_counter() - started
        self.bot.metrics.voice_durable.observe(took)
        self.bot.metrics.voice_update.observe(took - stored)

    def _now(self, space: str) -> float:
        """The clock, never behind the guild's last op (a clock stepped back would make
        tallyboard refuse the op as late)."""
        ts = self._last_ts[space] = max(self.bot.clock(), self._last_ts.get(space, 0.0))
        return ts

    @commands.Cog.listener()
    async def on_guild_available(self, guild: discord.Guild) -> None:
        await self.reconcile(guild)

    @commands.Cog.listener()
    async def on_guild_join(self, guild: discord.Guild) -> None:
        await self.reconcile(guild)

    @commands.Cog.listener()
    async def on_guild_remove(self, guild: discord.Guild) -> None:
        """Removed from a guild: whoever was counted there leaves now."""
        await self.reconcile(guild, gone=True)

    # ---- agreeing with Discord --------------------------------------------------------------
    async def reconcile(self, guild: discord.Guild, *, gone: bool = False) -> None:
        """One snapshot per room, so tallyboard's presence matches the guild's voice
        states now (nobody, when the bot left the guild: `gone`); rooms tallyboard holds
        that Discord does not are emptied. Tried again while tallyboard (or the bot
        state) is unavailable."""
        await _until_done(f"reconcile of guild {guild.id}", lambda: self._reconcile(guild, gone))

    async def _reconcile(self, guild: discord.Guild, gone: bool) -> None:
        """The voice states are read after the last await and queued at once, so no
        update handled meanwhile is undone by a stale view."""
        space = str(guild.id)
        settings = await self.bot.guild_settings(space)
        known = {r["room"] for r in await self.bot.ask(self.bot.tally.rooms, space=space)}
        voice: dict[str, list[str]] = {}
        for channel in [] if gone else [*guild.voice_channels, *guild.stage_channels]:
            room = room_of(channel, guild, settings)
            if room is not None:
                voice[room] = [str(uid) for uid in channel.voice_states
                               if not _is_bot(guild, uid)]
        ts = self._now(space)
        ops = [{"space": space, "type": "snapshot", "room": room, "members": members,
                "ts": ts} for room, members in sorted(voice.items()) if members or room in known]
        ops += [{"space": space, "type": "snapshot", "room": room, "members": [], "ts": ts}
                for room in sorted(known - set(voice))]
        self.where[space] = {m: room for room, members in voice.items() for m in members}
        if ops:
            await self._write(ops)
        log.info("guild %s reconciled: %d members in %d voice channels", space,
                 sum(len(m) for m in voice.values()), sum(1 for m in voice.values() if m))

    # ---- the writer -------------------------------------------------------------------------
    async def _write(self, ops: list[Op]) -> float:
        """Queue `ops` and wait until they are durable; the seconds the durable write
        itself took (tallyboard's share of the wait, not the bot's)."""
        if self._closed:
            return 0.0  # shutting down: the reconcile on the next start covers it
        done: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((ops, done))
        return await done

    async def _write_forever(self) -> None:
        while True:
            jobs = [await self._queue.get()]
            while not self._queue.empty():
                jobs.append(self._queue.get_nowait())
            stored = await self._write_jobs([ops for ops, _ in jobs])
            for _, done in jobs:
                if not done.done():
                    done.set_result(stored)
                self._queue.task_done()

    async def _write_jobs(self, jobs: list[list[Op]]) -> float:
        """Write every job in one call; if tallyboard refuses it, write them one by one,
        so one bad job does not sink the others. Seconds spent in the writes."""
        try:
            return await self._write_until_done([op for ops in jobs for op in ops])
        except Exception as exc:  # refused: find the culprit below
            if len(jobs) == 1:
                await self._refused(jobs[0], exc)
                return 0.0
        stored = 0.0
        for ops in jobs:
            try:
                stored += await self._write_until_done(ops)
            except Exception as exc:  # kept in the bot state; the writer goes on
                await self._refused(ops, exc)
        return stored

    async def _write_until_done(self, ops: list[Op]) -> float:
        """One presence call, tried again while tallyboard is unavailable or rate-limits
        (later updates queue up behind, in order)."""
        return await _until_done(
            "presence write", lambda: self.bot.ask(_timed, self.bot.tally.presence, ops))

    async def _refused(self, ops: list[Op], exc: Exception) -> None:
        """Tallyboard refused `ops` for good: keep the error, and reconcile the guild so
        tallyboard and the bot agree again (unless `ops` were a reconcile's own)."""
        space = ops[0]["space"]
        await self.bot.report("general", exc, guild=space, command="voice")
        guild = self.bot.get_guild(int(space))
        if guild is None or any(op["type"] == "snapshot" for op in ops) \
                or space in self._resyncs:
            return
        task = asyncio.create_task(self.reconcile(guild), name=f"reconcile-{space}")
        self._resyncs[space] = task
        task.add_done_callback(lambda _: self._resyncs.pop(space, None))


async def _until_done(what: str, attempt: Callable[[], Awaitable[R]]) -> R:
    """`attempt()`, tried again while tallyboard is unavailable or rate-limits the bot:
    each pause is at least what the server asked (Retry-After), backing off to at most
    MAX_PAUSE."""
    for tries in itertools.count():
        try:
            return await attempt()
        except TallyboardError as exc:
            if not exc.transient:
                raise
            pause = min(MAX_PAUSE, max(float(getattr(exc, "retry_after", 1)),
                                       0.25 * 2 ** tries))
            log.warning("%s: tallyboard unavailable, trying again in %.1fs: %s", what, pause,
                        exc)
            await asyncio.sleep(pause)
    raise AssertionError("unreachable")


def _timed(write: Callable[[list[Op]], object], ops: list[Op]) -> float:
    """`write(ops)` (in a worker thread); how long it took."""
    started = time.perf_counter()
    write(ops)
    return time.perf_counter() - started


def _is_bot(guild: discord.Guild, user_id: int) -> bool:
    member = guild.get_member(user_id)
    return member is not None and member.bot


def _running(bot: StatsBot) -> float:
    countdowns = bot.get_cog("Countdowns")
    return float(len(getattr(countdowns, "running", ())))


async def setup(bot: StatsBot) -> None:
    await bot.add_cog(VoiceTracker(bot))
