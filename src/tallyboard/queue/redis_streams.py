"""Redis Streams: a consumer group, XACK after the batch is durable, and the pending
entries of a dead worker claimed (XAUTOCLAIM) by a living one once they sat idle for
``claim_after`` seconds.

URL: ``redis-stream://[:password@]host:6379/DB/KEY?group=G&consumer=C&claim_after=S``;
each entry carries the message in its ``data`` field (``XADD KEY * data '<json>'``).
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis import exceptions as rex

from .sources import Delivery, Source, path_parts

FIELD = b"data"
SHAPE = "redis-stream://host:6379/DB/KEY?group=G"


class RedisStreamSource(Source):
    FAILURES = (rex.ConnectionError, rex.TimeoutError, rex.BusyLoadingError, OSError)

    def __init__(self, url: str) -> None:
        super().__init__(url)
        parts = path_parts(url, 1, 2, SHAPE)
        self.db, self.key = (parts[0], parts[1]) if len(parts) == 2 else ("0", parts[0])
        if not self.db.isdigit():
            raise ValueError(f"{self.name!r} is not {SHAPE}: DB must be a number")
        self.group = self.options.get("group", "tallyboard")
        self.consumer = self.options.get("consumer", f"{socket.gethostname()}-{os.getpid()}")
        self.claim_after = self.option("claim_after", 30)
        split = urlsplit(url)
        scheme = "rediss" if split.scheme.startswith("rediss") else "redis"
        self._redis_url = urlunsplit((scheme, split.netloc, f"/{self.db}", "", ""))
        self._redis: aioredis.Redis | None = None
        self._own_pending = True  # at start, what this consumer name holds comes first
        self._claimed_at = 0.0

    async def connect(self) -> None:
        self._redis = aioredis.Redis.from_url(self._redis_url, socket_timeout=30,
                                              socket_connect_timeout=5)
        await self._redis.ping()

    async def subscribe(self, most: int) -> None:
        try:
            await self._r.xgroup_create(self.key, self.group, id="0", mkstream=True)
        except rex.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._own_pending = True

    @property
    def _r(self) -> aioredis.Redis:
        assert self._redis is not None, "connect() first"
        return self._redis

    async def fetch(self, most: int, wait: float) -> list[Delivery]:
        if self._own_pending:  # delivered to this consumer name before a restart
            got = await self._read("0", most, None)
            if got:
                return [self._delivery(i, f, True) for i, f in got]
            self._own_pending = False
        now = time.monotonic()
        if now - self._claimed_at >= self.claim_after / 2:
            self._claimed_at = now
            claimed = await self._claim(most)
            if claimed:
                return claimed
        got = await self._read(">", most, max(1, int(wait * 1000)))
        return [self._delivery(i, f, False) for i, f in got]

    async def _read(self, start: str, most: int, block: int | None
                    ) -> list[tuple[bytes, dict[bytes, bytes]]]:
        answer: Any = await self._r.xreadgroup(self.group, self.consumer, {self.key: start},
                                               count=most, block=block)
        return list(answer[0][1]) if answer else []

    async def _claim(self, most: int) -> list[Delivery]:
        """Entries another consumer took and left unacked for `claim_after` seconds."""
        answer: Any = await self._r.xautoclaim(self.key, self.group, self.consumer,
                                          self.claim_after * 1000, "0-0", count=most)
        return [self._delivery(i, f, True) for i, f in answer[1] if f is not None]

    def _delivery(self, entry: bytes, fields: dict[bytes, bytes] | None,
                  again: bool) -> Delivery:
        body = (fields or {}).get(FIELD, b"")
        return Delivery(body, f"rs:{self.key}:{entry.decode()}", again, entry)

    async def ack(self, deliveries: Sequence[Delivery]) -> None:
        if deliveries:
            await self._r.xack(self.key, self.group, *(d.token for d in deliveries))

    async def pending(self) -> int | None:
        for group in await self._r.xinfo_groups(self.key):
            if _text(group.get("name")) == self.group:
                lag = group.get("lag")
                return int(group.get("pending") or 0) + int(lag or 0)
        return None

    async def send(self, bodies: Sequence[bytes]) -> None:
        async with self._r.pipeline(transaction=False) as pipe:
            for body in bodies:
                pipe.xadd(self.key, {FIELD: body})
            await pipe.execute()

    async def close(self) -> None:
        if self._redis is not None:
            redis, self._redis = self._redis, None
            with contextlib.suppress(Exception):  # a broken connection is dropped anyway
                await redis.aclose()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
