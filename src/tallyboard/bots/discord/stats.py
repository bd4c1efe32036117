"""/top, /stats and /streak — also as text after a mention or in a DM (hybrid commands).

Every number comes from tallyboard's presence metric of the guild, so it is exact and
live: a member in voice right now is counted up to this second.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable
from datetime import timedelta
from typing import Any, Literal, TypeVar

import discord
from discord import app_commands
from discord.ext import commands

from ...core.results import Leaderboard, Point, Rank, Run, Streak
from ...errors import NotFound
from ..chart import bar_chart
from . import embeds
from .bot import StatsBot, hybrid

Window = Literal["day", "week", "month", "all", "24h"]
CHART_DAYS = 14
T = TypeVar("T")


class NoGuild(commands.UserInputError):
    """A DM from someone the bot shares no guild with: nothing to report on."""


class Stats(commands.Cog):
    """Leaderboards, a member's stats and streaks."""

    def __init__(self, bot: StatsBot) -> None:
        self.bot = bot

    @hybrid(description="Who spent the most time in voice")
    @app_commands.describe(window="day, week, month, all (time) or 24h (rolling)",
                           n="How many places to show (1-25)")
    async def top(self, ctx: commands.Context[StatsBot], window: Window = "day",
                  n: commands.Range[int, 1, 25] = 10) -> None:
        guild = self._guild(ctx)
        board = await self._ask_or_empty(
            self.bot.tally.leaderboard, self.bot.metric, window=embeds.WINDOWS[window][1],
            n=n, space=str(guild.id), empty=Leaderboard(None, 0, 0, []))
        await ctx.send(embed=embeds.top(board, window, guild.name))

    @hybrid(description="Voice time today, this week, this month and in "
                                         "all, with ranks, streaks and the last 14 days")
    @app_commands.describe(member="Whose stats (default: yours)")
    async def stats(self, ctx: commands.Context[StatsBot],
                    member: discord.User | None = None) -> None:
        guild = self._guild(ctx)
        who = str((member or ctx.author).id)
        space = str(guild.id)
        settings = await self.bot.guild_settings(space)
        calendar = (await self.bot.metric_config(space)).calendar
        now = self.bot.clock()
        days = [calendar.day_of(now) - timedelta(days=back)
                for back in range(CHART_DAYS - 1, -1, -1)]
        tally, metric = self.bot.tally, self.bot.metric
        windows = ("day", "week", "month", "all")
        ranks = await asyncio.gather(*(self._ask_or_empty(
            tally.rank, metric, who, window=w, space=space,
            empty=Rank(None, 0, 0, [])) for w in windows))
        streak = await self._ask_or_empty(
            tally.streak, metric, who, min=settings.streak_minutes * 60, space=space,
            empty=Streak(Run(), Run()))
        series: list[Point] = await self._ask_or_empty(
            tally.series, metric, who, step="day", start=calendar.day_start_unix(days[0]),
            end=now, space=space, empty=[])
        hours = {p.label: p.value / 3600 for p in series}
        png = await self.bot.ask(  # drawing takes ~10 ms: off the event loop
            bar_chart, [f"{d.day}" for d in days], [hours.get(d.isoformat(), 0.0)
                                                    for d in days],
            title=f"Hours in voice, last {CHART_DAYS} days")
        embed = embeds.stats(who, dict(zip(windows, ranks, strict=True)), streak,
                             settings.streak_minutes, guild.name)
        await ctx.send(embed=embed, file=discord.File(io.BytesIO(png), "last-14-days.png"))

    @hybrid(description="Days in a row with time in voice")
    @app_commands.describe(member="Whose streak (default: yours)")
    async def streak(self, ctx: commands.Context[StatsBot],
                     member: discord.User | None = None) -> None:
        guild = self._guild(ctx)
        who = str((member or ctx.author).id)
        settings = await self.bot.guild_settings(str(guild.id))
        found = await self._ask_or_empty(self.bot.tally.streak, self.bot.metric, who,
                                         min=settings.streak_minutes * 60,
                                         space=str(guild.id), empty=Streak(Run(), Run()))
        await ctx.send(embed=embeds.streak(who, found, settings.streak_minutes))

    # ---- helpers ----------------------------------------------------------------------------
    def _guild(self, ctx: commands.Context[StatsBot]) -> discord.Guild:
        """The guild asked about: where the command ran, or in a DM the first guild the
        bot shares with the author (as far as its cache knows)."""
        if ctx.guild is not None:
            return ctx.guild
        for guild in self.bot.guilds:
            if guild.get_member(ctx.author.id) is not None:
                return guild
        if len(self.bot.guilds) == 1:
            return self.bot.guilds[0]
        raise NoGuild("Ask me in a server we share (mention me there or use the slash "
                      "command).")

    async def _ask_or_empty(self, call: Callable[..., T], *args: Any, empty: T,
                            **kwargs: Any) -> T:
        """The answer, or `empty` while the guild has no voice time at all (the presence
        metric is created by the first join)."""
        try:
            return await self.bot.ask(call, *args, **kwargs)
        except NotFound:
            return empty


async def setup(bot: StatsBot) -> None:
    await bot.add_cog(Stats(bot))
