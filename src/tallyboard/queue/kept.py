"""Messages a worker could not apply, kept with their reason and original bytes (in
SQLite next to the data, or the log's PostgreSQL database), so that none is dropped
silently: `tallyboard errors --kind ingest` and ``GET /v1/ingest/errors`` list them, and
`tallyboard errors --kind ingest --replay ID` publishes one again after a fix.

A message is kept once, however often it is delivered (its origin is unique), and kept
before it is acked: a crash between the two keeps it once and acks it on redelivery.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..stores.small_sql import SmallSQL, connector

ERRORS_FILE = "ingest-errors.sqlite3"

SCHEMA = ["""CREATE TABLE IF NOT EXISTS ingest_errors (
    id {serial} PRIMARY KEY, at DOUBLE PRECISION NOT NULL, source TEXT NOT NULL,
    origin TEXT NOT NULL UNIQUE, reason TEXT NOT NULL, body {blob} NOT NULL,
    replayed DOUBLE PRECISION)"""]
COLUMNS = "id, at, source, origin, reason, body, replayed"


@dataclass(frozen=True)
class KeptMessage:
    """One message that was not applied: where it came from and why."""

    id: int
    at: float
    source: str
    origin: str
    reason: str
    body: bytes
    replayed: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "at": self.at, "source": self.source, "origin": self.origin,
                "reason": self.reason, "body": self.body.decode("utf-8", "replace"),
                "body_base64": base64.b64encode(self.body).decode(),
                "replayed": self.replayed}


class KeptMessages(SmallSQL):
    """The ingest_errors table."""

    def __init__(self, connect: Callable[[], Any], placeholder: str, serial: str) -> None:
        super().__init__(connect, placeholder, serial, SCHEMA, "kept messages")

    def keep(self, rows: Sequence[tuple[str, str, str, bytes]]) -> None:
        """Keep (source, origin, reason, body) rows in one transaction; an origin kept
        before is left as it was."""
        now = time.time()
        with self._transaction() as db:
            for source, origin, reason, body in rows:
                db.execute(self._sql("INSERT INTO ingest_errors (at, source, origin, reason, "
                                     "body) VALUES (?, ?, ?, ?, ?) ON CONFLICT (origin) DO "
                                     "NOTHING"), (now, source, origin, reason, body))

    def errors(self, *, limit: int = 50, ids: Sequence[int] = ()) -> list[KeptMessage]:
        """The newest first (or those of `ids`)."""
        if ids:
            marks = ", ".join("?" for _ in ids)
            rows = self._run(f"SELECT {COLUMNS} FROM ingest_errors WHERE id IN ({marks}) "
                             "ORDER BY id", list(ids))
        else:
            rows = self._run(f"SELECT {COLUMNS} FROM ingest_errors ORDER BY id DESC LIMIT ?",
                             (limit,))
        return [KeptMessage(i, at, s, o, r, bytes(b), p) for i, at, s, o, r, b, p in rows]

    def replayed(self, ids: Sequence[int]) -> None:
        """Mark `ids` as published again."""
        now = time.time()
        for i in ids:
            self._run("UPDATE ingest_errors SET replayed = ? WHERE id = ?", (now, i))


def open_kept(url: str) -> KeptMessages:
    """``sqlite:///…``, a directory (its ``ingest-errors.sqlite3``), ``postgresql://…`` or
    ``memory://``."""
    return KeptMessages(*connector(url, ERRORS_FILE, "kept messages"))
