"""Queue ingest against the real brokers (Redis Streams, NATS JetStream, RabbitMQ), each
test on a stream, key or queue of its own: every published event counted exactly once —
through redeliveries, a crash between the durable write and the ack, kill -9, several
workers on one stream, poison messages and a broker restart — checked at the answer (the
engine's sums and boards), never at a log."""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from prometheus_client import CollectorRegistry

import tallyboard
from queue_support import BROKERS, OwnBroker, Queue
from support import ServerProcess
from tallyboard.queue.kept import KeptMessages, open_kept
from tallyboard.queue.publish import Publisher
from tallyboard.queue.sources import open_source
from tallyboard.queue.telemetry import QueueMetrics
from tallyboard.queue.worker import Worker

pytestmark = pytest.mark.slow


@pytest.fixture(params=BROKERS)
def queue(request: pytest.FixtureRequest) -> Iterator[Queue]:
    q = Queue(request.param)
    yield q
    q.drop()


def points(n: int, members: int = 7, offset: int = 0) -> list[dict[str, Any]]:
    """`n` id-less events over `members` members, values of both signs."""
    return [{"metric": "points", "member": f"m{(i + offset) % members}",
             "value": (i % 11) - 3} for i in range(n)]


def totals(events: list[dict[str, Any]]) -> dict[str, int]:
    found: Counter[str] = Counter()
    for e in events:
        found[e["member"]] += e.get("value", 1)
    return dict(found)


def board(tb: Any, metric: str = "points") -> dict[str, int]:
    if metric not in {m["metric"] for m in tb.metrics()}:
        return {}
    got = tb.leaderboard(metric, n=1000)
    return {e.member: e.score for e in got.entries}


def consume(tb: Any, urls: list[str], done: Callable[[Worker], bool], *,
            kept: KeptMessages | None = None, timeout: float = 60, settle: float = 0,
            **options: Any) -> Worker:
    """Run a worker in this process until `done(worker)` (then `settle` seconds more)."""
    async def run() -> Worker:
        worker = Worker(tb, [open_source(u) for u in urls], kept or open_kept("memory://"),
                        QueueMetrics(CollectorRegistry()), **options)
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        deadline = time.monotonic() + timeout
        while not done(worker):
            assert time.monotonic() < deadline, "the worker did not get there in time"
            assert not task.done(), task.result()
            await asyncio.sleep(0.02)
        await asyncio.sleep(settle)
        stop.set()
        await task
        return worker

    return asyncio.run(run())


def metric(worker: Worker, name: str) -> float:
    """A queue metric of `worker`, summed over its sources."""
    return sum(s.value for family in worker.metrics.registry.collect()
               for s in family.samples if s.name == name)


# ---- exactly once in effect ----------------------------------------------------------------

def test_batched_and_single_event_messages_count_exactly(queue: Queue) -> None:
    batched, single = points(5000), points(300, offset=3)
    with Publisher(queue.url()) as p:
        p.send_events(batched, per_message=1000)
        p.send_events(single, per_message=1)
    tb = tallyboard.open("memory://")
    expected = totals(batched + single)
    worker = consume(tb, [queue.url()], lambda w: board(tb) == expected, settle=0.5)
    assert board(tb) == expected
    assert metric(worker, "tallyboard_queue_consumed_messages_total") == 305
    assert metric(worker, "tallyboard_queue_applied_total") == 5300
    assert queue.waiting() == 0  # everything acked


