"""Running a worker and its HTTP side (/metrics, /readyz, /v1/ingest/errors; beside an
embedded engine the whole API too) on one event loop: SIGINT/SIGTERM let the batch in
hand finish and be acked (or, if the store is refusing it, leave it unacked for
redelivery), then stop the web server."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI

from ..bots.web import bot_server, stopped_by_signals
from .worker import Worker


async def serve(worker: Worker, app: FastAPI | None, host: str, port: int) -> None:
    """Run `worker` (and `app`, unless None) until a signal or until either ends."""
    stop = asyncio.Event()
    with stopped_by_signals(stop):
        running = [asyncio.create_task(worker.run(stop), name="worker")]
        server = bot_server(app, host, port) if app is not None else None
        if server is not None:
            running.append(asyncio.create_task(server.serve(), name="http"))
        await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
        stop.set()
        await running[0]
        if server is not None:
            server.should_exit = True
        for outcome in await asyncio.gather(*running, return_exceptions=True):
            if isinstance(outcome, Exception):
                raise outcome
