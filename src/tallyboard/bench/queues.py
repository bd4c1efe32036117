"""The queue workload: `tallyboard worker` processes consuming NATS JetStream, Redis
Streams and RabbitMQ, against the broker alone moving the same messages.

Per broker, in one run:
- *broker alone*: the publish rate, and a bare consume-and-ack loop through the same
  client (no decoding, no engine): what the broker and its client can move;
- *one worker, embedded store*: a backlog of batched messages (1,000 events each) and
  one of one-event messages, consumed by a real worker process; the rate runs from its
  first applied event to its last, and the answer is checked by counting (every
  member's total over the API equals what was published: nothing lost, nothing twice);
- *1, 2 and 4 workers on Redis + PostgreSQL* sharing one stream: the same for batched
  messages;
- *publish → queryable*: a publisher at half the one-worker batched rate, each message
  holding one event of a probe metric for a member of its own; a reader asks the
  worker's API for the probe board's size every 5 ms, so message k is queryable when
  the board holds k + 1 members (messages are applied in order by one worker).
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson

from ..queue.publish import bodies_of
from ..queue.sources import Source, open_source
from .measure import Progress, free_port

BROKERS = {"nats": "nats://127.0.0.1:4222/{name}/{name}.events",
           "redis": "redis-stream://127.0.0.1:6379/0/{name}",
           "amqp": "amqp://guest:guest@127.0.0.1:5672/{name}"}
MEMBERS = 1000
LATENCY_SECONDS = 10.0


def run_queues(tmp: Path, scale: float, pg: str, redis_url: str,
               progress: Progress) -> dict[str, Any]:
    """Every broker's figures (see the module's docstring)."""
    batched = max(5_000, int(1_000_000 * scale)) // 1000 * 1000
    single = max(1_000, int(100_000 * scale))
    shared = max(5_000, int(500_000 * scale)) // 1000 * 1000
    seconds = LATENCY_SECONDS * min(1.0, max(0.2, scale * 5))
    out: dict[str, Any] = {"batched_events": batched, "single_events": single,
                           "shared_events": shared, "brokers": {}}
    for broker in BROKERS:
        progress(f"queue: {broker}", 0, 4)
        got: dict[str, Any] = {}
        got["alone"] = _alone(broker, batched, single)
        progress(f"queue: {broker}", 1, 4)
        got["embedded"] = {kind: _consumed(tmp, broker, events, per, [[]])
                           for kind, events, per in (("batched", batched, 1000),
                                                     ("single", single, 1))}
        progress(f"queue: {broker}", 2, 4)
        got["shared"] = {str(n): _shared(tmp, broker, shared, n, pg, redis_url)
                         for n in (1, 2, 4)}
        progress(f"queue: {broker}", 3, 4)
        half = got["embedded"]["batched"]["events_per_s"] / 2
        got["latency"] = _latency(tmp, broker, half, seconds)
        progress(f"queue: {broker}", 4, 4)
        out["brokers"][broker] = got
    return out


def _url(broker: str) -> str:
    name = f"tbbench{uuid.uuid4().hex[:8]}"
    return BROKERS[broker].format(name=name.upper() if broker == "nats" else name)


def _events(n: int, metric: str = "points") -> list[dict[str, Any]]:
    return [{"metric": metric, "member": f"m{i % MEMBERS}", "value": 1} for i in range(n)]


@contextlib.contextmanager
def _queue(broker: str) -> Iterator[str]:
    """A stream/key/queue of the run's own, deleted afterwards."""
    url = _url(broker)
    try:
        yield url
    finally:
        with contextlib.suppress(Exception):
            asyncio.run(_drop(url))


async def _drop(url: str) -> None:
    source: Any = open_source(url)
    await source.connect()
    try:
        if url.startswith("nats"):
            await source._js.delete_stream(source.stream)
        elif url.startswith("redis"):
            await source._r.delete(source.key)
        else:
            await source._channel.queue_delete(source.queue)
    finally:
        await source.close()


def _publish(url: str, events: list[dict[str, Any]], per: int) -> float:
    """Publish `events` `per` to a message; seconds it took."""
    bodies = list(bodies_of(events, per))

    async def send() -> float:
        source = open_source(url)
        await source.connect()
        try:
            started = time.perf_counter()
            for at in range(0, len(bodies), 5000):
                await source.send(bodies[at:at + 5000])
            return time.perf_counter() - started
        finally:
            await source.close()

    return asyncio.run(send())