def test_a_crash_between_the_durable_write_and_the_ack_counts_once(queue: Queue,
                                                                   monkeypatch: Any) -> None:
    """The first worker applies every message but dies before any ack (its acks never
    leave); the next one gets them all again and counts nothing twice."""
    events = points(3000)
    with Publisher(queue.url()) as p:
        p.send_events(events, per_message=100)
        p.send_events(points(40, offset=1), per_message=1)
    expected = totals(events + points(40, offset=1))
    tb = tallyboard.open("memory://")
    kept = open_kept("memory://")

    async def lost(self: Any, deliveries: Any) -> None:
        return None

    source_type = type(open_source(queue.url()))
    with monkeypatch.context() as m:
        m.setattr(source_type, "ack", lost)
        consume(tb, [queue.url()], lambda w: board(tb) == expected, kept=kept)
    again = consume(tb, [queue.url(consumer="second")],
                    lambda w: metric(w, "tallyboard_queue_duplicates_total") == 3040,
                    kept=kept, timeout=90)
    assert board(tb) == expected
    assert metric(again, "tallyboard_queue_applied_total") == 0
    assert metric(again, "tallyboard_queue_redelivered_messages_total") >= 70
    assert queue.waiting() == 0


def test_items_with_ids_count_once_across_messages(queue: Queue) -> None:
    """A producer's own ids win: the same event published twice counts once."""
    first = [{"metric": "points", "member": "ann", "value": 5, "id": "order-1"}]
    with Publisher(queue.url()) as p:
        p.send_events(first)
        p.send_events([*first, {"metric": "points", "member": "bob", "value": 2}])
    tb = tallyboard.open("memory://")
    consume(tb, [queue.url()], lambda w: board(tb) == {"ann": 5, "bob": 2}, settle=0.3)
    assert board(tb) == {"ann": 5, "bob": 2}


def test_presence_messages_are_applied(queue: Queue) -> None:
    ops = [{"type": "join", "room": "library", "member": "ann", "ts": 1_700_000_000},
           {"type": "leave", "room": "library", "member": "ann", "ts": 1_700_000_600},
           {"type": "snapshot", "room": "gym", "members": ["bob", "cy"],
            "ts": 1_700_000_100}]
    with Publisher(queue.url()) as p:
        p.send([orjson.dumps(ops[:2]), orjson.dumps(ops[2]),
                b'{"metric": "points", "member": "ann", "value": 1}\n'
                b'{"type": "join", "room": "gym", "member": "dee", "ts": 1700000200}\n'])
    tb = tallyboard.open("memory://")
    consume(tb, [queue.url()], lambda w: tb.events_total >= 1 and
            len(tb.room("gym")["members"]) == 3)
    assert [s["seconds"] for s in tb.sessions("ann", start=1_699_999_000,
                                              end=1_700_001_000)] == [600]
    assert sorted(m["member"] for m in tb.room("gym")["members"]) == ["bob", "cy", "dee"]
    assert board(tb) == {"ann": 1}


# ---- bad messages ----------------------------------------------------------------------------

POISON = {
    b"": "the message is empty",
    b"{not json": "not valid JSON",
    b"[]": "holds no events",
    b'[{"metric": "points", "member": "x"}, {"metric": "points", "member": "x", '
    b'"value": "3"}]': "value must be a JSON integer (no floats, strings or booleans) "
                       "(item 1, field value)",
    b'{"metric": "points", "member": "x", "colour": "red"}': "unknown field",
    b'{"type": "hop", "room": "r", "member": "x"}': "type must be",
    b'{"metric": "points", "member": "x", "ts": 99999999999}': "in the future (item 0, field ts)",
    orjson.dumps([{"metric": "p", "member": "x"}] * 10_001): "10001 items in one message",
}


def test_poison_messages_are_kept_and_never_block_the_stream(queue: Queue) -> None:
    good = points(2000)
    bodies = []
    for i, bad in enumerate(POISON):
        bodies.append(orjson.dumps(good[i * 200:(i + 1) * 200]))
        bodies.append(bad)
    bodies.append(orjson.dumps(good[1600:]))
    with Publisher(queue.url()) as p:
        p.send(bodies)
    tb = tallyboard.open("memory://")
    kept = open_kept("memory://")
    worker = consume(tb, [queue.url()], lambda w: board(tb) == totals(good) and
                     len(kept.errors()) == len(POISON), kept=kept, settle=0.3)
    assert board(tb) == totals(good)
    found = {k.body: k for k in kept.errors()}
    assert set(found) == set(POISON)
    for body, why in POISON.items():
        assert why in found[body].reason, (body[:40], found[body].reason)
        assert found[body].source == open_source(queue.url()).name
    assert metric(worker, "tallyboard_queue_invalid_messages_total") == len(POISON)
    assert queue.waiting() == 0  # acked off the stream, as kept


