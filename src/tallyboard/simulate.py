"""The live-match load generator behind ``tallyboard simulate reactions``.

Random users post random emoji to random matches at a steady rate, in small batches
against absolute send times (so the rate does not drift). Every event has an id of the
run's own, so "sent", "accepted" and "found in the durable log" must be equal numbers.
Works on anything with the Python API: an embedded store or a server via its URL.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from .client import RemoteTallyboard
from .engine import Tallyboard
from .errors import TallyboardError

EMOJI = ("🔥", "⚽", "👏", "😂", "😱", "❤️")
METRIC = "reactions"
TICK = 0.1  # seconds between batches


@dataclass
class Counts:
    """What a run sent and what the store said it accepted."""

    sent: int = 0
    accepted: int = 0
    duplicates: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass
class ReactionLoad:
    """`rate` reactions a second from `users` users to `matches` matches in `space`."""

    matches: int
    users: int
    rate: float
    space: str
    seed: int = 0

    def __post_init__(self) -> None:
        self._rnd = random.Random(self.seed)
        self._run = f"{self.space}-{self.seed}"

    def batch(self, start: int, count: int, now: float) -> list[dict[str, Any]]:
        """Reactions number `start` .. `start + count - 1` of the run, all at `now`."""
        rnd = self._rnd
        return [{"metric": METRIC, "member": rnd.choice(EMOJI), "value": 1, "ts": now,
                 "tags": {"match": f"match-{rnd.randrange(self.matches) + 1}",
                          "user": f"user-{rnd.randrange(self.users) + 1}"},
                 "id": f"{self._run}-{start + i}"} for i in range(count)]

    def run(self, store: Tallyboard | RemoteTallyboard, seconds: float, every: float,
            show: Callable[[float, Counts], None]) -> Counts:
        """Send for `seconds`, calling `show` every `every` seconds and at the end."""
        counts = Counts()
        began = time.monotonic()
        next_show = began + every
        tick = 0
        while (elapsed := time.monotonic() - began) < seconds:
            due = int(self.rate * min(seconds, (tick + 1) * TICK)) - counts.sent
            while due > 0:  # requests of at most 10,000 (the HTTP limit)
                part = min(due, 10_000)
                try:
                    got = store.record_many(self.batch(counts.sent, part, time.time()),
                                            space=self.space)
                    counts.accepted += got.accepted
                    counts.duplicates += got.duplicates
                except (TallyboardError, httpx.HTTPError) as exc:  # report and go on
                    counts.errors.append(f"{type(exc).__name__}: {exc}")
                counts.sent += part
                due -= part
            tick += 1
            if time.monotonic() >= next_show:
                show(elapsed, counts)
                next_show += every
            time.sleep(max(0.0, began + tick * TICK - time.monotonic()))
        show(time.monotonic() - began, counts)
        return counts

    def table(self, store: Tallyboard | RemoteTallyboard,
              elapsed: float) -> list[dict[str, Any]]:
        """Per match: counts per emoji (all of the run) and per-emoji rate over the last
        10 s (or over the run so far, while it is younger)."""
        span = min(10.0, max(elapsed, TICK))
        rows = []
        for m in range(1, self.matches + 1):
            tag = ("match", f"match-{m}")
            total = store.leaderboard(METRIC, window="all", n=len(EMOJI), space=self.space,
                                      tag=tag)
            recent = store.leaderboard(METRIC, window="rolling:10s", n=len(EMOJI),
                                       space=self.space, tag=tag)
            rows.append({"match": f"match-{m}",
                         "counts": {e.member: e.score for e in total.entries},
                         "rate": {e.member: e.score / span for e in recent.entries}})
        return rows
