"""Raids as they happened: kept in a JSON-lines file of the tracker's data dir (a raid is
rare and cannot be asked of Twitch again), each fsynced before it is counted."""

from __future__ import annotations

import json
import os
from pathlib import Path

from .irc import Raid


class RaidLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.raids: list[Raid] = []
        if path.exists():
            data = path.read_bytes()
            whole = data[:data.rfind(b"\n") + 1]
            if whole != data:  # a line cut by a crash mid-write: dropped, not appended to
                with path.open("r+b") as f:
                    f.truncate(len(whole))
            self.raids = [Raid(**json.loads(line)) for line in whole.splitlines()]
        self._seen = set(self.raids)

    def add(self, raid: Raid) -> bool:
        """Keep a raid (False if already kept: TMI resends on a reconnect)."""
        if raid in self._seen:
            return False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(raid.__dict__) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.raids.append(raid)
        self._seen.add(raid)
        return True

    def between(self, start: float | None, end: float | None,
                stream: str | None = None) -> list[Raid]:
        """Raids in ``[start, end)`` from or to `stream`, oldest first."""
        return sorted((r for r in self.raids
                       if (start is None or r.ts >= start) and (end is None or r.ts < end)
                       and (stream is None or stream in (r.source, r.target))),
                      key=lambda r: (r.ts, r.source, r.target))
