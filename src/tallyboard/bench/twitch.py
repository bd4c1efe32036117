"""Twitch workload: 500 watched streams and 2,000,000 distinct chatters (a few streams of
100k+), a week of moves behind them, polled by the real tracker against the Helix stand-in.

The stand-in runs in a process of its own (as Twitch is not in ours), with a rate budget
large enough for a whole cycle ("when the rate budget allows"). Measured: the poll cycle of
every stream (the tracker's `step`, every page of every chatter list and one snapshot per
stream) beside the stand-in alone serving the same pages to a bare client, CPU and memory
per 1M chatters tracked, snapshot apply time per 100k chatters, and overlap and migration
queries over the week.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import random
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx

from ..bots.twitch.helix import Helix
from ..bots.twitch.tracker import CONCURRENT_POLLS, StreamList, Tracker
from ..engine import Tallyboard
from ..stores import log_from_url
from .measure import Progress, latencies, rss_bytes

STREAMS = 500
CHATTERS = 2_000_000  # at scale 1
SPACE = "twitch"
WEEK = 7 * 86_400
HISTORY_STEP = 6 * 3_600  # seconds between the history's rounds of moves
HISTORY_MOVERS = 0.02  # share of chatters moving in each round of the history
LIVE_MOVERS = 0.05  # share moving between two live cycles
CYCLES = 3  # live cycles: the first continues the history, the next two move viewers
OP_BATCH = 10_000
BIG_SNAPSHOT = 50_000  # snapshots at least this big give the per-100k apply time


def run_twitch(tmp: Path, scale: float, progress: Progress) -> dict[str, Any]:
    rnd = random.Random(14)
    rss0 = rss_bytes()  # before the names: a tracked chatter's login counts once
    chatters = max(10_000, int(CHATTERS * scale))
    sizes = _sizes(chatters)
    logins = [f"stream{i:03d}" for i in range(STREAMS)]
    room_of = [i for i, n in enumerate(sizes) for _ in range(n)]
    rnd.shuffle(room_of)
    names = [f"viewer{j:07d}" for j in range(chatters)]
    out: dict[str, Any] = {"streams": STREAMS, "chatters": chatters,
                           "biggest": sizes[:3], "history_days": WEEK // 86_400}
    tb = Tallyboard(log_from_url(str(tmp / "data")))
    try:
        now = int(time.time())
        out["history"] = _history(tb, rnd, names, room_of, logins, now - WEEK, now - 60, progress)

        ctx = multiprocessing.get_context("spawn")
        here, there = ctx.Pipe()
        child = ctx.Process(target=_standin, args=(there,), daemon=True)
        child.start()
        try:
            helix_url, auth_url, client_id, token = here.recv()
            for login, members in zip(logins, _rooms(names, room_of), strict=True):
                _ask(here, "go_live", login, members)
            out["cycles"], out["baseline"] = asyncio.run(_live(
                tb, here, (helix_url, auth_url, client_id, token), tmp, names, room_of,
                logins, rnd, progress))
        finally:
            here.send(None)
            child.join(10)
        out["rss_mb"] = (rss_bytes() - rss0) / 2**20
        out["kb_per_chatter"] = (rss_bytes() - rss0) / chatters / 1024
        out["sessions"] = out["history"]["sessions"]
        out["queries"] = _queries(tb, logins, progress)
    finally:
        tb.close()
    return out


def _sizes(chatters: int) -> list[int]:
    """Zipf-like stream sizes (the biggest first), adding up to `chatters`."""
    weights = [1 / (r + 1) for r in range(STREAMS)]
    total = sum(weights)
    sizes = [max(5, int(chatters * w / total)) for w in weights]
    sizes[0] += chatters - sum(sizes)
    return sizes


def _rooms(names: list[str], room_of: list[int]) -> list[list[str]]:
    """Each stream's chatters."""
    rooms: list[list[str]] = [[] for _ in range(STREAMS)]
    for name, r in zip(names, room_of, strict=True):
        rooms[r].append(name)
    return rooms


