"""Running the bot and its HTTP side in one process, one event loop, with one owner of
every lifetime: SIGINT/SIGTERM stop both — the bot closes first (countdowns stay in the
state for the next start; queued presence is written, for up to 10 s), then the web
server, so /metrics and /readyz answer until the bot is gone.

Discord unreachable at start (no network yet, an outage, a proxy not up) is not an
error: the login is retried, 1 s doubling to a minute between attempts, each attempt
logged with the wait, until it succeeds or the process is stopped. Once logged in,
discord.py reconnects the gateway by itself."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import aiohttp
import discord
from discord.utils import MISSING
from fastapi import FastAPI

from ...redact import redact
from ..web import bot_server, stopped_by_signals
from .bot import StatsBot

log = logging.getLogger("tallyboard.discord")

FIRST_WAIT = 1.0  # seconds before the second login attempt; doubles each time
LONGEST_WAIT = 60.0
# What "Discord cannot be reached right now" looks like; a refused token (LoginFailure)
# or another 4xx is an answer, not an outage, and ends the start at once.
UNREACHABLE = (OSError, aiohttp.ClientError, asyncio.TimeoutError, discord.DiscordServerError,
               discord.GatewayNotFound)


async def serve(bot: StatsBot, token: str, app: FastAPI, host: str, port: int) -> None:
    """Run `bot` and `app` until a signal, or until either ends (a bad token ends the
    bot: its error is raised here)."""
    server = bot_server(app, host, port)
    stop = asyncio.Event()
    with stopped_by_signals(stop):
        async with bot:
            running = [asyncio.create_task(_run_bot(bot, token, stop), name="discord"),
                       asyncio.create_task(server.serve(), name="http"),
                       asyncio.create_task(stop.wait(), name="signal")]
            await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            stop.set()  # a login still waiting to retry gives up
            await bot.close()
            server.should_exit = True
            running[2].cancel()
            outcomes = await asyncio.gather(*running, return_exceptions=True)
            for outcome in outcomes[:2]:
                if isinstance(outcome, Exception):
                    raise outcome


async def _run_bot(bot: StatsBot, token: str, stop: asyncio.Event) -> None:
    """Log in (retrying while Discord is unreachable), then hold the gateway."""
    if await log_in(bot, token, stop):
        await bot.connect(reconnect=True)


async def log_in(bot: StatsBot, token: str, stop: asyncio.Event) -> bool:
    """`bot.login(token)`, tried again while Discord cannot be reached; False if `stop`
    was set first. LoginFailure and other refusals are raised at once."""
    where = redact(discord.http.Route.BASE)
    wait, attempt = FIRST_WAIT, 0
    while True:
        attempt += 1
        try:
            await bot.login(token)
        except UNREACHABLE as exc:
            if stop.is_set():
                return False
            await _forget_session(bot)
            log.warning("cannot reach Discord at %s (attempt %d: %s); trying again in %s. "
                        "The bot keeps trying until it is stopped.", where, attempt,
                        str(exc) or type(exc).__name__, _duration(wait))
        else:
            if attempt > 1:
                log.warning("reached Discord at %s on attempt %d; starting", where, attempt)
            return True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), wait)
            return False
        wait = min(wait * 2, LONGEST_WAIT)


async def _forget_session(bot: StatsBot) -> None:
    """Close the HTTP session a failed login opened (it closes its connector with it),
    so the next attempt opens fresh ones instead of leaking them."""
    await bot.http.close()
    bot.http.connector = MISSING


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} second{'s' if seconds != 1 else ''}"
