"""A bot's HTTP side, served on the bot's own event loop, and the signals that stop both."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Iterator

import uvicorn
from fastapi import FastAPI

from ..api.wire import json_errors_protocol


class QuietServer(uvicorn.Server):
    """uvicorn without its own signal handling: the bot's runner stops the bot and the
    server together (uvicorn would re-raise SIGTERM and end the process before the bot
    closed)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def bot_server(app: FastAPI, host: str, port: int) -> QuietServer:
    return QuietServer(uvicorn.Config(app, host=host, port=port, log_level="warning",
                                      access_log=False, lifespan="off",
                                      http=json_errors_protocol()))


@contextlib.contextmanager
def stopped_by_signals(stop: asyncio.Event) -> Iterator[None]:
    """SIGINT and SIGTERM set `stop` while inside (the bot's runner owns the shutdown)."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        yield
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
