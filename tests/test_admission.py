"""A burst beyond what the engine takes is told to come back (503 busy), not queued
without end; nothing of a refused request is applied."""

from __future__ import annotations

import asyncio
import threading

import httpx

from api_helpers import TEST_HOSTS
from tallyboard import Tallyboard
from tallyboard.api import create_app
from tallyboard.settings import Settings
from tallyboard.stores import MemoryLog

BODY = b'[{"metric": "m", "member": "a", "value": 1}]'


def test_writes_past_the_limit_are_503_busy_and_not_applied() -> None:
    tb = Tallyboard(MemoryLog())
    app = create_app(tb, Settings(allowed_hosts=TEST_HOSTS, max_pending_writes=2))
    entered = threading.Semaphore(0)
    release = threading.Event()
    record = tb.record_many

    def slow(*args: object, **kwargs: object) -> object:  # a write the engine is on
        entered.release()
        release.wait(10)
        return record(*args, **kwargs)  # type: ignore[arg-type]

    tb.record_many = slow  # type: ignore[method-assign]

    async def run() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            def post() -> asyncio.Task[httpx.Response]:
                return asyncio.ensure_future(c.post(
                    "/v1/events", content=BODY, headers={"content-type": "application/json"}))
            held = [post(), post()]
            for _ in held:  # both in the engine
                assert await asyncio.to_thread(entered.acquire, True, 10)
            refused = await post()
            release.set()
            return [refused, *await asyncio.gather(*held)]

    refused, *held = asyncio.run(run())
    assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
    assert refused.json()["error"]["code"] == "busy"
    assert [r.status_code for r in held] == [200, 200]
    tb.record_many = record  # type: ignore[method-assign]
    assert tb.sum("m", "a") == 2  # the two taken, not the refused one
