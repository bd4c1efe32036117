"""NATS JetStream: a durable pull consumer with explicit acks, sent once the batch is
durable; `max_ack_pending` bounds what is delivered and not yet acked (the backpressure),
and what a crashed worker held is redelivered after `ack_wait` seconds.

Pull requests are sent with nats-py's connection to an inbox of the worker's own, whose
deliveries a callback gathers: nats-py's `PullSubscription.fetch` waits for each message
in a task of its own (~43 µs a message here, which capped one-event messages at ~16,000 a
second). A request first takes what is there (``no_wait``), and only when nothing is
waits for the first message (``expires``); what arrives after a fetch returned is the
next fetch's.

URL: ``nats://[user:password@]host:4222/STREAM/SUBJECT?durable=NAME&ack_wait=S&max_ack_pending=N``.
The stream is created (file storage, bound to SUBJECT) when it does not exist.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

import nats
import orjson
from nats import errors as nerr
from nats.js import api
from nats.js import errors as jserr

from .sources import Delivery, Source, path_parts

SHAPE = "nats://host:4222/STREAM/SUBJECT"
SEND_AT_ONCE = 1000  # publishes awaited together (each waits for its stream ack)


class JetStreamSource(Source):
    FAILURES = (nerr.ConnectionClosedError, nerr.NoServersError, nerr.StaleConnectionError,
                nerr.OutboundBufferLimitError, nerr.UnexpectedEOF, jserr.ServiceUnavailableError,
                nerr.NoRespondersError, ConnectionError, OSError)

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.stream, self.subject = path_parts(url, 2, 2, SHAPE)
        self.durable = self.options.get("durable", "tallyboard")
        self.ack_wait = self.option("ack_wait", 30)
        self.max_ack_pending = self.option("max_ack_pending", 0) if \
            "max_ack_pending" in self.options else None
        split = urlsplit(url)
        self._server = f"nats://{split.hostname or '127.0.0.1'}:{split.port or 4222}"
        self._auth = {"user": unquote(split.username), "password": unquote(split.password or "")} \
            if split.username else {}
        self._nc: Any = None
        self._js: Any = None
        self._inbox = ""
        self._sub: Any = None
        self._got: collections.deque[Any] = collections.deque()
        self._answered = asyncio.Event()  # a delivery or a status arrived
        self._status = False  # the last request said it is done (no more, or expired)

    async def connect(self) -> None:
        self._nc = await nats.connect(self._server, connect_timeout=5, allow_reconnect=False,
                                      **self._auth)
        self._js = self._nc.jetstream()
        try:
            await self._js.stream_info(self.stream)
        except jserr.NotFoundError:
            await self._js.add_stream(name=self.stream, subjects=[self.subject])

    async def subscribe(self, most: int) -> None:
        config = api.ConsumerConfig(durable_name=self.durable, filter_subject=self.subject,
                                    ack_policy=api.AckPolicy.EXPLICIT, ack_wait=self.ack_wait,
                                    max_ack_pending=self.max_ack_pending or most * 4)
        try:
            await self._js.consumer_info(self.stream, self.durable)
        except jserr.NotFoundError:
            await self._js.add_consumer(self.stream, config)
        self._got.clear()
        self._inbox = self._nc.new_inbox()
        self._sub = await self._nc.subscribe(self._inbox, cb=self._arrived)
        self._next = f"$JS.API.CONSUMER.MSG.NEXT.{self.stream}.{self.durable}"

    async def _arrived(self, msg: Any) -> None:
        if msg.headers and msg.headers.get("Status") and not msg.data:
            self._status = True  # 404 nothing more, 408 expired, 409 limits
        else:
            self._got.append(msg)
        self._answered.set()

    async def fetch(self, most: int, wait: float) -> list[Delivery]:
        if not self._got:
            await self._request({"batch": most, "no_wait": True}, 5.0, most)
        if not self._got:
            await self._request({"batch": most, "expires": int(wait * 1e9)}, wait + 1.0, 1)
        taken = [self._got.popleft() for _ in range(min(most, len(self._got)))]
        return [Delivery(m.data, f"js:{self.stream}:{m.metadata.sequence.stream}",
                         m.metadata.num_delivered > 1, m) for m in taken]

    async def _request(self, ask: dict[str, Any], longest: float, enough: int) -> None:
        """Ask for messages; back once `enough` are in, the server says it is done, or
        `longest` seconds passed."""
        self._status = False
        self._answered.clear()
        await self._nc.publish(self._next, orjson.dumps(ask), reply=self._inbox)
        deadline = asyncio.get_running_loop().time() + longest
        while len(self._got) < enough and not self._status:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                return
            try:
                await asyncio.wait_for(self._answered.wait(), left)
            except TimeoutError:
                return
            self._answered.clear()
        if self._nc.is_closed:
            raise nerr.ConnectionClosedError

    async def ack(self, deliveries: Sequence[Delivery]) -> None:
        for d in deliveries:
            await d.token.ack()
        await self._nc.flush()

    async def pending(self) -> int | None:
        info = await self._js.consumer_info(self.stream, self.durable)
        return int(info.num_pending or 0) + int(info.num_ack_pending or 0)

    async def send(self, bodies: Sequence[bytes]) -> None:
        for at in range(0, len(bodies), SEND_AT_ONCE):
            await asyncio.gather(*(self._js.publish(self.subject, b, stream=self.stream)
                                   for b in bodies[at:at + SEND_AT_ONCE]))

    async def close(self) -> None:
        if self._nc is not None:
            nc, self._nc = self._nc, None
            with contextlib.suppress(Exception):  # a broken connection is dropped anyway
                await nc.close()