def test_a_kept_message_is_replayed_after_a_fix(queue: Queue, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from tallyboard.cli import main

    with Publisher(queue.url()) as p:
        p.send([b'{"metric": "points", "member": "ann", "value": 4, "ts": "yesterday"}'])
    tb = tallyboard.open("memory://")
    kept = open_kept(str(tmp_path))
    consume(tb, [queue.url()], lambda w: len(kept.errors()) == 1, kept=kept)
    (row,) = kept.errors()
    fixed = row.body.replace(b'"ts": "yesterday", ', b"").replace(b', "ts": "yesterday"', b"")
    with kept._transaction() as db:  # the operator's fix, in place
        db.execute("UPDATE ingest_errors SET body = ? WHERE id = ?", (fixed, row.id))
    runner = CliRunner()
    listed = runner.invoke(main, ["errors", "--kind", "ingest", "--data", str(tmp_path),
                                  "--json"])
    assert listed.exit_code == 0, listed.output
    assert orjson.loads(listed.output)["errors"][0]["origin"] == row.origin
    to = [] if "***" not in row.source else ["--to", queue.url()]
    done = runner.invoke(main, ["errors", "--kind", "ingest", "--data", str(tmp_path),
                                "--replay", str(row.id), *to])
    assert done.exit_code == 0, done.output
    consume(tb, [queue.url()], lambda w: board(tb) == {"ann": 4}, kept=kept)
    twice = runner.invoke(main, ["errors", "--kind", "ingest", "--data", str(tmp_path),
                                 "--replay", str(row.id), *to])
    assert twice.exit_code != 0 and "replayed already" in twice.output
    kept.close()


# ---- processes: kill -9, several workers, a broker restart, backpressure -------------------

def worker_process(tmp_path: Path, name: str, *args: str) -> ServerProcess:
    proc = ServerProcess(tmp_path / name, *args, command="worker")
    proc.start()
    return proc


def http_board(url: str) -> dict[str, int]:
    got = httpx.get(url + "/v1/leaderboard", params={"metric": "points", "n": 1000},
                    timeout=10).json()
    return {e["member"]: e["score"] for e in got.get("entries", [])}


def scraped(url: str, name: str) -> float:
    text = httpx.get(url + "/metrics", timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name + "{"))