def _alone(broker: str, batched: int, single: int) -> dict[str, Any]:
    """The broker and its client alone: publish, then fetch and ack everything."""
    out = {}
    for kind, events, per in (("batched", batched, 1000), ("single", single, 1)):
        with _queue(broker) as url:
            published = _publish(url, _events(events), per)
            consumed = asyncio.run(_bare_consume(open_source(url), -(-events // per)))
            out[kind] = {"publish_events_per_s": events / published,
                         "consume_events_per_s": events / consumed}
    return out


async def _bare_consume(source: Source, messages: int) -> float:
    """Seconds to fetch and ack `messages` in batches of 1,000, with nothing else done."""
    await source.connect()
    await source.subscribe(1000)
    try:
        started, seen = time.perf_counter(), 0
        while seen < messages:
            got = await source.fetch(1000, 1.0)
            await source.ack(got)
            seen += len(got)
        return time.perf_counter() - started
    finally:
        await source.close()


class _Worker:
    """A `tallyboard worker` process with its HTTP side on a free port."""

    def __init__(self, data: Path, url: str, *extra: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        data.mkdir(parents=True, exist_ok=True)
        self.log = data / "worker.log"
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tallyboard.cli", "worker", "--from", url, "--port",
                 str(self.port), "--data", str(data), *extra],
                stdout=log, stderr=subprocess.STDOUT)
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"bench worker exited: {self.log.read_text()}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(self.base + "/readyz", timeout=1).status_code == 200:
                    return
            time.sleep(0.05)
        raise RuntimeError("bench worker did not become ready")

    def applied(self) -> float:
        text = httpx.get(self.base + "/metrics", timeout=10).text
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("tallyboard_queue_applied_total{"))

    def totals(self, metric: str = "points") -> dict[str, int]:
        r = httpx.get(self.base + "/v1/leaderboard", params={"metric": metric, "n": MEMBERS},
                      timeout=30)
        if r.status_code == 404:
            return {}
        r.raise_for_status()
        return {e["member"]: e["score"] for e in r.json()["entries"]}

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _consumed(tmp: Path, broker: str, events: int, per: int, extra: list[list[str]],
              backlog: bool = True) -> dict[str, Any]:
    """Consume `events` with one worker per entry of `extra` (its own arguments): from a
    backlog published before the workers start (the rate runs from the last look that
    found nothing applied), or, with several workers, published once all of them are up
    (the rate runs from the publish, so no worker starts ahead of the others); and the
    count."""
    with _queue(broker) as url:
        if backlog:
            _publish(url, _events(events), per)
        workers = [_Worker(tmp / f"w{uuid.uuid4().hex[:6]}", url, *args) for args in extra]
        try:
            started = time.perf_counter()
            if not backlog:
                _publish(url, _events(events), per)
            while (done := sum(w.applied() for w in workers)) < events:
                if backlog and done == 0:
                    started = time.perf_counter()
                time.sleep(0.01)
            seconds = time.perf_counter() - started
            time.sleep(0.5)  # a late duplicate would show in the count
            found = workers[0].totals()
            applied = sum(w.applied() for w in workers)
        finally:
            for w in workers:
                w.stop()
    expected = {f"m{i}": events // MEMBERS + (1 if i < events % MEMBERS else 0)
                for i in range(min(MEMBERS, events))}
    return {"events": events, "per_message": per, "workers": len(extra),
            "events_per_s": events / seconds, "seconds": seconds,
            "exact": found == expected and applied == events, "applied": applied}


def _shared(tmp: Path, broker: str, events: int, workers: int, pg_admin: str,
            redis_url: str) -> dict[str, Any]:
    """`workers` workers on one stream, sharing Redis + a fresh PostgreSQL database."""
    import psycopg
    import redis

    from .redis_baselines import clear_prefix

    name = f"tallyboard_bench_{uuid.uuid4().hex[:8]}"
    prefix = f"tbbq{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_admin, autocommit=True) as db:
        db.execute(f"CREATE DATABASE {name}".encode())
    try:
        log = pg_admin.rsplit("/", 1)[0] + "/" + name
        args = ["--store", redis_url, "--store-prefix", prefix, "--log", log]
        return _consumed(tmp, broker, events, 1000, [args] * workers, backlog=False)
    finally:
        client = redis.Redis.from_url(redis_url)
        clear_prefix(client, prefix)
        client.close()
        with psycopg.connect(pg_admin, autocommit=True) as db:
            db.execute(f"DROP DATABASE {name} WITH (FORCE)".encode())


def _latency(tmp: Path, broker: str, rate: float, seconds: float) -> dict[str, Any]:
    """Publish → queryable at `rate` events/s in 1,000-event messages (one of them a
    probe of the message's own) for `seconds`, read every 5 ms from the worker's API."""
    per_s = max(1.0, rate / 1000)
    count = int(per_s * seconds)
    sent: list[float] = []
    seen: list[float] = []
    with _queue(broker) as url:
        worker = _Worker(tmp / f"lat{uuid.uuid4().hex[:6]}", url)
        try:
            reader = threading.Thread(target=_watch, args=(worker, count, seen, seconds),
                                      daemon=True)
            reader.start()
            asyncio.run(_paced(url, count, per_s, sent))
            reader.join(60)
        finally:
            worker.stop()
    late = np.array(seen[:len(sent)]) - np.array(sent[:len(seen)])
    return {"events_per_s": per_s * 1000, "messages": count, "seen": len(seen),
            "p50_ms": float(np.percentile(late, 50) * 1e3) if len(late) else float("nan"),
            "p99_ms": float(np.percentile(late, 99) * 1e3) if len(late) else float("nan")}


async def _paced(url: str, count: int, per_s: float, sent: list[float]) -> None:
    source = open_source(url)
    await source.connect()
    try:
        start = time.perf_counter()
        for k in range(count):
            due = start + k / per_s
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            body = [*_events(999), {"metric": "probe", "member": f"k{k}", "value": 1}]
            sent.append(time.perf_counter())
            await source.send([orjson.dumps(body)])
    finally:
        await source.close()


def _watch(worker: _Worker, count: int, seen: list[float], seconds: float) -> None:
    """Note when each probe member shows (the board's `total` counts members)."""
    with httpx.Client(base_url=worker.base, timeout=10) as http:
        deadline = time.monotonic() + seconds + 60
        while len(seen) < count and time.monotonic() < deadline:
            r = http.get("/v1/leaderboard", params={"metric": "probe", "n": 1})
            now = time.perf_counter()
            if r.status_code == 200:
                seen.extend([now] * (int(r.json()["total"]) - len(seen)))
            time.sleep(0.005)
