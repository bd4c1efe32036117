"""Queues for tests on the machine's real brokers (NATS JetStream, Redis, RabbitMQ), each
on a stream, key or queue of its own that is deleted afterwards, and brokers of a test's
own (processes on free ports) to stop and start again."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import redis

from tallyboard.bench.measure import free_port

BROKERS = ["redis", "nats", "amqp"]
HOSTS = {"redis": "127.0.0.1:6379", "nats": "127.0.0.1:4222", "amqp": "127.0.0.1:5672"}


class Queue:
    """A stream/key/queue of this test's own on the broker at `host` (deleted by `drop`)."""

    def __init__(self, kind: str, host: str | None = None) -> None:
        self.kind = kind
        self.host = host or HOSTS[kind]
        tag = uuid.uuid4().hex[:10]
        self.name = {"redis": f"tbtest-{tag}", "nats": f"TBTEST{tag}",
                     "amqp": f"tbtest-{tag}"}[kind]
        self.subject = f"tbtest.{tag}"

    def url(self, **options: Any) -> str:
        """The URL `tallyboard worker --from` takes, with these ``?`` options (defaults:
        quick redelivery, so a test need not wait out the production timeouts)."""
        defaults = {"redis": {"group": "tb", "claim_after": 1}, "nats": {"ack_wait": 2},
                    "amqp": {}}[self.kind]
        query = "&".join(f"{k}={v}" for k, v in {**defaults, **options}.items())
        base = {"redis": f"redis-stream://{self.host}/0/{self.name}",
                "nats": f"nats://{self.host}/{self.name}/{self.subject}",
                "amqp": f"amqp://guest:guest@{self.host}/{self.name}"}[self.kind]
        return base + (f"?{query}" if query else "")

    def waiting(self) -> int:
        """Messages not yet acked by the consumer (delivered or not)."""
        return asyncio.run(_waiting(self))

    def drop(self) -> None:
        with contextlib.suppress(Exception):
            asyncio.run(_drop(self))


async def _waiting(q: Queue) -> int:
    from tallyboard.queue.sources import open_source

    source = open_source(q.url())
    await source.connect()
    try:
        if q.kind == "amqp":  # ready + unacked, as the broker counts them
            import aio_pika

            connection = await aio_pika.connect(f"amqp://guest:guest@{q.host}/")
            async with connection:
                channel = await connection.channel()
                declared = await channel.declare_queue(q.name, passive=True)
                ready = int(declared.declaration_result.message_count)
            return ready + _rabbit_unacked(q)
        await source.subscribe(1)
        return int(await source.pending() or 0)
    finally:
        await source.close()


def _rabbit_unacked(q: Queue) -> int:
    port = q.host.rsplit(":", 1)[1]
    if port != "5672":
        return 0  # a broker of the test's own: its tests read the worker instead
    out = subprocess.run(["rabbitmqctl", "-q", "list_queues", "name",
                          "messages_unacknowledged"], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    for line in out.splitlines():
        name, _, count = line.partition("\t")
        if name == q.name:
            return int(count)
    return 0


async def _drop(q: Queue) -> None:
    if q.kind == "redis":
        with redis.Redis.from_url(f"redis://{q.host}/0") as r:
            r.delete(q.name)
    elif q.kind == "nats":
        import nats

        nc = await nats.connect(f"nats://{q.host}")
        try:
            await nc.jetstream().delete_stream(q.name)
        finally:
            await nc.close()
    else:
        import aio_pika

        connection = await aio_pika.connect(f"amqp://guest:guest@{q.host}/")
        async with connection:
            channel = await connection.channel()
            await channel.queue_delete(q.name)


def wait_port(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


class OwnBroker:
    """A broker process of a test's own on a free port, keeping its data across a
    restart (NATS with file storage, Redis with an fsynced append-only file, RabbitMQ with
    its own node and durable queues)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix=f"tallyboard-{kind}-"))
        self.root.chmod(0o755)
        self.host = f"127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def _command(self) -> tuple[list[str], dict[str, str]]:
        if self.kind == "nats":
            return ["nats-server", "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd",
                    str(self.root)], {}
        if self.kind == "redis":
            return ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir",
                    str(self.root), "--appendonly", "yes", "--appendfsync", "always",
                    "--save", ""], {}
        conf = self.root / "rabbitmq.conf"
        conf.write_text(f"listeners.tcp.local = 127.0.0.1:{self.port}\n")
        shutil.chown(self.root, "rabbitmq")
        shutil.chown(conf, "rabbitmq")
        node = f"tbtest{self.port}@localhost"
        return ["rabbitmq-server"], {
            "RABBITMQ_NODENAME": node, "RABBITMQ_CONFIG_FILE": str(conf),
            "RABBITMQ_DIST_PORT": str(free_port()),
            "RABBITMQ_MNESIA_BASE": str(self.root / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.root / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.root / "plugins"),
            "RABBITMQ_PID_FILE": str(self.root / "pid")}

    def start(self) -> None:
        command, env = self._command()
        self.proc = subprocess.Popen(command, env={**os.environ, **env},
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        wait_port(self.port)

    def stop(self) -> None:
        """Stop it as a service manager would (SIGTERM to all of its processes)."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._beam_gone()

    def _beam_gone(self) -> None:
        """RabbitMQ's Erlang VM outlives the script that started it: wait for its pid."""
        pid_file = self.root / "pid"
        if self.kind != "amqp" or not pid_file.exists():
            return
        with contextlib.suppress(ValueError, ProcessLookupError):
            pid = int(pid_file.read_text().strip())
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                os.kill(pid, 0)
                time.sleep(0.1)
            os.kill(pid, signal.SIGKILL)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
