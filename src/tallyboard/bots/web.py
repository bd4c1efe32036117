"""A bot's HTTP side, served on the bot's own event loop."""

from __future__ import annotations

import contextlib
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
