"""Live workload: reads while events stream in, beside the seed's Redis sorted sets; presence
at the sizes a Twitch tracker needs.

Issue 13 measured reads that pay for the writes before them. This workload puts numbers on
it, against public APIs only (HTTP, `tallyboard.open`), so it measures whatever the engine
does inside:

* **HTTP under ingest.** `tallyboard serve` (embedded store, its own data directory)
  gets a history of events (the last 7 days), then live events (ts = now, 1,000 per
  request) from a paced writer in a process of its own at 10,000 and 50,000 events/s,
  while 1, 10 and 100 readers in this process (one thread and keep-alive connection
  each, one read every 20 ms, as issue 13's dashboard) ask in turn: top-10 of day, week,
  rolling:24h and all, a member's rank and a member's sum. Load 0 is the same server and
  data with no writer. 100 readers ask more than 2 cores answer: that level shows
  overload.
* **The seed design under the same load**: one sorted set per window (all, day, week,
  and hours, whose last 24 are unioned for rolling:24h), a ZINCRBY per event and key
  from a paced writer process, read with ZREVRANGE WITHSCORES, ZREVRANK and ZSCORE.
* **In-process**: one reader thread (back to back) on a `Tallyboard` while another
  thread records 100,000 events/s (`record_columns`, 10,000 per call), and the same
  reads at rest.
* **Presence**: a 100,000-member snapshot applied over HTTP and in-process, reads of
  the presence board and the room list during it, RSS per open session, and the
  restart after 1M presence changes (kill -9, then a clean close), in fresh processes.

Sizes and durations follow `scale`; rates and reader counts do not (they are the
targets' conditions).

    python -m tallyboard.bench.live --child sessions --data DIR --sessions N --changes M
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing
import random
import resource
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import numpy as np
import orjson
import redis

from .. import open as open_board
from ..engine import Tallyboard
from ..heap import tune_gc
from .measure import Progress, Server, report, rss_bytes
from .redis_baselines import clear_prefix, prefix_keys

METRIC = "live"
MEMBERS = 5_000
CHANNELS = 20
BATCH = 1_000
HISTORY = 200_000  # events over the last 7 days, at scale 1
HISTORY_DAYS = 7
RATES = (10_000, 50_000)  # HTTP ingest levels, events/s
READERS = (1, 10, 100)
WRITER_CONNECTIONS = 2  # a live source is more than one client; 2 keep a slow answer
#                         from stalling the whole rate
READ_INTERVAL = 0.02  # each HTTP reader asks every 20 ms, the dashboard of issue 13: back
#                       to back, 10 readers would measure the server's capacity instead
CELL_SECONDS = 8.0  # timed reads per (load, readers), at scale 1
WARM_SECONDS = 2.0  # a writer runs this long before reads are timed
IN_PROCESS_RATE = 100_000
IN_PROCESS_BATCH = 10_000
KINDS = ("top10 day", "top10 week", "top10 rolling:24h", "top10 all", "rank", "sum")
SNAPSHOT = 100_000  # members in one snapshot, at scale 1
CHURN = 0.1  # share of a snapshot's members replaced in the snapshots after the first
SNAPSHOTS = 4  # one into an empty room, then churned ones
SESSIONS = 200_000  # open sessions for the RSS figure (the target is for 2,000,000)
CHANGES = 1_000_000  # presence changes before the restart, at scale 1
ROOMS = 1_000
PRESENCE_METRIC = "presence_seconds"
DAY = 86_400
HOUR = 3_600
MB = 1 << 20


def run_live(tmp: Path, scale: float, redis_url: str | None,
             progress: Progress) -> dict[str, Any]:
    """Every part above as one JSON-able dict (the seed part only with `redis_url`)."""
    now = int(time.time())
    history = _history(max(10_000, int(HISTORY * scale)), now)
    cell = max(0.5, CELL_SECONDS * scale)
    warm = max(0.3, WARM_SECONDS * scale)
    out: dict[str, Any] = {
        "members": MEMBERS, "channels": CHANNELS, "history_events": len(history["ts"]),
        "batch": BATCH, "cell_seconds": cell, "switch_interval_ms":
            sys.getswitchinterval() * 1e3}
    out["http"] = _http_live(tmp / "http", history, cell, warm, progress)
    if redis_url:
        out["seed"] = _seed_live(redis_url, history, cell, warm, progress)
    else:
        out["seed"] = None
    out["in_process"] = _in_process(tmp / "in-process", history, cell, progress)
    size = max(1_000, int(SNAPSHOT * scale))
    out["snapshot_http"] = _snapshot_http(tmp / "presence-http", size, cell, progress)
    out["snapshot_in_process"] = _snapshot_in_process(tmp / "presence-in-process", size,
                                                      progress)
    sessions = max(1_000, int(SESSIONS * scale))
    out["sessions"] = _sessions(tmp / "sessions", sessions,
                                max(2 * sessions, int(CHANGES * scale)), progress)
    return out


# ---- events --------------------------------------------------------------------------------
NAMES = [f"u{i}" for i in range(MEMBERS)]
CHANNEL_NAMES = [f"c{i}" for i in range(CHANNELS)]


def _history(count: int, now: int) -> dict[str, np.ndarray[Any, Any]]:
    """`count` events over the last 7 days from a fixed seed; every member appears."""
    rng = np.random.default_rng(13)
    member = rng.integers(0, MEMBERS, size=count)
    member[:MEMBERS] = np.arange(min(MEMBERS, count))
    return {"member": member, "value": rng.integers(1, 11, size=count),
            "channel": rng.integers(0, CHANNELS, size=count),
            "ts": np.sort(rng.integers(now - HISTORY_DAYS * DAY, now, size=count))}


def _rows(member: Any, value: Any, channel: Any, ts: Any) -> list[dict[str, Any]]:
    """Events as the dicts an HTTP client sends."""
    return [{"metric": METRIC, "member": NAMES[m], "value": int(v), "ts": int(t),
             "tags": {"channel": CHANNEL_NAMES[c]}}
            for m, v, c, t in zip(member, value, channel, ts, strict=True)]


def _batches(history: dict[str, np.ndarray[Any, Any]]) -> Iterator[tuple[Any, ...]]:
    for lo in range(0, len(history["ts"]), BATCH):
        yield tuple(history[k][lo:lo + BATCH] for k in ("member", "value", "channel", "ts"))


# ---- HTTP ------------------------------------------------------------------------------------
class Http:
    """One keep-alive connection with the least client work (http.client): the latency a
    reader sees is then mostly the server's."""

    def __init__(self, url: str, timeout: float = 600) -> None:
        parts = urlsplit(url)
        self.conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port,
                                               timeout=timeout)

    def ask(self, method: str, path: str, body: bytes | None = None) -> tuple[int, float]:
        """(status, seconds to wait before a retry: Retry-After on 429/503, else 0)."""
        headers = {"content-type": "application/json"} if body is not None else {}
        self.conn.request(method, path, body=body, headers=headers)
        got = self.conn.getresponse()
        data = got.read()
        if got.status in (429, 503):
            return got.status, min(5.0, float(got.headers.get("retry-after") or 1))
        if got.status >= 400:
            raise RuntimeError(f"{method} {path}: {got.status} {data[:300]!r}")
        return got.status, 0.0

    def json(self, path: str) -> Any:
        """GET `path`'s JSON answer (checks only: no retry)."""
        self.conn.request("GET", path)
        got = self.conn.getresponse()
        data = got.read()
        if got.status != 200:
            raise RuntimeError(f"GET {path}: {got.status} {data[:300]!r}")
        return orjson.loads(data)

    def send(self, method: str, path: str, body: bytes | None = None) -> int:
        """The request until it is taken, waiting as told between tries; tries refused."""
        refused = 0
        while True:
            status, wait = self.ask(method, path, body)
            if status < 400:
                return refused
            refused += 1
            time.sleep(wait)

    def close(self) -> None:
        self.conn.close()


