"""/settings for server admins: timezone, daily reset time, tracked channels, streak.

The calendar (timezone, reset time) is the presence metric's own setting in tallyboard,
so every board and streak — in the bot, the API and the dashboard — agrees on when a day
starts; changing it recomputes the guild's history. Tracked channels and the streak
minimum are the bot's (kept in its state).
"""

from __future__ import annotations

from discord import CategoryChannel, StageChannel, VoiceChannel, app_commands
from discord.ext import commands

from ...errors import BadQuery
from ..state import GuildSettings
from . import embeds
from .bot import StatsBot, hybrid

Trackable = VoiceChannel | StageChannel | CategoryChannel


class SettingsFlags(commands.FlagConverter):
    """As text: ``@bot settings timezone: Europe/Berlin reset: 17:00 track: #study``."""

    timezone: str | None = commands.flag(default=None, description="IANA name, e.g. "
                                         "Europe/Berlin or UTC")
    reset: str | None = commands.flag(default=None, description="When the day starts, "
                                      "HH:MM local time, e.g. 17:00")
    track: Trackable | None = commands.flag(default=None, description="Count this voice "
                                            "channel or category (once one is tracked, "
                                            "only tracked ones count)")
    untrack: Trackable | None = commands.flag(default=None, description="Stop counting "
                                              "this channel or category")
    track_all: bool = commands.flag(default=False, description="Count every voice "
                                    "channel again (but the AFK one)")
    streak_minutes: commands.Range[int, 1, 1440] | None = commands.flag(
        default=None, description="Minutes in voice that make a day count for streaks")


class Admin(commands.Cog):
    """Server settings (Manage Server permission)."""

    def __init__(self, bot: StatsBot) -> None:
        self.bot = bot

    @hybrid(name="settings", description="Show or change how this server "
                                                          "is tracked (admins)")
    @commands.guild_only()
    @commands.has_guild_permissions(manage_guild=True)
    @app_commands.default_permissions(manage_guild=True)
    async def settings(self, ctx: commands.Context[StatsBot], *, flags: SettingsFlags) -> None:
        assert ctx.guild is not None  # guild_only
        space = str(ctx.guild.id)
        current = await self.bot.guild_settings(space)
        calendar = {k: v for k, v in (("timezone", flags.timezone),
                                      ("day_start", flags.reset)) if v is not None}
        if calendar:
            await ctx.defer()  # the history is recomputed: may take longer than Discord's 3 s
            try:
                await self.bot.ask(self.bot.tally.set_metric, self.bot.metric, calendar,
                                   space=space, rebuild=True)
            except BadQuery as exc:
                await ctx.send(embed=embeds.note(f"Not changed: {exc.message}", ok=False))
                return
        new = _tracking(current, flags)
        if new != current:
            await self.bot.save_guild_settings(new)
        if (new.tracked, new.untracked) != (current.tracked, current.untracked):
            voice = self.bot.get_cog("VoiceTracker")
            if voice is not None:
                await voice.reconcile(ctx.guild)  # type: ignore[attr-defined]
        config = await self.bot.metric_config(space)
        await ctx.send(embed=embeds.settings(config.timezone, config.day_start, new,
                                             ctx.guild.name))


def _tracking(current: GuildSettings, flags: SettingsFlags) -> GuildSettings:
    """`current` with the flags' tracking changes: `track` lifts an exclusion, and adds to
    the tracked list unless lifting it was all it took (everything else counts);
    `untrack` takes out of the list and excludes; `track_all` clears both."""
    tracked, untracked = ((), ()) if flags.track_all else (current.tracked, current.untracked)
    if flags.track is not None:
        one = str(flags.track.id)
        if one not in untracked or tracked:  # lifting an exclusion is enough on its own
            tracked = (*dict.fromkeys((*tracked, one)),)
        untracked = tuple(u for u in untracked if u != one)
    if flags.untrack is not None:
        one = str(flags.untrack.id)
        tracked = tuple(t for t in tracked if t != one)
        untracked = (*dict.fromkeys((*untracked, one)),)
    return GuildSettings(current.guild, tracked, untracked,
                         flags.streak_minutes or current.streak_minutes)


async def setup(bot: StatsBot) -> None:
    await bot.add_cog(Admin(bot))
