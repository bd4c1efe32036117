"""What queries answer: small typed records that serialise to the API's JSON shapes."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Entry:
    """One leaderboard line; `rank` is a competition rank (1, 2, 2, 4)."""

    rank: int
    member: str
    score: int


@dataclass(frozen=True, slots=True)
class Leaderboard:
    """Members with a non-zero score in ``[start, end)``, score descending, then member."""

    start: float | None
    end: float
    total: int
    entries: list[Entry]

    def to_dict(self) -> dict[str, Any]:
        return {"window": {"start": _num(self.start), "end": _num(self.end)},
                "total": self.total, "entries": [asdict(e) for e in self.entries]}


@dataclass(frozen=True, slots=True)
class Rank:
    """A member's place; `rank` is None (and `around` empty) when its score is 0."""

    rank: int | None
    score: int
    total: int
    around: list[Entry] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"rank": self.rank, "score": self.score, "total": self.total,
                "around": [asdict(e) for e in self.around]}


@dataclass(frozen=True, slots=True)
class Point:
    """One series bucket: its own start, its label, and the total inside the query span."""

    start: int
    label: str
    value: int


@dataclass(frozen=True, slots=True)
class Run:
    """A run of consecutive counted days; an empty run has length 0 and no days."""

    length: int = 0
    first_day: str | None = None
    last_day: str | None = None


@dataclass(frozen=True, slots=True)
class Streak:
    current: Run
    longest: Run

    def to_dict(self) -> dict[str, Any]:
        return {"current": asdict(self.current), "longest": asdict(self.longest)}


def _num(t: float | None) -> float | int | None:
    """Whole instants print as integers, others as given."""
    if t is None:
        return None
    return int(t) if float(t).is_integer() else t


@dataclass(frozen=True, slots=True)
class Accepted:
    """How many events a request added, and how many it skipped as already-seen ids."""

    accepted: int
    duplicates: int

    def to_dict(self) -> dict[str, int]:
        return {"accepted": self.accepted, "duplicates": self.duplicates}
