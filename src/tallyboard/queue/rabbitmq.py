"""RabbitMQ: a durable queue consumed with manual acks, sent once the batch is durable;
the prefetch count bounds what is delivered and not yet acked (the backpressure), and
what a dead worker held goes back to the queue when its connection closes.

URL: ``amqp://user:password@host:5672/[VHOST/]QUEUE?prefetch=N`` (a vhost with a slash
is written ``%2F``). The queue is declared durable when it does not exist.

A delivery tag only numbers a delivery on one channel, so it is not a stable name for a
message. A message's stable name is its ``message_id`` (`publish` sets a fresh one on each
message); a message published without one is named by the SHA-256 of its bytes, so two
byte-identical id-less messages on one queue count once (give them event ids, or a
message_id, to count both).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import uuid
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

import aio_pika
import aiormq

from .sources import Delivery, Source, path_parts

SHAPE = "amqp://user:password@host:5672/QUEUE or amqp://…/VHOST/QUEUE"
SEND_AT_ONCE = 1000


class RabbitSource(Source):
    FAILURES = (aiormq.exceptions.AMQPError, aio_pika.exceptions.AMQPException,
                aiormq.exceptions.ChannelInvalidStateError,  # an ack on a channel now closed
                ConnectionError, OSError, asyncio.TimeoutError)

    def __init__(self, url: str) -> None:
        super().__init__(url)
        parts = path_parts(url, 1, 2, SHAPE)
        self.vhost, self.queue = (parts[0], parts[1]) if len(parts) == 2 else ("/", parts[0])
        split = urlsplit(url)
        self._login: dict[str, Any] = {
            "host": split.hostname or "127.0.0.1", "port": split.port or 5672,
            "login": unquote(split.username or "guest"),
            "password": unquote(split.password or "guest"),
            "virtualhost": self.vhost, "ssl": split.scheme == "amqps"}
        self._connection: Any = None
        self._channel: Any = None
        self._got: asyncio.Queue[Any] = asyncio.Queue()

    async def connect(self) -> None:
        self._connection = await aio_pika.connect(timeout=5, **self._login)
        self._channel = await self._connection.channel()
        await self._channel.declare_queue(self.queue, durable=True)

    async def subscribe(self, most: int) -> None:
        await self._channel.set_qos(prefetch_count=self.option("prefetch", most))
        self._got = asyncio.Queue()
        queue = await self._channel.get_queue(self.queue)
        await queue.consume(self._got.put, no_ack=False)

    async def fetch(self, most: int, wait: float) -> list[Delivery]:
        got = []
        if self._connection.is_closed:
            raise ConnectionError("the connection to RabbitMQ closed")
        try:
            got.append(await asyncio.wait_for(self._got.get(), wait))
        except TimeoutError:
            return []
        while len(got) < most and not self._got.empty():
            got.append(self._got.get_nowait())
        return [Delivery(m.body, self._origin(m), bool(m.redelivered), m) for m in got]

    def _origin(self, message: Any) -> str:
        name = message.message_id or "sha256:" + hashlib.sha256(message.body).hexdigest()
        return f"amqp:{self.queue}:{name}"

    async def ack(self, deliveries: Sequence[Delivery]) -> None:
        """One ack of the batch's last delivery with ``multiple``: the channel delivers in
        tag order and the batch is fetched from the front, so every earlier tag on the
        channel is in this batch or was acked with an earlier one (one ack per message
        cost ~120 µs each)."""
        if deliveries:
            await deliveries[-1].token.ack(multiple=True)

    async def pending(self) -> int | None:
        queue = await self._channel.declare_queue(self.queue, passive=True)
        return int(queue.declaration_result.message_count) + self._got.qsize()

    async def send(self, bodies: Sequence[bytes]) -> None:
        exchange = self._channel.default_exchange
        for at in range(0, len(bodies), SEND_AT_ONCE):
            await asyncio.gather(*(exchange.publish(
                aio_pika.Message(b, message_id=uuid.uuid4().hex,
                                 delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                                 content_type="application/json"),
                routing_key=self.queue) for b in bodies[at:at + SEND_AT_ONCE]))

    async def close(self) -> None:
        if self._connection is not None:
            connection, self._connection = self._connection, None
            with contextlib.suppress(Exception):
                await connection.close()