def _http_paths(kind: str, member: str) -> str:
    if kind.startswith("top10 "):
        return f"/v1/leaderboard?metric={METRIC}&n=10&window={quote(kind[6:])}"
    return f"/v1/{kind}?metric={METRIC}&member={quote(member)}"


class HttpReader:
    """A reader thread's calls over its own connection."""

    def __init__(self, url: str) -> None:
        self.http = Http(url, timeout=120)

    def __call__(self, kind: str, member: str) -> float | None:
        """None when answered, else the Retry-After of a refusal."""
        status, wait = self.http.ask("GET", _http_paths(kind, member))
        return wait if status >= 400 else None

    def close(self) -> None:
        self.http.close()


def _totals(history: dict[str, Any]) -> np.ndarray[Any, Any]:
    """Every member's all-time total of the history, by brute force."""
    return np.bincount(history["member"], weights=history["value"], minlength=MEMBERS)


def _http_live(tmp: Path, history: dict[str, Any], cell: float, warm: float,
               progress: Progress) -> dict[str, Any]:
    tmp.mkdir(parents=True)
    server = Server(tmp / "data")
    try:
        admin = Http(server.url)
        admin.send("PUT", f"/v1/metrics/{METRIC}", orjson.dumps({"dimensions": ["channel"]}))
        started = time.perf_counter()
        done = 0
        for cols in _batches(history):
            admin.send("POST", "/v1/events", orjson.dumps(_rows(*cols)))
            done += len(cols[0])
            progress("live: HTTP history load", done, len(history["ts"]))
        load_s = time.perf_counter() - started
        totals = _totals(history)
        board = admin.json(f"/v1/leaderboard?metric={METRIC}&n=10")
        assert [e["score"] for e in board["entries"]] == sorted(totals.tolist(),
                                                                reverse=True)[:10]
        for i in (0, MEMBERS - 1):
            assert admin.json(_http_paths("sum", NAMES[i]))["sum"] == totals[i], NAMES[i]
        for kind in KINDS:  # the first look at each board is not a live read
            admin.ask("GET", _http_paths(kind, NAMES[0]))
        admin.close()
        levels = _levels(lambda: HttpReader(server.url), "http", server.url, "", cell, warm,
                         "live: HTTP reads", progress)
    finally:
        server.stop()
    return {"history_load_s": load_s, "levels": levels}


