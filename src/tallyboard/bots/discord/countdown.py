"""The countdown bot, kept compatible: ``count to n`` posts 1 … n one second apart in that
channel, ``stop`` ends it; one countdown per channel, any number of channels at once.

Tick k is due at ``started + k`` (absolute), so the interval never drifts; when Discord
rate-limits a send, discord.py waits and the next tick follows it, in order. Countdowns
are durable: each tick is marked in the bot state before it is sent, so after a kill -9
nothing is sent twice and the count resumes where the clock says (ticks whose time
passed while the bot was away are skipped, and the channel is told which).
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
        """Resume the countdowns a restart interrupted (sending needs no gateway)."""
        now = self.bot.clock()
        for c in await self.bot.ask(self.bot.state.countdowns):
            plan = resume(c, now)
            channel = self.bot.get_partial_messageable(int(c.channel))
            if plan.next_tick is None:
                await self.bot.ask(self.bot.state.end_countdown, c.channel)
                await _say(channel, f"The count to {c.target:,} ended while I was away.")
                continue
            if plan.skipped:
                first, last = plan.skipped[0], plan.skipped[-1]
                gap = str(first) if first == last else f"{first}–{last}"
                await _say(channel, f"Back after a restart: skipped {gap}, counting on.")
            self._start(c, plan.next_tick, new=False)
            log.info("countdown in channel %s resumed at %d/%d", c.channel, plan.next_tick,
                     c.target)

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
        self._start(c, 1, new=True)  # before any await: a second `count to` sees it
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
        await self.bot.ask(self.bot.state.end_countdown, channel)
        self.bot.metrics.command("stop", "ok")
        self.bot.metrics.cancelled.inc()
        await message.reply(f"Stopped at {run.tick:,}.", mention_author=False)

    def _start(self, c: Countdown, first: int, *, new: bool) -> None:
        run = self.running[c.channel] = _Running(c, first - 1)
        run.task = asyncio.create_task(self._run(run, first, new),
                                       name=f"countdown-{c.channel}")

    async def _run(self, run: _Running, first: int, new: bool) -> None:
        """Keep a `new` countdown, then tick until the target or a halt (a stop ends it in
        the state, a shutdown keeps it). A failure is kept and ends the count."""
        c = run.countdown
        try:
            if new:
                await self.bot.ask(self.bot.state.save_countdown, c)
            if not await self._tick(run, first):
                return
        except Exception as exc:  # kept in the bot state (tallyboard errors); the count ends
            await self.bot.report("general", exc, guild=c.guild, channel=c.channel,
                                  command="count")
        if self.running.get(c.channel) is run:
            del self.running[c.channel]
        await self.bot.ask(self.bot.state.end_countdown, c.channel)

    async def _tick(self, run: _Running, first: int) -> bool:
        """Send ticks on the absolute schedule; False when halted before the end."""
        c = run.countdown
        channel = self.bot.get_partial_messageable(int(c.channel))
        for tick in range(first, c.target + 1):
            delay = c.started + tick - self.bot.clock()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(run.halt.wait(), delay)
            if run.halt.is_set():
                return False
            await self.bot.ask(self.bot.state.mark_sent, c.channel, tick)  # never twice
            self.bot.metrics.lateness.observe(max(0.0, self.bot.clock() - c.started - tick))
            run.tick = tick
            await channel.send(str(tick))
        return True


async def _say(channel: discord.PartialMessageable, text: str) -> None:
    with contextlib.suppress(discord.HTTPException):
        await channel.send(text)


async def setup(bot: StatsBot) -> None:
    await bot.add_cog(Countdowns(bot))
