"""Replies as embeds that read well on a phone: short lines, no tables, names as mentions
(Discord shows them as names and pings nobody inside an embed)."""

from __future__ import annotations

from collections.abc import Sequence

import discord

from ...core.results import Leaderboard, Rank, Run, Streak
from ..state import GuildSettings

BLURPLE, GREEN, RED = 0x5865F2, 0x57F287, 0xED4245
WINDOWS = {"day": ("today", "day"), "week": ("this week", "week"),
           "month": ("this month", "month"), "all": ("all time", "all"),
           "24h": ("the last 24 hours", "rolling:24h")}
MEDALS = {1: "🥇", 2: "🥈", 3: "🥉"}


def duration(seconds: int) -> str:
    """``3h 05m``, ``12m``, ``40s`` — compact enough for a phone."""
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours:,}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m"
    return f"{secs}s"


def top(board: Leaderboard, window: str, guild_name: str) -> discord.Embed:
    lines = [f"{MEDALS.get(e.rank, f'**{e.rank}.**')} <@{e.member}> · {duration(e.score)}"
             for e in board.entries] or [f"Nobody has been in voice {WINDOWS[window][0]}."]
    embed = discord.Embed(title=f"Voice time — {WINDOWS[window][0]}", color=BLURPLE,
                          description="\n".join(lines))
    embed.set_footer(text=f"{guild_name} · {board.total:,} members ranked")
    return embed


def place(rank: Rank) -> str:
    return f"#{rank.rank:,} of {rank.total:,}" if rank.rank is not None else "not ranked"


def stats(member: str, ranks: dict[str, Rank], streak: Streak, streak_minutes: int,
          guild_name: str) -> discord.Embed:
    embed = discord.Embed(title="Voice stats", color=BLURPLE,
                          description=f"<@{member}> in {guild_name}")
    for window in ("day", "week", "month", "all"):
        r = ranks[window]
        embed.add_field(name=WINDOWS[window][0].capitalize(),
                        value=f"{duration(r.score)}\n{place(r)}", inline=True)
    embed.add_field(name="Streak", value=_streak_line(streak, streak_minutes), inline=False)
    embed.set_image(url="attachment://last-14-days.png")
    return embed


def streak(member: str, s: Streak, streak_minutes: int) -> discord.Embed:
    color = GREEN if s.current.length else BLURPLE
    return discord.Embed(title="Streak", color=color,
                         description=f"<@{member}>\n{_streak_line(s, streak_minutes)}")


def _streak_line(s: Streak, minutes: int) -> str:
    need = f"a day counts with {minutes} min in voice"
    return f"🔥 {_days(s.current)} now · best {_days(s.longest)}\n-# {need}"


def _days(run: Run) -> str:
    if not run.length:
        return "0 days"
    span = run.first_day if run.length == 1 else f"{run.first_day} → {run.last_day}"
    return f"{run.length} day{'s' * (run.length != 1)} ({span})"


def note(text: str, *, ok: bool = True) -> discord.Embed:
    """A one-line answer: a setting changed, a friendly error."""
    return discord.Embed(description=text, color=GREEN if ok else RED)


def settings(timezone: str, day_start: str, guild: GuildSettings,
             guild_name: str) -> discord.Embed:
    tracked = _channels(guild.tracked) if guild.tracked else \
        "every voice channel but the AFK one"
    embed = discord.Embed(title=f"Settings — {guild_name}", color=BLURPLE)
    embed.add_field(name="Day starts", value=f"{day_start} · {timezone}", inline=False)
    embed.add_field(name="Tracked", value=tracked, inline=False)
    if guild.untracked:
        embed.add_field(name="Not tracked", value=_channels(guild.untracked), inline=False)
    embed.add_field(name="Streak", value=f"{guild.streak_minutes} min a day", inline=False)
    return embed


def _channels(ids: Sequence[str]) -> str:
    return ", ".join(f"<#{c}>" for c in ids)