def _history(tb: Tallyboard, rnd: random.Random, names: list[str], room_of: list[int],
             logins: list[str], start: int, end: int, progress: Progress) -> dict[str, Any]:
    """Everyone joins at `start`, then a share of them moves every HISTORY_STEP until
    `end`: the week the overlap and migration queries read."""
    began = time.perf_counter()
    joins = [{"type": "join", "member": n, "room": logins[r], "ts": start}
             for n, r in zip(names, room_of, strict=True)]
    ops = len(joins)
    for lo in range(0, len(joins), OP_BATCH):
        tb.presence(joins[lo:lo + OP_BATCH], space=SPACE)
    del joins
    rounds = range(start + HISTORY_STEP, end, HISTORY_STEP)
    movers = int(len(names) * HISTORY_MOVERS)
    for k, ts in enumerate(rounds):
        batch: list[dict[str, Any]] = []
        for j in rnd.sample(range(len(names)), movers):
            target = rnd.randrange(STREAMS)
            if target == room_of[j]:
                continue
            batch.append({"type": "leave", "member": names[j], "room": logins[room_of[j]],
                          "ts": ts})
            batch.append({"type": "join", "member": names[j], "room": logins[target],
                          "ts": ts})
            room_of[j] = target
        for lo in range(0, len(batch), OP_BATCH):
            tb.presence(batch[lo:lo + OP_BATCH], space=SPACE)
        ops += len(batch)
        progress("twitch: a week of history", k + 1, len(rounds))
    return {"ops": ops, "rounds": len(rounds), "sessions": len(names) + (ops - len(names)) // 2,
            "seconds": time.perf_counter() - began}


