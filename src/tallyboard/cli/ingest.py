"""`tallyboard ingest`: load NDJSON or CSV files in atomic batches."""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
import orjson
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from ..client import RemoteTallyboard
from ..engine import Tallyboard
from ..errors import InvalidEvent
from ..redact import redact
from . import main
from .common import console, number, opened, out, store_options


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["auto", "ndjson", "csv"]), default="auto",
              show_default=True, help="File format; auto looks at the extension.")
@click.option("--batch-size", default=5000, show_default=True, type=click.IntRange(1, 10_000),
              help="Events per atomic write (with --to: per message).")
@click.option("--to", "queue_url", metavar="URL",
              help="Publish to a queue that `tallyboard worker --from URL` consumes instead "
                   "of writing: nats://…, redis-stream://… or amqp://….")
@store_options
def ingest(file: Path, fmt: str, batch_size: int, queue_url: str | None, data: Path,
           url: str | None, key: str | None, space: str) -> None:
    """Load events from an NDJSON or CSV file, in batches, with a progress bar.

    \b
    NDJSON: one event object per line, as POST /v1/events takes.
    CSV: a header with metric,member and optionally value,ts,id,space and
    tag.<dimension> columns (empty cells are left out).
    Bad lines are skipped and listed with their line numbers; the rest is kept.
    With --to, lines that are not JSON are skipped the same way and the rest is
    published as JSON-array messages of --batch-size events; the worker validates them
    (a message it cannot apply is kept: tallyboard errors --kind ingest).

    \b
        tallyboard ingest events.ndjson
        tallyboard ingest points.csv --url http://127.0.0.1:8080
        tallyboard ingest events.ndjson --batch-size 1000 \\
            --to redis-stream://127.0.0.1:6379/0/events
    """
    if fmt == "auto":
        fmt = "csv" if file.suffix.lower() == ".csv" else "ndjson"
    if queue_url:
        _publish(file, fmt, batch_size, queue_url)
        return
    accepted = duplicates = 0
    rejected: list[tuple[int, str]] = []
    with opened(data, url, key) as tb, _bar(file) as (bar, task):
        batch: list[tuple[int, Any]] = []
        for lineno, item, size in _read(file, fmt):
            if isinstance(item, str):
                rejected.append((lineno, item))
            else:
                batch.append((lineno, item))
            bar.advance(task, size)
            if len(batch) >= batch_size:
                a, d = _send(tb, batch, space, rejected)
                accepted, duplicates, batch = accepted + a, duplicates + d, []
        if batch:
            a, d = _send(tb, batch, space, rejected)
            accepted, duplicates = accepted + a, duplicates + d
    out.print(f"accepted {accepted:,} · duplicates {duplicates:,} · rejected {len(rejected):,}")
    _report(rejected)


def _report(rejected: list[tuple[int, str]]) -> None:
    """List the lines left out (the first 50), and fail if there were any."""
    for lineno, why in sorted(rejected)[:50]:
        out.print(f"  line {lineno}: {why}")
    if len(rejected) > 50:
        out.print(f"  … and {len(rejected) - 50:,} more")
    if rejected:
        sys.exit(1)


def _publish(file: Path, fmt: str, per_message: int, queue_url: str) -> None:
    """Publish the file's events to a queue, `per_message` to a message."""
    from ..queue.publish import Publisher

    rejected: list[tuple[int, str]] = []
    events = messages = 0
    try:
        publisher = Publisher(queue_url)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    try:
        with publisher, _bar(file) as (bar, task):
            batch: list[Any] = []
            for lineno, item, size in _read(file, fmt):
                if isinstance(item, str):
                    rejected.append((lineno, item))
                elif item is not None:
                    batch.append(item)
                bar.advance(task, size)
                if len(batch) >= per_message * 100:
                    messages += publisher.send_events(batch, per_message)
                    events, batch = events + len(batch), []
            if batch:
                messages += publisher.send_events(batch, per_message)
                events += len(batch)
    except click.ClickException:
        raise
    except Exception as exc:  # the broker's own errors, whichever it is
        raise click.ClickException(redact(f"cannot publish to {queue_url}: {exc}")) from exc
    out.print(f"published {events:,} events in {messages:,} messages to {redact(queue_url)}"
              f" · rejected {len(rejected):,}")
    _report(rejected)


@contextmanager
def _bar(file: Path) -> Iterator[tuple[Progress, TaskID]]:
    with Progress(TextColumn("[bold]ingest"), BarColumn(), TransferSpeedColumn(),
                  TimeRemainingColumn(), console=console, transient=False) as bar:
        yield bar, bar.add_task("ingest", total=file.stat().st_size)


def _read(file: Path, fmt: str) -> Iterator[tuple[int, Any, int]]:
    """``(line number, event or reason it is bad, bytes consumed)`` for each line."""
    with file.open("rb") as fh:
        if fmt == "ndjson":
            for lineno, raw in enumerate(fh, start=1):
                if not raw.strip():
                    yield lineno, None, len(raw)
                    continue
                try:
                    yield lineno, orjson.loads(raw), len(raw)
                except orjson.JSONDecodeError as exc:
                    yield lineno, f"not valid JSON: {exc}", len(raw)
            return
    with file.open(newline="", encoding="utf-8") as text:
        reader = csv.DictReader(text)
        for row in reader:
            size = sum(len(v or "") + 1 for v in row.values())
            yield reader.line_num, _csv_event(row), size


def _csv_event(row: dict[str, str]) -> dict[str, Any] | str:
    event: dict[str, Any] = {}
    tags = {}
    for col, cell in row.items():
        if col is None or cell is None or cell == "":
            continue
        if col.startswith("tag."):
            tags[col[4:]] = cell
        elif col == "value":
            try:
                event[col] = int(cell)
            except ValueError:
                return f"value {cell!r} is not an integer"
        elif col == "ts":
            event[col] = number(cell)
        else:
            event[col] = cell
    if tags:
        event["tags"] = tags
    return event


def _send(tb: Tallyboard | RemoteTallyboard, batch: list[tuple[int, Any]], space: str,
          rejected: list[tuple[int, str]]) -> tuple[int, int]:
    """Write `batch`, dropping (and reporting) each invalid event until the rest goes in."""
    batch = [(n, e) for n, e in batch if e is not None]
    while batch:
        try:
            got = tb.record_many([e for _, e in batch], space=space)
            return got.accepted, got.duplicates
        except InvalidEvent as exc:
            lineno, _ = batch.pop(exc.index)
            rejected.append((lineno, f"{exc.field}: {exc.message}"))
    return 0, 0
