"""How commands end: counted by outcome, a friendly word to the user, and every real error
kept durably (time, guild, channel, command, traceback summary) for `tallyboard errors`
and ``GET /v1/bot/errors``."""

from __future__ import annotations

import logging

import discord
from discord import app_commands
from discord.ext import commands

from . import embeds
from .bot import StatsBot

log = logging.getLogger("tallyboard.discord.failures")
HELP = ("I know `/top`, `/stats`, `/streak` and `/settings` (also as text after a mention), "
        "and `count to n` / `stop`.")


class Failures(commands.Cog):
    """Outcomes of commands, and errors anywhere in the bot."""

    def __init__(self, bot: StatsBot) -> None:
        self.bot = bot

    async def cog_load(self) -> None:
        self.bot.tree.on_error = self.on_app_command_error  # type: ignore[method-assign]

    @commands.Cog.listener()
    async def on_command_completion(self, ctx: commands.Context[StatsBot]) -> None:
        self.bot.metrics.command(_name(ctx), "ok")

    @commands.Cog.listener()
    async def on_command_error(self, ctx: commands.Context[StatsBot],
                               error: commands.CommandError) -> None:
        name = _name(ctx)
        if isinstance(error, commands.CommandNotFound):
            self.bot.metrics.command("unknown", "invalid")
            await _answer(ctx, f"I don't know `{ctx.invoked_with}`. {HELP}")
        elif isinstance(error, commands.CheckFailure):
            self.bot.metrics.command(name, "denied")
            await _answer(ctx, _why_denied(error))
        elif isinstance(error, commands.UserInputError):
            self.bot.metrics.command(name, "invalid")
            await _answer(ctx, str(error))
        else:
            original = getattr(error, "original", error)
            number = await self.bot.report(
                "command", original, guild=_id(ctx.guild),
                channel=str(ctx.channel.id), command=name)
            self.bot.metrics.command(name, "error")
            await _answer(ctx, f"Something went wrong; it is logged as error #{number}.")

    async def on_app_command_error(self, interaction: discord.Interaction[StatsBot],
                                   error: app_commands.AppCommandError) -> None:
        """Slash-command failures outside a hybrid command (a command Discord knows but
        this bot no longer has, say)."""
        name = interaction.command.name if interaction.command else "unknown"
        await self.bot.report("command", error, guild=_id(interaction.guild),
                              channel=_id(interaction.channel), command=name)
        self.bot.metrics.command(name, "error")


def _name(ctx: commands.Context[StatsBot]) -> str:
    return ctx.command.qualified_name if ctx.command else (ctx.invoked_with or "unknown")


def _id(thing: discord.abc.Snowflake | None) -> str | None:
    return None if thing is None else str(thing.id)


def _why_denied(error: commands.CheckFailure) -> str:
    if isinstance(error, commands.NoPrivateMessage):
        return "That works in a server, not in a DM."
    if isinstance(error, commands.MissingPermissions):
        return "That needs the Manage Server permission."
    return str(error)


async def _answer(ctx: commands.Context[StatsBot], text: str) -> None:
    try:
        await ctx.send(embed=embeds.note(text, ok=False), ephemeral=True)
    except discord.HTTPException as exc:  # the channel refuses us: nothing more to say
        log.warning("could not answer %s: %s", ctx.command, exc)


async def setup(bot: StatsBot) -> None:
    await bot.add_cog(Failures(bot))
