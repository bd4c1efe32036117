"""Admission of writes: a bounded queue in front of the engine.

Writes take the engine one at a time; a burst beyond what it can apply would otherwise
wait in the server without end, each request holding its body in memory, until clients
time out and retry into the same queue. So at most `limit` writes wait or run at once
and the next one is answered at once with 503 `busy` and Retry-After.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from ..errors import Busy


class WriteGate:
    """Counts the writes waiting for or in the engine (used on the event loop only)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.pending = 0

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        """Hold a place for one write, or raise Busy if every place is taken."""
        if self.pending >= self.limit:
            raise Busy(f"{self.pending} writes are already waiting for this server; retry "
                       "in a second (setting max_pending_writes)", retry_after=1)
        self.pending += 1
        try:
            yield
        finally:
            self.pending -= 1
