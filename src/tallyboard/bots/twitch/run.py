"""Running the tracker and its HTTP side on one event loop until SIGINT/SIGTERM.

Twitch unreachable at start is not an error: validating the token is retried, 1 s
doubling to a minute, each attempt logged, until it works or the process is stopped. A
refused token that cannot be renewed ends the start at once (AuthFailed)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from fastapi import FastAPI

from ..web import bot_server, stopped_by_signals
from .helix import Helix, PollFailed
from .tracker import Tracker

log = logging.getLogger("tallyboard.twitch")

FIRST_WAIT = 1.0
LONGEST_WAIT = 60.0


async def serve(tracker: Tracker, app: FastAPI, host: str, port: int) -> None:
    server = bot_server(app, host, port)
    stop = asyncio.Event()
    try:
        with stopped_by_signals(stop):
            running = [asyncio.create_task(_track(tracker, stop), name="twitch"),
                       asyncio.create_task(server.serve(), name="http")]
            waiting = asyncio.create_task(stop.wait())
            await asyncio.wait([*running, waiting], return_when=asyncio.FIRST_COMPLETED)
            stop.set()
            server.should_exit = True
            outcomes = await asyncio.gather(*running, waiting, return_exceptions=True)
            for outcome in outcomes[:2]:
                if isinstance(outcome, Exception):
                    raise outcome
    finally:
        await tracker.helix.close()


async def _track(tracker: Tracker, stop: asyncio.Event) -> None:
    if await start(tracker.helix, stop):
        await tracker.run(stop)


async def start(helix: Helix, stop: asyncio.Event) -> bool:
    """Validate the token, retrying while Twitch cannot be reached; False if stopped."""
    wait, attempt = FIRST_WAIT, 0
    while True:
        attempt += 1
        try:
            await helix.start()
            return True
        except PollFailed as exc:
            log.warning("cannot reach Twitch (attempt %d: %s); trying again in %.0f s",
                        attempt, exc, wait)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), wait)
            return False
        wait = min(wait * 2, LONGEST_WAIT)
