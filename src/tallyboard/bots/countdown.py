"""The countdown bot's words and clock, with no platform in sight.

``count to n`` (1 ≤ n ≤ 9999) posts 1, 2, …, n, one message a second; ``stop`` ends it.
Tick k is due at ``started + k`` — an absolute time, so a slow send never pushes the
ticks after it (no drift). After a restart, ticks whose time passed while the bot was
away are skipped, never sent late: the count goes on where the clock says it should be.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from .state import Countdown

MAX_COUNT = 9999
_COUNT = re.compile(r"count\s+to\s+(\S+)", re.IGNORECASE)


@dataclass(frozen=True)
class CountTo:
    target: int


@dataclass(frozen=True)
class Stop:
    pass


@dataclass(frozen=True)
class Invalid:
    """A countdown command with a bad argument; `reason` is what to tell the user."""

    reason: str


Command = CountTo | Stop | Invalid


def parse(text: str) -> Command | None:
    """The countdown command in `text` (a whole message, mention already removed), or None
    when the message is not one."""
    words = text.strip()
    if words.lower() == "stop":
        return Stop()
    match = _COUNT.fullmatch(words)
    if match is None:
        return None
    arg = match.group(1)
    if not re.fullmatch(r"[+-]?\d+", arg):
        return Invalid(f"“{arg[:40]}” is not a whole number: try `count to 10`.")
    n = int(arg)
    if not 1 <= n <= MAX_COUNT:
        return Invalid(f"I can count to any number from 1 to {MAX_COUNT:,}, not {n:,}.")
    return CountTo(n)


@dataclass(frozen=True)
class Resume:
    """How a countdown found after a restart goes on: the next tick to send (None: it is
    over) and the ticks skipped because their time passed while the bot was away."""

    next_tick: int | None
    skipped: range


def resume(c: Countdown, now: float) -> Resume:
    """Where `c` stands at `now`: ticks already sent are never repeated, ticks due more
    than a second ago are skipped."""
    first_unsent = c.sent + 1
    on_time = max(first_unsent, math.ceil(now - c.started - 1))  # due within the last second
    skipped = range(first_unsent, min(on_time, c.target + 1))
    return Resume(on_time if on_time <= c.target else None, skipped)
