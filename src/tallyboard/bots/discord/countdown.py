"""The countdown bot, kept compatible: ``count to n`` posts 1 … n one second apart in that
channel, ``stop`` ends it; one countdown per channel, any number of channels at once.

Tick k is due at ``started + k`` (absolute), so the interval never drifts; when Discord
rate-limits a send, discord.py waits and the next tick follows it, in order. Countdowns
are durable: each tick is marked in the bot state before it is sent, so after a kill -9
nothing is sent twice and the count resumes where the clock says (ticks whose time
passed more than a second ago while the bot was away are skipped, and the channel is
told which).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

import discord
from discord.ext import commands

from ..countdown import CountTo, Invalid, Stop, parse, resume
from ..state import Countdown
from .bot import StatsBot, strip_mention

log = logging.getLogger("tallyboard.discord.countdown")


@dataclass
class _Running:
    """A countdown being counted: `halt` ends its ticking (stop, shutdown) at the next
    safe point — never in the middle of a state write or a send."""

    countdown: Countdown
    tick: int  # the last tick handed to Discord
    halt: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


class Countdowns(commands.Cog):
    """``count to n`` and ``stop``."""

    def __init__(self, bot: StatsBot) -> None:
        self.bot = bot
        self.running: dict[str, _Running] = {}

    async def cog_load(self) -> None:
        """Resume the countdowns a restart interrupted; they tick on their own (sending
        needs no gateway), so the bot connects meanwhile."""
        for c in await self.bot.keep(self.bot.state.countdowns):
            self._start(c, new=False)

    async def cog_unload(self) -> None:
        """Shutdown: stop ticking but keep every countdown for the next start."""
        halted = list(self.running.values())
        for run in halted:
            run.halt.set()
        await asyncio.gather(*(run.task for run in halted if run.task is not None))

    async def handle(self, message: discord.Message) -> bool:
        """Act on `message` if it is a countdown command; whether it was one."""
        text = strip_mention(self.bot, message)
        command = None if text is None else parse(text)
        if command is None:
            return False
        channel = str(message.channel.id)
        if isinstance(command, Invalid):
            self.bot.metrics.command("count", "invalid")
            await message.reply(command.reason, mention_author=False)
        elif isinstance(command, Stop):
            await self._stop(message, channel)
        elif isinstance(command, CountTo):
            await self._count(message, channel, command.target)
        return True

    async def _count(self, message: discord.Message, channel: str, target: int) -> None:
        busy = self.running.get(channel)
        if busy is not None:
            self.bot.metrics.command("count", "wrong")
            await message.reply(f"I am already counting to {busy.countdown.target:,} here "
                                f"(at {busy.tick:,}); say `stop` first.",
                                mention_author=False)
            return
        c = Countdown(channel, str(message.guild.id) if message.guild else None, target,
                      self.bot.clock())
        self._start(c, new=True)  # before any await: a second `count to` sees it
        self.bot.metrics.command("count", "ok")
        self.bot.metrics.requested.observe(target)

    async def _stop(self, message: discord.Message, channel: str) -> None:
        run = self.running.pop(channel, None)
        if run is None:
            self.bot.metrics.command("stop", "wrong")
            await message.reply("Nothing is counting here: `stop` ends a `count to n`.",
                                mention_author=False)
            return
        run.halt.set()
        if run.task is not None:
            await run.task  # its state write or send in flight finishes first
        await self.bot.keep(self.bot.state.end_countdown, run.countdown)
        self.bot.metrics.command("stop", "ok")
        self.bot.metrics.cancelled.inc()
        await message.reply(f"Stopped at {run.tick:,}.", mention_author=False)

    def _start(self, c: Countdown, *, new: bool) -> None:
        run = self.running[c.channel] = _Running(c, c.sent)
        run.task = asyncio.create_task(self._run(run, new), name=f"countdown-{c.channel}")

    async def _run(self, run: _Running, new: bool) -> None:
        """Keep a `new` countdown, then tick until the target or a halt (a stop ends it in
        the state, a shutdown keeps it). A failure is kept, told, and ends the count."""
        c = run.countdown
        channel = self.bot.get_partial_messageable(int(c.channel))
        try:
            if new:
                await self.bot.keep(self.bot.state.save_countdown, c)
            if not await self._tick(run, channel, resumed=not new):
                return
        except Exception as exc:  # kept in the bot state (tallyboard errors); the count ends
            number = await self.bot.report("general", exc, guild=c.guild, channel=c.channel,
                                           command="count")
            await _say(channel, f"The count to {c.target:,} stopped: something went wrong "
                                f"(error #{number}).")
        if self.running.get(c.channel) is run:
            del self.running[c.channel]
        await self.bot.keep(self.bot.state.end_countdown, c)

    async def _tick(self, run: _Running, channel: discord.PartialMessageable, *,
                    resumed: bool) -> bool:
        """Send ticks on the absolute schedule; False when halted before the end. A
        resumed count skips the ticks due more than a second ago (the restart rule) until
        its first send, and says which it skipped, once: ticks the note itself made late
        (a slow or rate-limited send) are sent, late, rather than named in a second note.

        The schedule is anchored to the wall clock once (`started` is wall-clock time, so
        it survives a restart), then kept on the monotonic clock: a wall clock slewed or
        stepped by NTP meanwhile does not stretch or shrink the seconds."""
        c = run.countdown
        loop = asyncio.get_running_loop()
        anchor = loop.time() - (self.bot.clock() - c.started)  # `started`, monotonic

        def late(tick: int) -> float:
            return loop.time() - (anchor + tick)

        skipped = list(resume(c, self.bot.clock()).skipped) if resumed else []
        tick = c.sent + 1 + len(skipped)
        while tick <= c.target:
            if late(tick) < 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(run.halt.wait(), -late(tick))
            if run.halt.is_set():
                return False
            if resumed and late(tick) > 1:
                skipped.append(tick)  # the note before it took long (a rate limit)
                tick += 1
                continue
            if skipped:
                await _say(channel, f"Back after a restart: skipped {_span(skipped)}, "
                                    "counting on.")
                skipped.clear()
                resumed = False  # one note per restart: what the note made late is sent
                continue  # the note took time: look at this tick again
            resumed = False
            if not await self.bot.keep(self.bot.state.mark_sent, c, tick):  # never twice
                return True  # a newer count took the channel in the state
            self.bot.metrics.lateness.observe(max(0.0, late(tick)))
            run.tick = tick
            await channel.send(str(tick))
            tick += 1
        if skipped:
            await _say(channel, f"The count to {c.target:,} ended while I was away.")
        return True


def _span(ticks: list[int]) -> str:
    return str(ticks[0]) if len(ticks) == 1 else f"{ticks[0]}–{ticks[-1]}"


async def _say(channel: discord.PartialMessageable, text: str) -> None:
    with contextlib.suppress(discord.HTTPException):
        await channel.send(text)


async def setup(bot: StatsBot) -> None:
    await bot.add_cog(Countdowns(bot))