async def _live(tb: Tallyboard, standin: Connection, urls: tuple[str, str, str, str],
                tmp: Path, names: list[str], room_of: list[int], logins: list[str],
                rnd: random.Random, progress: Progress
                ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    helix_url, auth_url, client_id, token = urls
    helix = Helix(helix_url, auth_url, client_id, token, timeout=60)
    await helix.start()
    timed = _TimedTally(tb)
    streams = StreamList(tmp / "twitch-streams.json")
    streams.set(logins)
    tracker = Tracker(helix, timed, streams, space=SPACE, interval=1)
    cycles = []
    try:
        baseline = await _bare_cycle(helix_url, client_id, token, helix, len(names))
        for c in range(CYCLES):
            if c:
                moved = _move(rnd, room_of, int(len(names) * LIVE_MOVERS))
                rooms = _rooms(names, room_of)
                for i in moved:
                    _ask(standin, "set_viewers", logins[i], rooms[i])
                await asyncio.sleep(tracker.interval)  # every stream is due again
            timed.applied.clear()
            cpu, began = time.process_time(), time.perf_counter()
            await tracker.step()
            seconds = time.perf_counter() - began
            snapshots = timed.applied
            big = [s / n * 100_000 for n, s in snapshots if n >= BIG_SNAPSHOT]
            cycles.append({
                "seconds": seconds, "cpu_s": time.process_time() - cpu,
                "cpu_s_per_million": (time.process_time() - cpu) / len(names) * 1e6,
                "snapshots": len(snapshots), "members": sum(n for n, _ in snapshots),
                "apply_s": sum(s for _, s in snapshots),
                "apply_s_per_100k_max": max(big, default=0.0),
                "stale": sum(1 for w in tracker.watches.values() if w.stale)})
            progress("twitch: live cycles", c + 1, CYCLES)
    finally:
        await helix.close()
    return cycles, baseline


async def _bare_cycle(helix_url: str, client_id: str, token: str, helix: Helix,
                      chatters: int) -> dict[str, Any]:
    """The stand-in alone: every stream's chatter pages fetched by a bare client with the
    tracker's concurrency, nothing parsed beyond the cursor and nothing recorded."""
    users = await helix.users([f"stream{i:03d}" for i in range(STREAMS)])
    headers = {"Client-Id": client_id, "Authorization": f"Bearer {token}"}
    slots = asyncio.Semaphore(CONCURRENT_POLLS)
    pages = [0]

    async def one(http: httpx.AsyncClient, uid: str) -> None:
        async with slots:
            cursor = None
            while True:
                params = {"broadcaster_id": uid, "moderator_id": helix.user_id or "",
                          "first": "1000", **({"after": cursor} if cursor else {})}
                r = await http.get(helix_url + "/chat/chatters", params=params,
                                   headers=headers)
                pages[0] += 1
                cursor = (r.json().get("pagination") or {}).get("cursor")
                if not cursor:
                    return

    began = time.perf_counter()
    async with httpx.AsyncClient(timeout=60) as http:
        await asyncio.gather(*(one(http, uid) for uid in users.values()))
    return {"seconds": time.perf_counter() - began, "pages": pages[0], "chatters": chatters}


def _move(rnd: random.Random, room_of: list[int], count: int) -> set[int]:
    """Move `count` chatters to another stream; the streams that changed."""
    changed: set[int] = set()
    for j in rnd.sample(range(len(room_of)), count):
        target = rnd.randrange(STREAMS)
        if target != room_of[j]:
            changed.update((room_of[j], target))
            room_of[j] = target
    return changed


class _TimedTally:
    """The engine as the tracker sees it, timing each snapshot it applies. The tracker's
    writes (threads, 8 polls at a time) take turns here, as they do for the engine's
    write lock, so a time is one snapshot's apply and not the wait for the others'."""

    def __init__(self, tb: Tallyboard) -> None:
        self.tb = tb
        self.applied: list[tuple[int, float]] = []  # (members, seconds)
        self._turn = threading.Lock()

    def presence(self, ops: list[dict[str, Any]], space: str) -> Any:
        with self._turn:
            began = time.perf_counter()
            got = self.tb.presence(ops, space=space)
            self.applied.append((sum(len(op.get("members", ())) for op in ops),
                                 time.perf_counter() - began))
        return got

    def room(self, room: str, space: str) -> Any:
        return self.tb.room(room, space=space)

    def record_many(self, events: list[dict[str, Any]], space: str) -> Any:
        return self.tb.record_many(events, space=space)  # Helix's viewer counts


def _queries(tb: Tallyboard, logins: list[str], progress: Progress) -> dict[str, Any]:
    """Overlap over the week for every stream (one call each, and the biggest again and
    again), and migrations: the top pairs of the week, and one stream's outflow."""
    now = time.time()
    start = now - WEEK - 60
    out = {
        "overlap 7d, every stream": latencies(
            lambda i: tb.overlap(logins[i], start=start, end=now, space=SPACE), STREAMS),
        "overlap 7d, biggest stream": latencies(
            lambda i: tb.overlap(logins[0], start=start, end=now, space=SPACE), 30),
        "overlap now, every stream": latencies(
            lambda i: tb.overlap(logins[i], space=SPACE), STREAMS),
        "migrations 7d, top 10 pairs": latencies(
            lambda i: tb.migrations(start=start, end=now, n=10, space=SPACE), 30),
        "migrations 7d, from one stream": latencies(
            lambda i: tb.migrations(start=start, end=now, source=logins[i % STREAMS],
                                    space=SPACE), 100),
    }
    progress("twitch: queries", 1, 1)
    return out


def _ask(conn: Connection, method: str, *args: Any) -> Any:
    conn.send((method, args))
    return conn.recv()


def _standin(conn: Connection) -> None:
    """The Helix stand-in in a process of its own, driven over a pipe."""
    from ..standins.twitch_helix import HelixStandIn

    with HelixStandIn(rate_limit=1_000_000) as helix:
        token, _ = helix.user_token()
        conn.send((helix.helix_url, helix.auth_url, helix.client_id, token))
        while (job := conn.recv()) is not None:
            method, args = job
            conn.send(getattr(helix, method)(*args))