# ---- the seed design on Redis ----------------------------------------------------------------
def _buckets(ts: int) -> tuple[int, int, int]:
    """UTC day, Monday week and hour starts holding `ts` (tallyboard's default calendar)."""
    day = ts - ts % DAY
    return day, day - (day // DAY + 3) % 7 * DAY, ts - ts % HOUR


def _bulk(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return b"$%d\r\n%s\r\n" % (len(raw), raw)


class SeedWriter:
    """The seed's write: ZINCRBY member by value into the all, day, week and hour sorted
    sets, per event, sent as one pipelined round trip per batch. Commands are packed
    here rather than by redis-py so the writer's Python is not what limits the rate."""

    ZINCRBY = b"*4\r\n$7\r\nZINCRBY\r\n"

    def __init__(self, url: str, prefix: str) -> None:
        self.client = redis.Redis.from_url(url)
        self.conn = self.client.connection_pool.get_connection()
        self.prefix = prefix
        self.members = [_bulk(n) for n in NAMES]
        self.values = [_bulk(str(v)) for v in range(11)]
        self.keys: dict[str, bytes] = {}

    def _key(self, name: str) -> bytes:
        got = self.keys.get(name)
        if got is None:
            got = self.keys[name] = _bulk(f"{self.prefix}:{name}")
        return got

    def record(self, member: Any, value: Any, channel: Any, ts: Any) -> None:
        del channel  # no read asks per channel, so the seed keeps no per-channel sets
        parts: list[bytes] = []
        everything = self._key("all")
        for m, v, t in zip(member.tolist(), value.tolist(), ts.tolist(), strict=True):
            day, week, hour = _buckets(t)
            tail = self.values[v] + self.members[m]
            for key in (everything, self._key(f"day:{day}"), self._key(f"week:{week}"),
                        self._key(f"hour:{hour}")):
                parts += (self.ZINCRBY, key, tail)
        self.conn.send_packed_command([b"".join(parts)])  # type: ignore[no-untyped-call]
        for _ in range(len(parts) // 3):
            self.conn.read_response()

    def close(self) -> None:
        self.client.connection_pool.release(self.conn)
        self.client.close()


class SeedReader:
    """The seed's reads: ZREVRANGE WITHSCORES of a window's set (rolling:24h: a ZUNIONSTORE
    of the last 24 hour sets first, in the same round trip), ZREVRANK, ZSCORE."""

    def __init__(self, url: str, prefix: str) -> None:
        self.client = redis.Redis.from_url(url)
        self.prefix = prefix
        self.tmp = f"{prefix}:tmp:{uuid.uuid4().hex[:8]}"

    def __call__(self, kind: str, member: str) -> float | None:
        p = self.prefix
        day, week, hour = _buckets(int(time.time()))
        if kind == "top10 rolling:24h":
            pipe = self.client.pipeline(transaction=False)
            pipe.zunionstore(self.tmp, [f"{p}:hour:{hour - i * HOUR}" for i in range(24)])
            pipe.zrevrange(self.tmp, 0, 9, withscores=True)
            pipe.execute()
        elif kind.startswith("top10 "):
            key = {"top10 day": f"day:{day}", "top10 week": f"week:{week}",
                   "top10 all": "all"}[kind]
            self.client.zrevrange(f"{p}:{key}", 0, 9, withscores=True)
        elif kind == "rank":
            self.client.zrevrank(f"{p}:all", member)
        else:
            self.client.zscore(f"{p}:all", member)
        return None

    def close(self) -> None:
        self.client.close()


def _seed_live(url: str, history: dict[str, Any], cell: float, warm: float,
               progress: Progress) -> dict[str, Any]:
    prefix = f"tblive-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        writer = SeedWriter(url, prefix)
        started = time.perf_counter()
        done = 0
        for cols in _batches(history):
            writer.record(*cols)
            done += len(cols[0])
            progress("live: seed history load", done, len(history["ts"]))
        load_s = time.perf_counter() - started
        writer.close()
        _check_seed(client, prefix, history)
        levels = _levels(lambda: SeedReader(url, prefix), "redis", url, prefix, cell, warm,
                         "live: seed reads", progress)
    finally:
        clear_prefix(client, prefix)
        left = prefix_keys(client, prefix)
        client.close()
    return {"history_load_s": load_s, "levels": levels, "keys_left": left}


def _check_seed(client: redis.Redis, prefix: str, history: dict[str, Any]) -> None:
    """The seed's sets hold the history exactly (totals and top scores, brute force)."""
    totals = _totals(history)
    for i in (0, 1, MEMBERS // 2, MEMBERS - 1):
        assert float(client.zscore(f"{prefix}:all", NAMES[i]) or 0) == totals[i], NAMES[i]
    rows = client.zrevrange(f"{prefix}:all", 0, 9, withscores=True)
    top = [float(row[1]) for row in rows if isinstance(row, tuple)]
    assert top == sorted(totals.tolist(), reverse=True)[:10], "seed top-10 scores"


# ---- paced writers and timed readers ----------------------------------------------------------
def paced(stop: Any, interval: float, offset: float = 0.0) -> Iterator[None]:
    """Ticks until `stop` is set: the first at once, then on a clock of `interval` seconds
    shifted by `offset` (writers sharing a rate interleave); a writer more than a second
    behind drops the lost time instead of bursting."""
    next_at = time.perf_counter() + offset
    while not stop.is_set():
        yield
        next_at += interval
        delay = next_at - time.perf_counter()
        if delay > 0:
            stop.wait(delay)
        elif delay < -1.0:
            next_at = time.perf_counter()


def paced_writer(kind: str, url: str, prefix: str, rate: float, sent: Any, refused: Any,
                 stop: Any) -> None:
    """Write live events (ts = now) at `rate` events/s over WRITER_CONNECTIONS connections
    until `stop` is set, counting what was taken (`sent`) and refused (`refused`, batches).
    A writer that falls more than a second behind drops the lost time instead of bursting;
    the caller reports the rate reached."""
    failures: list[BaseException] = []

    def one(index: int) -> None:
        rng = np.random.default_rng(100 + index)
        http = Http(url) if kind == "http" else None
        seed = SeedWriter(url, prefix) if kind == "redis" else None
        interval = BATCH * WRITER_CONNECTIONS / rate
        try:
            for _ in paced(stop, interval, index * interval / WRITER_CONNECTIONS):
                ts = np.full(BATCH, int(time.time()))
                cols = (rng.integers(0, MEMBERS, BATCH), rng.integers(1, 11, BATCH),
                        rng.integers(0, CHANNELS, BATCH), ts)
                if http is not None:
                    tries = http.send("POST", "/v1/events", orjson.dumps(_rows(*cols)))
                    with refused.get_lock():
                        refused.value += tries
                elif seed is not None:
                    seed.record(*cols)
                with sent.get_lock():
                    sent.value += BATCH
        except BaseException as exc:
            failures.append(exc)
            stop.set()
        finally:
            if http is not None:
                http.close()
            if seed is not None:
                seed.close()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(WRITER_CONNECTIONS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        raise failures[0]


@contextmanager
def writing(kind: str, url: str, prefix: str, rate: float) -> Iterator[Callable[[], int]]:
    """A paced writer process for the duration; yields a reader of its events so far."""
    ctx = multiprocessing.get_context("spawn")
    sent, refused, stop = ctx.Value("q", 0), ctx.Value("q", 0), ctx.Event()
    proc = ctx.Process(target=paced_writer, args=(kind, url, prefix, rate, sent, refused, stop))
    proc.start()
    try:
        yield lambda: int(sent.value)
    finally:
        stop.set()
        proc.join(60)
        if proc.is_alive():
            proc.kill()
            proc.join()
    if proc.exitcode != 0:
        raise RuntimeError(f"the {kind} writer exited with {proc.exitcode}")


def summary(seconds: list[float]) -> dict[str, float]:
    """p50/p99/max in milliseconds and the count of `seconds`."""
    if not seconds:
        return {"p50_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0, "calls": 0}
    a = np.asarray(seconds) * 1e3
    return {"p50_ms": float(np.percentile(a, 50)), "p99_ms": float(np.percentile(a, 99)),
            "max_ms": float(a.max()), "calls": len(a)}


def read_cell(make: Callable[[], Any], readers: int, seconds: float,
              interval: float = READ_INTERVAL) -> dict[str, Any]:
    """`readers` threads, each over its own reader, asking KINDS in turn (each starting at
    another kind) for `seconds`, one read per `interval` each (staggered; a late read is
    followed at once, never by a burst; 0: back to back); per-kind and overall latency."""
    made = [make() for _ in range(readers)]
    for r in made:
        r("top10 all", NAMES[0])  # connected before the clock starts
    times: list[dict[str, list[float]]] = [{k: [] for k in KINDS} for _ in range(readers)]
    refusals = [0] * readers
    gate = threading.Barrier(readers + 1)
    deadline = [0.0]

    def run(j: int) -> None:
        rng = random.Random(j)
        mine, call, turn = times[j], made[j], j
        gate.wait()
        next_at = time.perf_counter() + interval * j / readers
        while True:
            delay = next_at - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            t0 = time.perf_counter()
            if t0 >= deadline[0]:
                break
            next_at = max(next_at + interval, t0)
            kind = KINDS[turn % len(KINDS)]
            turn += 1
            wait = call(kind, NAMES[rng.randrange(MEMBERS)])
            if wait is None:
                mine[kind].append(time.perf_counter() - t0)
            else:
                refusals[j] += 1
                time.sleep(wait)

    threads = [threading.Thread(target=run, args=(j,)) for j in range(readers)]
    for t in threads:
        t.start()
    started = time.perf_counter()
    deadline[0] = started + seconds
    gate.wait()
    for t in threads:
        t.join()
    took = time.perf_counter() - started
    for r in made:
        r.close()
    kinds = {k: summary([x for m in times for x in m[k]]) for k in KINDS}
    every = summary([x for m in times for k in KINDS for x in m[k]])
    return {"readers": readers, "seconds": took, "reads": every["calls"],
            "reads_per_s": every["calls"] / took, "refused": sum(refusals),
            "p50_ms": every["p50_ms"], "p99_ms": every["p99_ms"], "kinds": kinds}


def _levels(make: Callable[[], Any], kind: str, url: str, prefix: str, cell: float,
            warm: float, label: str, progress: Progress) -> list[dict[str, Any]]:
    """Every reader count at rest, then under each paced write rate."""
    out: list[dict[str, Any]] = []
    total = (1 + len(RATES)) * len(READERS)

    def cells(rate: int, sent: Callable[[], int]) -> None:
        for readers in READERS:
            before, t0 = sent(), time.perf_counter()
            found = read_cell(make, readers, cell)
            achieved = (sent() - before) / (time.perf_counter() - t0)
            out.append({"rate": rate, "events_per_s": achieved, **found})
            progress(label, len(out), total)

    cells(0, lambda: 0)
    for rate in RATES:
        with writing(kind, url, prefix, rate) as sent:
            time.sleep(warm)
            cells(rate, sent)
    return out


# ---- in-process --------------------------------------------------------------------------------
class EngineReader:
    """The same reads as calls on an engine in this process."""

    def __init__(self, tb: Tallyboard) -> None:
        self.tb = tb

    def __call__(self, kind: str, member: str) -> float | None:
        if kind.startswith("top10 "):
            self.tb.leaderboard(METRIC, window=kind[6:])
        elif kind == "rank":
            self.tb.rank(METRIC, member)
        else:
            self.tb.sum(METRIC, member)
        return None

    def close(self) -> None:
        """Nothing to close: the engine is the caller's."""


def _in_process(tmp: Path, history: dict[str, Any], cell: float,
                progress: Progress) -> dict[str, Any]:
    tb = open_board(str(tmp))
    assert isinstance(tb, Tallyboard)
    try:
        tb.set_metric(METRIC, {"dimensions": ["channel"]})
        count = len(history["ts"])
        for lo in range(0, count, 100_000):
            sl = slice(lo, lo + 100_000)
            tb.record_columns(METRIC, [NAMES[m] for m in history["member"][sl]],
                              history["value"][sl], history["ts"][sl],
                              tags={"channel": [CHANNEL_NAMES[c]
                                                for c in history["channel"][sl]]})
        reader = EngineReader(tb)
        for kind in KINDS:
            reader(kind, NAMES[0])
        rest = read_cell(lambda: reader, 1, cell, interval=0)
        progress("live: in-process reads", 1, 2)
        stop = threading.Event()
        sent = [0]

        def write() -> None:
            rng = np.random.default_rng(7)
            for _ in paced(stop, IN_PROCESS_BATCH / IN_PROCESS_RATE):
                tb.record_columns(
                    METRIC, [NAMES[m] for m in rng.integers(0, MEMBERS, IN_PROCESS_BATCH)],
                    rng.integers(1, 11, IN_PROCESS_BATCH),
                    np.full(IN_PROCESS_BATCH, int(time.time())),
                    tags={"channel": [CHANNEL_NAMES[c] for c in
                                      rng.integers(0, CHANNELS, IN_PROCESS_BATCH)]})
                sent[0] += IN_PROCESS_BATCH

        writer = threading.Thread(target=write)
        writer.start()
        try:
            time.sleep(min(1.0, cell / 4))
            before, t0 = sent[0], time.perf_counter()
            busy = read_cell(lambda: reader, 1, cell, interval=0)
            achieved = (sent[0] - before) / (time.perf_counter() - t0)
        finally:
            stop.set()
            writer.join()
        progress("live: in-process reads", 2, 2)
    finally:
        tb.close()
    return {"rate": IN_PROCESS_RATE, "batch": IN_PROCESS_BATCH, "rest": rest,
            "written": sent[0], "busy": {"events_per_s": achieved, **busy}}


# ---- presence --------------------------------------------------------------------------------
def _snapshots(size: int) -> list[list[str]]:
    """The first snapshot's members, then each next one with CHURN of them replaced."""
    members = [f"v{i}" for i in range(size)]
    out = [members]
    fresh = size
    rng = random.Random(17)
    for _ in range(SNAPSHOTS - 1):
        members = list(members)
        for i in rng.sample(range(size), int(size * CHURN)):
            members[i] = f"v{fresh}"
            fresh += 1
        out.append(members)
    return out


def _snapshot_body(members: list[str]) -> bytes:
    return orjson.dumps({"type": "snapshot", "room": "stream", "members": members,
                         "ts": int(time.time())})


def _snapshot_http(tmp: Path, size: int, rest_seconds: float,
                   progress: Progress) -> dict[str, Any]:
    """Snapshots POSTed to a server while a reader asks for today's presence top-10 and
    the room list; reads whose span overlaps a snapshot's request are the ones during it."""
    tmp.mkdir(parents=True)
    server = Server(tmp / "data")
    try:
        admin = Http(server.url)
        joins = [{"type": "join", "member": f"w{i}", "room": f"r{i % 100}"}
                 for i in range(1_000)]
        admin.send("POST", "/v1/presence", orjson.dumps(joins))
        admin.close()
        paths = {"top10 presence day": f"/v1/leaderboard?metric={PRESENCE_METRIC}&n=10"
                                       "&window=day",
                 "rooms": "/v1/presence/rooms"}
        reads: list[tuple[str, float, float]] = []
        stop = threading.Event()

        def read() -> None:
            reader = Http(server.url, timeout=600)
            turn = 0
            while not stop.is_set():
                kind = list(paths)[turn % 2]
                turn += 1
                t0 = time.perf_counter()
                status, wait = reader.ask("GET", paths[kind])
                if status < 400:
                    reads.append((kind, t0, time.perf_counter()))
                else:
                    time.sleep(wait)
            reader.close()

        thread = threading.Thread(target=read)
        thread.start()
        spans: list[tuple[float, float]] = []
        refused = 0
        try:
            time.sleep(rest_seconds)
            rest_until = time.perf_counter()
            for i, members in enumerate(_snapshots(size)):
                body = _snapshot_body(members)
                poster = Http(server.url)  # the server closes keep-alive connections idle 5 s
                t0 = time.perf_counter()
                refused += poster.send("POST", "/v1/presence", body)
                spans.append((t0, time.perf_counter()))
                poster.close()
                progress("live: HTTP snapshots", i + 1, SNAPSHOTS)
                time.sleep(0.2)
        finally:
            stop.set()
            thread.join()
    finally:
        server.stop()
    during = [(k, a, b) for k, a, b in reads if any(a < hi and b > lo for lo, hi in spans)]
    return {"members": size, "churn": CHURN, "refused": refused,
            "first_s": spans[0][1] - spans[0][0],
            "churned_s": max(hi - lo for lo, hi in spans[1:]),
            "rest": {k: summary([b - a for kk, a, b in reads if kk == k and b <= rest_until])
                     for k in paths},
            "during": {k: summary([b - a for kk, a, b in during if kk == k]) for k in paths}}


def _snapshot_in_process(tmp: Path, size: int, progress: Progress) -> dict[str, Any]:
    tb = open_board(str(tmp))
    assert isinstance(tb, Tallyboard)
    times = []
    try:
        for i, members in enumerate(_snapshots(size)):
            op = {"type": "snapshot", "room": "stream", "members": members,
                  "ts": int(time.time())}
            t0 = time.perf_counter()
            tb.presence([op])
            times.append(time.perf_counter() - t0)
            progress("live: in-process snapshots", i + 1, SNAPSHOTS)
        present = tb.room("stream")["members"]
        assert len(present) == size, (len(present), size)
    finally:
        tb.close()
    return {"members": size, "churn": CHURN, "first_s": times[0], "churned_s": max(times[1:])}


def _child(*args: str) -> dict[str, Any]:
    """One step in a fresh interpreter (its memory is its own); its last line is JSON."""
    done = subprocess.run([sys.executable, "-m", "tallyboard.bench.live", *args],
                          capture_output=True, check=False)
    mode = args[1]
    expected = -signal.SIGKILL if mode == "sessions" else 0
    if done.returncode != expected:
        raise RuntimeError(f"live bench {mode} exited {done.returncode}: "
                           f"{done.stderr.decode(errors='replace')[-2000:]}")
    got: dict[str, Any] = orjson.loads(done.stdout.splitlines()[-1])
    return got


def _sessions(tmp: Path, sessions: int, changes: int, progress: Progress) -> dict[str, Any]:
    """Open `sessions`, make `changes` presence changes in all, kill -9; then restart
    twice: after the crash, and after that restart's clean close."""
    data = str(tmp / "data")
    common = ("--data", data, "--sessions", str(sessions), "--changes", str(changes))
    progress("live: presence sessions, changes, restarts", 0, 3)
    live = _child("--child", "sessions", *common)
    progress("live: presence sessions, changes, restarts", 1, 3)
    crash = _child("--child", "reopen", *common)
    progress("live: presence sessions, changes, restarts", 2, 3)
    clean = _child("--child", "reopen", *common)
    progress("live: presence sessions, changes, restarts", 3, 3)
    return {"sessions": sessions, "changes": changes, "live": live,
            "restart_after_kill": crash, "restart_after_close": clean}


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / MB  # Linux: KiB


def _open_sessions(data: str, sessions: int, changes: int) -> dict[str, Any]:
    """Join `sessions` members into ROOMS rooms (1,000 ops per call), measure RSS per
    session with the presence board and room list built, then move members between
    rooms (a leave and a join each) until `changes` changes were made in all."""
    tb = open_board(data)
    assert isinstance(tb, Tallyboard)
    tb.presence([{"type": "join", "member": "warm", "room": "warm"},
                 {"type": "leave", "member": "warm", "room": "warm"}])
    tb.leaderboard(PRESENCE_METRIC, window="day")
    tb.rooms()
    rss0 = rss_bytes()
    started = time.perf_counter()
    room_of = [i % ROOMS for i in range(sessions)]
    for lo in range(0, sessions, BATCH):
        tb.presence([{"type": "join", "member": f"s{i}", "room": f"r{room_of[i]}"}
                     for i in range(lo, min(sessions, lo + BATCH))])
    join_s = time.perf_counter() - started
    tb.leaderboard(PRESENCE_METRIC, window="day")
    tb.rooms()
    per_session = (rss_bytes() - rss0) / sessions
    rng = random.Random(19)
    made = sessions
    started = time.perf_counter()
    while made < changes:
        ops: list[dict[str, Any]] = []
        while len(ops) < BATCH and made + len(ops) < changes:
            i = rng.randrange(sessions)
            to = (room_of[i] + rng.randrange(1, ROOMS)) % ROOMS
            ops += [{"type": "leave", "member": f"s{i}", "room": f"r{room_of[i]}"},
                    {"type": "join", "member": f"s{i}", "room": f"r{to}"}]
            room_of[i] = to
        tb.presence(ops)
        made += len(ops)
    return {"join_s": join_s, "joins_per_s": sessions / join_s,
            "rss_per_session_bytes": per_session,
            "moves_s": time.perf_counter() - started, "changes_made": made,
            "rss_mb": rss_bytes() / MB, "peak_mb": _peak_mb()}


def _reopen(data: str, sessions: int) -> dict[str, Any]:
    """Open the directory and answer the first presence reads, as a restarted server
    does before it is useful (tuning the GC as `tallyboard serve` does after its load);
    every session must be there."""
    started = time.perf_counter()
    tb = open_board(data)
    assert isinstance(tb, Tallyboard)
    tune_gc()
    open_s = time.perf_counter() - started
    present = sum(r["members"] for r in tb.rooms())
    tb.leaderboard(PRESENCE_METRIC, window="day")
    seconds = time.perf_counter() - started
    assert present == sessions, (present, sessions)
    got = {"open_s": open_s, "seconds": seconds, "rss_mb": rss_bytes() / MB,
           "peak_mb": _peak_mb(), "from_checkpoint": tb.from_checkpoint is not None}
    day = time.time() - 86400
    for name, ask in (("concurrency all rooms, 24 hours", lambda: tb.concurrency(start=day)),
                      ("concurrency one room, 24 hours",
                       lambda: tb.concurrency(room="r1", start=day)),
                      ("migrations, 24 hours", lambda: tb.migrations(start=day)),
                      ("migrations, 24 hours, top 10",
                       lambda: tb.migrations(start=day, n=10))):
        started = time.perf_counter()
        ask()
        got[name] = (time.perf_counter() - started) * 1000
    started = time.perf_counter()
    tb.close()
    got["close_s"] = time.perf_counter() - started
    return got


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--child", choices=("sessions", "reopen"), required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--sessions", type=int, default=SESSIONS)
    parser.add_argument("--changes", type=int, default=CHANGES)
    args = parser.parse_args(argv)
    if args.child == "sessions":
        result = _open_sessions(args.data, args.sessions, args.changes)
    else:
        result = _reopen(args.data, args.sessions)
    report(result, crash=args.child == "sessions")  # the restart is after a crash


if __name__ == "__main__":
    main()
