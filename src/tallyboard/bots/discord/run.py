"""Running the bot and its HTTP side in one process, one event loop, with one owner of
every lifetime: SIGINT/SIGTERM stop both — the bot closes first (countdowns stay in the
state for the next start; queued presence is written, for up to 10 s), then the web
server, so /metrics and /readyz answer until the bot is gone."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Iterator

import uvicorn
from fastapi import FastAPI

from .bot import StatsBot


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the runner stops the bot and the server
    together (uvicorn would re-raise SIGTERM and end the process before the bot closed)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve(bot: StatsBot, token: str, app: FastAPI, host: str, port: int) -> None:
    """Run `bot` and `app` until a signal, or until either ends (a bad token ends the
    bot: its error is raised here)."""
    server = _Server(uvicorn.Config(app, host=host, port=port, log_level="warning",
                                    access_log=False, lifespan="off"))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with bot:
            running = [asyncio.create_task(bot.start(token), name="discord"),
                       asyncio.create_task(server.serve(), name="http"),
                       asyncio.create_task(stop.wait(), name="signal")]
            await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            await bot.close()
            server.should_exit = True
            running[2].cancel()
            outcomes = await asyncio.gather(*running, return_exceptions=True)
            for outcome in outcomes[:2]:
                if isinstance(outcome, Exception):
                    raise outcome
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
