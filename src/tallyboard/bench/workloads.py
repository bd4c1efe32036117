"""Synthetic workloads shaped like the users' data, generated as columns with a fixed seed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

DAY = 86_400
SPAN_DAYS = 90


@dataclass
class Workload:
    """Events of one metric as columns, ending just before `now`."""

    name: str
    metric: str
    dimensions: list[str]
    members: list[str]
    secs: np.ndarray[Any, np.dtype[np.int64]]
    values: np.ndarray[Any, np.dtype[np.int64]]
    tags: dict[str, list[str]] = field(default_factory=dict)
    now: int = 0

    def __len__(self) -> int:
        return len(self.members)

    def rows(self, lo: int, hi: int) -> list[dict[str, Any]]:
        """Events lo..hi as the dicts a client would send."""
        out = []
        for i in range(lo, hi):
            row: dict[str, Any] = {"metric": self.metric, "member": self.members[i],
                                   "value": int(self.values[i]), "ts": int(self.secs[i])}
            if self.tags:
                row["tags"] = {k: v[i] for k, v in self.tags.items()}
            out.append(row)
        return out

    @property
    def member_names(self) -> list[str]:
        return sorted(set(self.members))


def _zipf_choice(rng: np.random.Generator, n: int, size: int, s: float) -> np.ndarray[Any, Any]:
    weights = 1.0 / np.arange(1, n + 1) ** s
    return rng.choice(n, size=size, p=weights / weights.sum())


def psd(scale: float, now: int) -> Workload:
    """Points/steps service: 10k members (Zipf), 3 activities as a dimension, 2M events / 90 d."""
    rng = np.random.default_rng(1)
    n = int(2_000_000 * scale)
    who = _zipf_choice(rng, 10_000, n, 1.1)
    secs = np.sort(rng.integers(now - SPAN_DAYS * DAY, now, size=n))
    activities = np.array(["walk", "run", "swim"])[rng.integers(0, 3, size=n)]
    return Workload("psd", "points", ["activity"], [f"u{i}" for i in who.tolist()], secs,
                    rng.integers(1, 500, size=n), {"activity": activities.tolist()}, now)


def study(scale: float, now: int) -> Workload:
    """Study bot: 50k members, 1M study-time events (seconds) over 90 days."""
    rng = np.random.default_rng(2)
    n = int(1_000_000 * scale)
    who = _zipf_choice(rng, 50_000, n, 0.6)
    secs = np.sort(rng.integers(now - SPAN_DAYS * DAY, now, size=n))
    return Workload("study", "study_seconds", [], [f"m{i}" for i in who.tolist()], secs,
                    rng.integers(60, 3_600, size=n), {}, now)


def reactions(scale: float, now: int) -> Workload:
    """Live reactions: 1k matches as a tag, 6 emoji members, 1M events in 2-minute bursts."""
    rng = np.random.default_rng(3)
    n = int(1_000_000 * scale)
    matches = 1_000
    kickoff = np.sort(rng.integers(now - SPAN_DAYS * DAY, now - 2 * 3600, size=matches))
    match = rng.integers(0, matches, size=n)
    burst = rng.integers(0, 30, size=n) * 240  # 30 bursts of up to 2 min in a 2 h match
    secs = kickoff[match] + burst + rng.integers(0, 120, size=n)
    order = np.argsort(secs, kind="stable")
    secs, match = secs[order], match[order]
    emoji = np.array(["goal", "fire", "clap", "cry", "angry", "laugh"])
    who = _zipf_choice(rng, len(emoji), n, 0.8)
    return Workload("reactions", "reactions", ["match"], emoji[who].tolist(), secs,
                    np.ones(n, dtype=np.int64), {"match": [f"g{i}" for i in match.tolist()]},
                    now)


WORKLOADS = {"psd": psd, "study": study, "reactions": reactions}
