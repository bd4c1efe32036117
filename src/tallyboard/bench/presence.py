"""Presence workload: 100k members present in 1,000 rooms, joins and leaves streaming in."""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

from ..calendar import Calendar
from ..engine import Tallyboard
from ..stores import log_from_url
from ..windows import Window
from .measure import Progress, latencies, rss_bytes

ROOMS = 1_000
BATCH = 1_000
METRIC = "presence_seconds"


def run_presence(tmp: Path, scale: float, queries: int, progress: Progress) -> dict[str, Any]:
    """Bulk joins, streamed moves (single durable ops and batches), today's board, memory."""
    rnd = random.Random(11)
    members = max(1_000, int(100_000 * scale))
    now = time.time()
    out: dict[str, Any] = {"present": members, "rooms": ROOMS}
    rss0 = rss_bytes()
    tb = Tallyboard(log_from_url(str(tmp)))
    joins: list[dict[str, Any]] = [
        {"type": "join", "member": f"p{i}", "room": f"r{rnd.randrange(ROOMS)}",
         "ts": int(now) - rnd.randrange(1, 3 * 3600)} for i in range(members)]
    joins.sort(key=lambda op: op["ts"])
    started = time.perf_counter()
    for lo in range(0, members, BATCH):
        tb.presence(joins[lo:lo + BATCH])
        progress("presence: joins", min(lo + BATCH, members), members)
    seconds = time.perf_counter() - started
    out["bulk_joins"] = {"ops": members, "seconds": seconds, "ops_per_s": members / seconds}
    started = time.perf_counter()
    tb.leaderboard(METRIC, window="day")
    out["first_board_seconds"] = time.perf_counter() - started
    out["rss_per_open_session_kb"] = (rss_bytes() - rss0) / members / 1024

    room_of: dict[str, str] = {op["member"]: op["room"] for op in joins}
    moves = _moves(rnd, room_of, 4_000)
    started = time.perf_counter()
    for op in moves[:2_000]:
        tb.presence([op])
    seconds = time.perf_counter() - started
    out["single_ops"] = {"ops": 2_000, "seconds": seconds, "ops_per_s": 2_000 / seconds}
    started = time.perf_counter()
    for lo in range(2_000, len(moves), 100):
        tb.presence(moves[lo:lo + 100])
    seconds = time.perf_counter() - started
    out["batched_ops"] = {"ops": len(moves) - 2_000, "batch": 100, "seconds": seconds,
                          "ops_per_s": (len(moves) - 2_000) / seconds}
    progress("presence: moves", 1, 1)

    day_start = Window.parse("day").span(time.time(), Calendar("UTC"))[0]
    picks = [f"p{rnd.randrange(members)}" for _ in range(queries)]
    out["queries"] = {
        "top10 day": latencies(lambda i: tb.leaderboard(METRIC, window="day"), queries),
        "top10 rolling:24h": latencies(
            lambda i: tb.leaderboard(METRIC, window="rolling:24h"), max(10, queries // 20)),
        "member today": latencies(lambda i: tb.sum(METRIC, picks[i], start=day_start),
                                  queries),
        "rank day": latencies(lambda i: tb.rank(METRIC, picks[i], window="day"), queries),
    }
    progress("presence: queries", 1, 1)
    tb.close()
    started = time.perf_counter()
    Tallyboard(log_from_url(str(tmp))).close()
    out["rebuild_seconds"] = time.perf_counter() - started
    return out


def _moves(rnd: random.Random, room_of: dict[str, str], count: int) -> list[dict[str, Any]]:
    """Leave-then-join pairs into another room: what a voice-channel switch looks like."""
    ops: list[dict[str, Any]] = []
    names = list(room_of)
    while len(ops) < count:
        member = rnd.choice(names)
        target = f"r{rnd.randrange(ROOMS)}"
        if target == room_of[member]:
            continue
        ops.append({"type": "leave", "member": member, "room": room_of[member]})
        ops.append({"type": "join", "member": member, "room": target})
        room_of[member] = target
    return ops