def wait_for(check: Callable[[], bool], timeout: float = 120, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_kill_9_mid_batch_then_restart_counts_every_event_once(queue: Queue,
                                                               tmp_path: Path) -> None:
    events = points(300_000, members=50)
    with Publisher(queue.url()) as p:
        p.send_events(events, per_message=1000)
    expected = totals(events)
    first = worker_process(tmp_path, "data", "--from", queue.url(), "--batch", "5")
    try:
        wait_for(lambda: scraped(first.url, "tallyboard_queue_applied_total") >= 30_000,
                 what="the first batches")
        first.kill9()
        assert http_board_or_none(first.url) is None
        second = worker_process(tmp_path, "data", "--from", queue.url(), "--batch", "5")
        try:
            wait_for(lambda: http_board(second.url) == expected, what="every event")
            time.sleep(0.5)
            assert http_board(second.url) == expected
            # what the first held unacked came again, and counted nothing twice
            assert scraped(second.url, "tallyboard_queue_redelivered_messages_total") >= 1
            wait_for(lambda: queue.waiting() == 0, 30, "the acks")
        finally:
            second.stop()
    finally:
        first.stop()


def http_board_or_none(url: str) -> dict[str, int] | None:
    try:
        return http_board(url)
    except httpx.TransportError:
        return None


@pytest.mark.parametrize("workers", [2, 4])
def test_workers_sharing_redis_and_postgres_count_each_event_once(
        queue: Queue, workers: int, tmp_path: Path) -> None:
    from pg_support import PgDatabase

    db = PgDatabase()
    prefix = f"tbq{os.getpid()}{workers}{queue.kind}"
    shared = ("--store", "redis://127.0.0.1:6379/0", "--store-prefix", prefix,
              "--log", db.url, "--batch", "20")
    events = points(200_000, members=40)
    with Publisher(queue.url()) as p:
        p.send_events(events, per_message=500)
        p.send_events(points(2000, members=40, offset=5), per_message=1)
    expected = totals(events + points(2000, members=40, offset=5))
    running = []
    try:
        for i in range(workers):
            running.append(worker_process(tmp_path, f"w{i}", "--from", queue.url(), *shared))
        wait_for(lambda: http_board(running[0].url) == expected, 180, "every event")
        time.sleep(1)
        for w in running:
            assert http_board(w.url) == expected
        applied = [scraped(w.url, "tallyboard_queue_applied_total") for w in running]
        assert sum(applied) == 202_000  # no event applied twice
        assert sum(1 for a in applied if a > 0) >= 2, applied  # the work was shared
    finally:
        for w in running:
            w.stop()
        db.drop()
        import redis

        with redis.Redis() as r:
            keys = list(r.scan_iter(f"{prefix}*", count=1000))
            if keys:
                r.delete(*keys)


@pytest.mark.parametrize("kind", BROKERS)
def test_a_broker_restart_while_consuming_loses_and_doubles_nothing(kind: str,
                                                                   tmp_path: Path) -> None:
    broker = OwnBroker(kind)
    broker.start()
    try:
        q = Queue(kind, broker.host)
        events, later = points(100_000, members=30), points(20_000, members=30, offset=2)
        with Publisher(q.url()) as p:
            p.send_events(events, per_message=200)
        proc = worker_process(tmp_path, "data", "--from", q.url(), "--batch", "2")
        try:
            wait_for(lambda: scraped(proc.url, "tallyboard_queue_applied_total") >= 5000,
                     what="consuming")
            broker.stop()
            wait_for(lambda: httpx.get(proc.url + "/readyz", timeout=5).status_code == 503,
                     30, "/readyz to say the broker is down")
            assert "not_ready" in httpx.get(proc.url + "/readyz", timeout=5).text
            broker.start()
            with Publisher(q.url()) as p:
                p.send_events(later, per_message=200)
            wait_for(lambda: http_board(proc.url) == totals(events + later), 180,
                     "every event after the restart")
            assert httpx.get(proc.url + "/readyz", timeout=5).status_code == 200
            assert scraped(proc.url, "tallyboard_queue_reconnects_total") >= 1
        finally:
            proc.stop()
    finally:
        broker.remove()


def test_a_burst_bigger_than_memory_waits_in_the_broker(queue: Queue, tmp_path: Path) -> None:
    """400 MB of messages (900 KB each, under NATS's 1 MB limit; mostly JSON whitespace)
    against a worker taking 4 at a time: the worker's peak memory stays far below the
    burst, and every event counts."""
    pad = b" " * 900_000
    bodies = [b"[" + pad + orjson.dumps({"metric": "points", "member": f"m{i % 9}",
                                         "value": i % 5}) + b"]" for i in range(450)]
    with Publisher(queue.url()) as p:
        for at in range(0, len(bodies), 20):
            p.send(bodies[at:at + 20])
    expected = Counter[str]()
    for i in range(450):
        expected[f"m{i % 9}"] += i % 5
    proc = worker_process(tmp_path, "data", "--from", queue.url(), "--batch", "4")
    try:
        wait_for(lambda: http_board(proc.url) == {k: v for k, v in expected.items() if v},
                 180, "every event")
        assert proc.proc is not None
        peak_kb = int(next(line.split()[1] for line in
                           Path(f"/proc/{proc.proc.pid}/status").read_text().splitlines()
                           if line.startswith("VmHWM:")))
        assert peak_kb < 250_000, f"peak RSS {peak_kb} KB for a 400 MB burst"
    finally:
        proc.stop()


# ---- the command line --------------------------------------------------------------------

def test_a_worker_beside_a_server_writes_through_it(server: ServerProcess,
                                                    tmp_path: Path) -> None:
    """`--url`: the server owns the embedded data; the worker posts to it."""
    q = Queue("redis")
    try:
        events = points(4000)
        with Publisher(q.url()) as p:
            p.send_events(events, per_message=250)
            p.send([b"{oops"])
        worker = worker_process(tmp_path, "worker-data", "--from", q.url(), "--url",
                                server.url)
        try:
            wait_for(lambda: http_board(server.url) == totals(events), 60, "every event")
            listed = httpx.get(worker.url + "/v1/ingest/errors", timeout=10).json()["errors"]
            assert [e["body"] for e in listed] == ["{oops"]
            assert listed[0]["reason"].startswith("the message is not valid JSON")
        finally:
            worker.stop()
    finally:
        q.drop()


def test_ingest_to_a_queue_publishes_the_file(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from tallyboard.cli import main

    q = Queue("nats")
    try:
        events = points(2500)
        path = tmp_path / "points.ndjson"
        path.write_bytes(b"\n".join(orjson.dumps(e) for e in events) + b"\n{bad\n")
        got = CliRunner().invoke(main, ["ingest", str(path), "--batch-size", "1000",
                                        "--to", q.url()])
        assert got.exit_code == 1, got.output  # the bad line is reported
        assert "published 2,500 events in 3 messages" in got.output
        assert "line 2501" in got.output
        tb = tallyboard.open("memory://")
        consume(tb, [q.url()], lambda w: board(tb) == totals(events), settle=0.3)
        assert board(tb) == totals(events)
    finally:
        q.drop()


def test_a_bad_queue_url_is_a_usage_error() -> None:
    from click.testing import CliRunner

    from tallyboard.cli import main

    got = CliRunner().invoke(main, ["worker", "--from", "kafka://127.0.0.1/topic"])
    assert got.exit_code == 2 and "unsupported queue URL" in got.output
    got = CliRunner().invoke(main, ["worker", "--from", "nats://127.0.0.1:4222/ONLY"])
    assert got.exit_code == 2 and "nats://host:4222/STREAM/SUBJECT" in got.output


def test_a_mixed_message_replayed_after_a_fix_counts_its_events_once(tmp_path: Path) -> None:
    """Its events go in; its presence, out of order, is refused: the message is kept. The
    fixed message, replayed, carries the ids of its first delivery: the events count once."""
    from click.testing import CliRunner

    from tallyboard.cli import main

    q = Queue("redis")
    try:
        tb = tallyboard.open("memory://")
        tb.presence([{"type": "join", "room": "gym", "member": "ann", "ts": 1_700_000_500}])
        mixed = [{"metric": "points", "member": "ann", "value": 3},
                 {"type": "leave", "room": "gym", "member": "ann", "ts": 1_700_000_100}]
        with Publisher(q.url()) as p:
            p.send([orjson.dumps(mixed)])
        kept = open_kept(str(tmp_path))
        consume(tb, [q.url()], lambda w: len(kept.errors()) == 1, kept=kept)
        (row,) = kept.errors()
        assert "out_of_order" in row.reason and "item 1" in row.reason
        assert board(tb) == {"ann": 3}
        fixed = orjson.dumps([mixed[0], {**mixed[1], "ts": 1_700_000_900}])
        with kept._transaction() as db:
            db.execute("UPDATE ingest_errors SET body = ? WHERE id = ?", (fixed, row.id))
        done = CliRunner().invoke(main, ["errors", "--kind", "ingest", "--data",
                                         str(tmp_path), "--replay", str(row.id)])
        assert done.exit_code == 0, done.output
        consume(tb, [q.url()], lambda w: not tb.room("gym")["members"], kept=kept,
                settle=0.3)
        assert board(tb) == {"ann": 3}  # not 6
        assert [s["seconds"] for s in tb.sessions("ann", start=1_700_000_000,
                                                  end=1_700_001_000)] == [400]
        kept.close()
    finally:
        q.drop()
