"""What every stand-in shares: a server on an asyncio loop in a thread of its own, so a
test or a benchmark drives it from plain code. `start()` returns once it listens (or
raises what stopped it), `stop()` ends it and joins the thread, `with` does both."""

from __future__ import annotations

import asyncio
import concurrent.futures
import socket
import threading
from collections.abc import Awaitable, Callable
from typing import Self

from aiohttp import web

Stop = Callable[[], Awaitable[None]]


class LoopThread:
    thread_name = "standin"

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("the stand-in is already started")
        started: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread = threading.Thread(target=asyncio.run, args=(self._run(started),),
                                        name=self.thread_name, daemon=True)
        self._thread.start()
        try:
            started.result(timeout=10)
        except BaseException:  # it never listened: nothing is left started
            self._thread.join(timeout=10)
            self._thread = None
            self._stopped()
            raise

    def stop(self) -> None:
        loop, stopping, thread = self._loop, self._stopping, self._thread
        if thread is None:
            return
        if loop is not None and stopping is not None:
            loop.call_soon_threadsafe(stopping.set)
        thread.join(timeout=10)
        self._thread = self._loop = self._stopping = None
        self._stopped()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _run(self, started: concurrent.futures.Future[None]) -> None:
        try:
            stop = await self._serve()
        except BaseException as exc:
            started.set_exception(exc)
            raise
        self._loop, self._stopping = asyncio.get_running_loop(), asyncio.Event()
        started.set_result(None)
        try:
            await self._stopping.wait()
        finally:
            await stop()

    async def _serve(self) -> Stop:
        """Start serving on this loop; return what stops it."""
        raise NotImplementedError

    def _stopped(self) -> None:
        """After the thread ended."""


class WebStandIn(LoopThread):
    """An aiohttp app on 127.0.0.1 (the given port, else a free one), its socket bound
    before the thread starts, so its URL is known as soon as `start` returns."""

    shutdown_timeout = 1.0

    def __init__(self, port: int = 0) -> None:
        super().__init__()
        self._port = port
        self._sock: socket.socket | None = None

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("the stand-in is already started")
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", self._port))
        self._port = self._sock.getsockname()[1]
        super().start()

    def _app(self) -> web.Application:
        raise NotImplementedError

    async def _closing(self) -> None:
        """Before the server stops (say goodbye to open connections)."""

    async def _serve(self) -> Stop:
        assert self._sock is not None
        runner = web.AppRunner(self._app(), shutdown_timeout=self.shutdown_timeout)
        try:
            await runner.setup()
            await web.SockSite(runner, self._sock).start()
        except BaseException:
            await runner.cleanup()
            raise

        async def stop() -> None:
            await self._closing()
            await runner.cleanup()
        return stop

    def _stopped(self) -> None:
        if self._sock is not None:
            self._sock.close()
