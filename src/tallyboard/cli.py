"""The `tallyboard` command: serve, ingest files, query, rebuild and benchmark.

Every query command works against an embedded data directory (``--data``) or a running
server (``--url``), through the same Python API.
"""

from __future__ import annotations

import csv
import ipaddress
import json
import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
import orjson
from pydantic import ValidationError
from rich.console import Console
from rich.live import Live
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from . import open as open_tallyboard
from .client import RemoteTallyboard
from .engine import Tallyboard, tune_gc
from .errors import InvalidEvent, TallyboardError
from .settings import Settings, load_settings

console = Console(stderr=True)
out = Console()


def _store_options(fn: Any) -> Any:
    for option in reversed([
        click.option("--data", type=click.Path(file_okay=False, path_type=Path),
                     default=Path("tallyboard-data"), show_default=True,
                     help="Embedded data directory (ignored with --url)."),
        click.option("--url", envvar="TALLYBOARD_URL",
                     help="A running server, e.g. http://127.0.0.1:8080 (env TALLYBOARD_URL)."),
        click.option("--key", envvar="TALLYBOARD_KEY", help="API key for --url "
                     "(env TALLYBOARD_KEY)."),
        click.option("--space", default="default", show_default=True, help="Space to use."),
    ]):
        fn = option(fn)
    return fn


@contextmanager
def _replay_bar(source: str) -> Iterator[Callable[[int, int | None], None]]:
    """A progress bar over the batches of a rebuild from the durable log at `source`."""
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("batches"), TimeRemainingColumn(), console=console,
                  transient=True) as bar:
        task = bar.add_task(f"rebuilding from {source}", total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


@contextmanager
def _opened(data: Path | str, url: str | None,
            key: str | None) -> Iterator[Tallyboard | RemoteTallyboard]:
    try:
        if url:
            tb: Tallyboard | RemoteTallyboard = open_tallyboard(url, key=key)
        else:
            with _replay_bar(str(data)) as on_replay:
                tb = open_tallyboard(str(data), on_replay=on_replay)
    except (OSError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        yield tb
    except TallyboardError as exc:
        raise click.ClickException(f"{exc.code}: {exc.message}") from exc
    finally:
        tb.close()


def _tag(text: str | None) -> tuple[str, str] | None:
    if not text:
        return None
    dim, sep, value = text.partition("=")
    if not sep or not dim or not value:
        raise click.BadParameter("use --tag DIMENSION=VALUE", param_hint="--tag")
    return dim, value


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
@click.version_option(package_name="tallyboard")
def main(verbose: int) -> None:
    """tallyboard: exact, real-time counters, leaderboards and streaks.

    \b
    Start a server on the embedded store (no other servers needed):
        tallyboard serve
    Load a file and look at the top ten:
        tallyboard ingest events.ndjson
        tallyboard top points --window day
    """
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(verbose, 2)]
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@main.command()
@click.option("--host", help="Address to listen on (default 127.0.0.1). Anything but "
              "loopback needs API keys in the config.")
@click.option("--port", type=int, help="Port (default 8080).")
@click.option("--data", type=click.Path(file_okay=False, path_type=Path),
              help="Embedded data directory (default ./tallyboard-data).")
@click.option("--config", "config_file", type=click.Path(dir_okay=False, exists=True,
                                                         path_type=Path),
              help="TOML config file (see docs/configuration.md).")
@click.option("--store", help="Shared hot store: redis://host:port/db (Redis or Redis "
                               "Cluster), so several servers serve the same data. Needs a "
                               "PostgreSQL --log.")
@click.option("--store-prefix", help="Key prefix in the hot store (default tb): servers "
                                     "with the same store and prefix share state.")
@click.option("--log", "log_url", help="Durable log URL: sqlite:///path/file.sqlite3 or "
                                      "postgresql://user@host/db.")
@click.option("--durability", type=click.Choice(["sync", "buffered"]),
              help="sync (default): 200 after the log's commit; buffered: 200 once the batch "
                   "is in a Redis Stream (--buffer), flushed to PostgreSQL behind.")
@click.option("--buffer", "buffer_url", help="Redis URL of the write buffer (buffered).")
def serve(host: str | None, port: int | None, data: Path | None, config_file: Path | None,
          store: str | None, store_prefix: str | None, log_url: str | None,
          durability: str | None, buffer_url: str | None) -> None:
    """Run the HTTP API, dashboard and /metrics.

    \b
    Settings come from --config FILE, then TALLYBOARD_* variables, then these flags:
        tallyboard serve --port 9000 --data /var/lib/tallyboard
        tallyboard serve --log postgresql://postgres@127.0.0.1/tallyboard
        tallyboard serve --log postgresql://postgres@127.0.0.1/tallyboard \\
            --durability buffered --buffer redis://127.0.0.1:6379/0
    Several servers behind a load balancer, sharing one hot store:
        tallyboard serve --port 8081 --store redis://127.0.0.1:6379/0 \
            --log postgresql://postgres@127.0.0.1/tallyboard
    Open http://127.0.0.1:8080/ for the dashboard and /docs for the API.
    """
    import uvicorn

    from .api import create_app

    try:
        settings = load_settings(config_file, host=host, port=port, data=data, log=log_url,
                                 durability=durability, buffer=buffer_url, store=store,
                                 store_prefix=store_prefix)
    except ValidationError as exc:
        raise click.ClickException(f"invalid settings:\n{exc}") from None
    if not settings.keys and not _is_loopback(settings.host):
        raise click.ClickException(
            f"refusing to listen on {settings.host} without API keys: anyone could write. "
            "Add [[keys]] to the config file, or listen on 127.0.0.1.")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: "
                        "%(message)s")
    with _replay_bar(settings.log_url) as on_replay:
        durable = _log(settings, on_replay)
        engine = Tallyboard(
            durable, default_config=settings.metric_defaults, skew=settings.skew_seconds,
            id_retention=settings.id_retention_days * 86400, on_replay=on_replay)
    tune_gc()
    console.print(f"[green]tallyboard[/] {engine.events_total:,} events loaded in "
                  f"{engine.rebuild_seconds:.2f}s; listening on "
                  f"http://{settings.host}:{settings.port}")
    try:
        uvicorn.run(create_app(engine, settings), host=settings.host, port=settings.port,
                    log_level="warning", access_log=False)
    finally:
        engine.close()


def _log(settings: Settings, progress: Callable[[int, int | None], None]) -> Any:
    """The durable log the settings name, shared through the hot store if they name one
    (an empty one is filled from the log first, reporting `progress`)."""
    from .stores import buffered_log, log_from_url, shared_log

    try:
        if settings.durability == "buffered":
            assert settings.buffer is not None  # checked by Settings
            log = buffered_log(settings.log_url, settings.buffer,
                               settings.buffer_max_entries)
        else:
            log = log_from_url(settings.log_url)
        if settings.store is not None:
            log = shared_log(log, settings.store, settings.store_prefix,
                             settings.id_retention_days * 86400, progress)
        return log
    except TallyboardError as exc:
        raise click.ClickException(f"{exc.code}: {exc.message}") from exc


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["auto", "ndjson", "csv"]), default="auto",
              show_default=True, help="File format; auto looks at the extension.")
@click.option("--batch-size", default=5000, show_default=True, type=click.IntRange(1, 10_000),
              help="Events per atomic write.")
@_store_options
def ingest(file: Path, fmt: str, batch_size: int, data: Path, url: str | None,
           key: str | None, space: str) -> None:
    """Load events from an NDJSON or CSV file, in batches, with a progress bar.

    \b
    NDJSON: one event object per line, as POST /v1/events takes.
    CSV: a header with metric,member and optionally value,ts,id,space and
    tag.<dimension> columns (empty cells are left out).
    Bad lines are skipped and listed with their line numbers; the rest is kept.
    """
    if fmt == "auto":
        fmt = "csv" if file.suffix.lower() == ".csv" else "ndjson"
    accepted = duplicates = 0
    rejected: list[tuple[int, str]] = []
    with _opened(data, url, key) as tb, Progress(
        TextColumn("[bold]ingest"), BarColumn(), TransferSpeedColumn(), TimeRemainingColumn(),
        console=console, transient=False,
    ) as bar:
        task = bar.add_task("ingest", total=file.stat().st_size)
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
    for lineno, why in sorted(rejected)[:50]:
        out.print(f"  line {lineno}: {why}")
    if len(rejected) > 50:
        out.print(f"  … and {len(rejected) - 50:,} more")
    if rejected:
        sys.exit(1)


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
            event[col] = _number(cell)
        else:
            event[col] = cell
    if tags:
        event["tags"] = tags
    return event


def _number(text: str) -> int | float | str:
    """A CSV cell as int or float when numeric, else the text (an RFC 3339 time)."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


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


def _board_table(title: str, entries: list[Any]) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("member")
    table.add_column("score", justify="right")
    for e in entries:
        table.add_row(str(e.rank), e.member, f"{e.score:,}")
    return table


@main.command()
@click.argument("metric")
@click.option("--window", default="all", show_default=True,
              help="all, day, week, month, year, rolling:24h, range (with --start/--end).")
@click.option("-n", default=10, show_default=True, type=click.IntRange(1, 1000))
@click.option("--offset", default=0, show_default=True, type=click.IntRange(0))
@click.option("--at", help="As of this instant (Unix seconds or RFC 3339); default now.")
@click.option("--start", help="Range start (window=range).")
@click.option("--end", help="Range end (window=range).")
@click.option("--tag", help="Filter on one dimension: DIMENSION=VALUE.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@_store_options
def top(metric: str, window: str, n: int, offset: int, at: str | None, start: str | None,
        end: str | None, tag: str | None, as_json: bool, data: Path, url: str | None,
        key: str | None, space: str) -> None:
    """Show a leaderboard.

    \b
        tallyboard top study_seconds --window week -n 20
        tallyboard top points --window rolling:24h --tag activity=run
    """
    with _opened(data, url, key) as tb:
        board = tb.leaderboard(metric, window=window, n=n, offset=offset, at=at, start=start,
                               end=end, space=space, tag=_tag(tag))
    if as_json:
        out.print_json(json.dumps(board.to_dict()))
        return
    out.print(_board_table(f"{metric} · {window} · {board.total:,} members", board.entries))


@main.command(name="sum")
@click.argument("metric")
@click.argument("member")
@click.option("--start", help="From (inclusive), Unix seconds or RFC 3339; default open.")
@click.option("--end", help="To (exclusive); default open.")
@click.option("--tag", help="Filter on one dimension: DIMENSION=VALUE.")
@_store_options
def sum_(metric: str, member: str, start: str | None, end: str | None, tag: str | None,
         data: Path, url: str | None, key: str | None, space: str) -> None:
    """Print a member's total over [start, end).

    \b
        tallyboard sum points alice --start 2026-11-01T00:00:00Z
    """
    with _opened(data, url, key) as tb:
        out.print(tb.sum(metric, member, start=start, end=end, space=space, tag=_tag(tag)))


@main.command()
@click.argument("metric")
@click.argument("member")
@click.option("--window", default="all", show_default=True, help="As for `top`.")
@click.option("--radius", default=2, show_default=True, type=click.IntRange(0, 1000),
              help="Neighbours to show on each side.")
@click.option("--at", help="As of this instant; default now.")
@click.option("--tag", help="Filter on one dimension: DIMENSION=VALUE.")
@_store_options
def rank(metric: str, member: str, window: str, radius: int, at: str | None, tag: str | None,
         data: Path, url: str | None, key: str | None, space: str) -> None:
    """Show a member's rank and the members around it.

    \b
        tallyboard rank points alice --window month --radius 3
    """
    with _opened(data, url, key) as tb:
        got = tb.rank(metric, member, window=window, radius=radius, at=at, space=space,
                      tag=_tag(tag))
    if got.rank is None:
        out.print(f"{member} has no score in {window} ({got.total:,} members ranked)")
        return
    out.print(_board_table(f"{member}: rank {got.rank} of {got.total:,} · score "
                           f"{got.score:,}", got.around))


@main.command()
@click.argument("metric")
@click.argument("member")
@click.option("--min", "minimum", default=1, show_default=True, type=click.IntRange(1),
              help="A day counts when its total is at least this.")
@click.option("--at", help="As of this instant; default now.")
@click.option("--timezone", help="The member's own timezone (overrides the metric's).")
@click.option("--day-start", help="The member's day start HH:MM (default 00:00 with "
              "--timezone).")
@_store_options
def streak(metric: str, member: str, minimum: int, at: str | None, timezone: str | None,
           day_start: str | None, data: Path, url: str | None, key: str | None,
           space: str) -> None:
    """Show a member's current and longest streak of days.

    \b
        tallyboard streak study_seconds alice --min 1800 --timezone Asia/Kolkata
    """
    with _opened(data, url, key) as tb:
        got = tb.streak(metric, member, min=minimum, at=at, timezone=timezone,
                        day_start=day_start, space=space)
    for name, run in (("current", got.current), ("longest", got.longest)):
        span = f" ({run.first_day} → {run.last_day})" if run.length else ""
        out.print(f"{name}: {run.length} day{'s' if run.length != 1 else ''}{span}")


@main.group()
def presence() -> None:
    """Who is where: record joins, leaves and snapshots; list rooms and migrations.

    
        tallyboard presence join library alice
        tallyboard presence snapshot library alice bob carol
        tallyboard presence rooms
    """


def _presence_op(op: dict[str, Any], ts: str | None, data: Path, url: str | None,
                 key: str | None, space: str) -> None:
    if ts is not None:
        op["ts"] = _number(ts)
    with _opened(data, url, key) as tb:
        got = tb.presence([op], space=space)
    out.print(f"accepted {got.accepted} · duplicates {got.duplicates}")


@presence.command()
@click.argument("room")
@click.argument("member")
@click.option("--ts", help="When (Unix seconds or RFC 3339); default now.")
@_store_options
def join(room: str, member: str, ts: str | None, data: Path, url: str | None,
         key: str | None, space: str) -> None:
    """MEMBER joins ROOM (a second join while present changes nothing)."""
    _presence_op({"type": "join", "room": room, "member": member}, ts, data, url, key, space)


@presence.command()
@click.argument("room")
@click.argument("member")
@click.option("--ts", help="When (Unix seconds or RFC 3339); default now.")
@_store_options
def leave(room: str, member: str, ts: str | None, data: Path, url: str | None,
          key: str | None, space: str) -> None:
    """MEMBER leaves ROOM; the session's seconds stay credited."""
    _presence_op({"type": "leave", "room": room, "member": member}, ts, data, url, key, space)


@presence.command()
@click.argument("room")
@click.argument("members", nargs=-1)
@click.option("--ts", help="When (Unix seconds or RFC 3339); default now.")
@_store_options
def snapshot(room: str, members: tuple[str, ...], ts: str | None, data: Path,
             url: str | None, key: str | None, space: str) -> None:
    """Everyone in ROOM now is MEMBERS: the absent join, the unlisted leave."""
    _presence_op({"type": "snapshot", "room": room, "members": list(members)}, ts, data, url,
                 key, space)


@presence.command()
@_store_options
def rooms(data: Path, url: str | None, key: str | None, space: str) -> None:
    """Rooms with someone present, most crowded first."""
    with _opened(data, url, key) as tb:
        found = tb.rooms(space=space)
    table = Table(title=f"rooms in {space}", title_justify="left")
    table.add_column("room")
    table.add_column("members", justify="right")
    for r in found:
        table.add_row(r["room"], str(r["members"]))
    out.print(table)


@presence.command()
@click.option("--start", help="From (by the join's time).")
@click.option("--end", help="To (exclusive).")
@click.option("--member", help="Also list this member's moves.")
@_store_options
def migrations(start: str | None, end: str | None, member: str | None, data: Path,
               url: str | None, key: str | None, space: str) -> None:
    """Moves between rooms, counted per pair."""
    with _opened(data, url, key) as tb:
        got = tb.migrations(start=start, end=end, member=member, space=space)
    table = Table(title="migrations", title_justify="left")
    for col in ("from", "to", "count"):
        table.add_column(col)
    for m in got["migrations"]:
        table.add_row(m["from"], m["to"], str(m["count"]))
    out.print(table)
    for move in got.get("moves", []):
        out.print(f"  {move['ts']}: {move['from']} → {move['to']}")


@main.command()
@click.option("--data", type=click.Path(file_okay=False, path_type=Path),
              default=Path("tallyboard-data"), show_default=True)
@click.option("--log", "log_url", help="Durable log URL instead of --data, e.g. "
                                      "postgresql://user@host/db.")
@click.option("--metric", help="Also replay this metric alone (as PUT ?rebuild=true does).")
@click.option("--space", default="default", show_default=True)
@click.option("--store", help="Refill this hot store (redis://…) from the PostgreSQL --log: "
                              "after Redis was flushed or lost.")
@click.option("--store-prefix", default="tb", show_default=True,
              help="The hot store's key prefix (as the servers use it).")
def rebuild(data: Path, log_url: str | None, metric: str | None, space: str,
            store: str | None, store_prefix: str) -> None:
    """Rebuild state from the durable log and report what it holds.

    The embedded store always rebuilds on start; this checks the log reads back whole and
    says how long it takes. With --store it refills the shared hot store from PostgreSQL
    (every key under the prefix is replaced); running servers answer 503 meanwhile and
    then reload, identical to before.

    \b
        tallyboard rebuild --data ./tallyboard-data
        tallyboard rebuild --log postgresql://postgres@127.0.0.1/tallyboard
        tallyboard rebuild --log postgresql://postgres@127.0.0.1/tallyboard \
            --store redis://127.0.0.1:6379/0
    """
    started = time.perf_counter()
    if store:
        _rebuild_store(log_url, store, store_prefix)
        return
    with _opened(log_url or data, None, None) as tb:
        assert isinstance(tb, Tallyboard)
        out.print(f"replayed {tb.events_total:,} events into "
                  f"{int(tb.stats()['metrics'])} metrics in "
                  f"{time.perf_counter() - started:.2f}s")
        if metric:
            info = tb.set_metric(metric, space=space, rebuild=True)
            out.print(f"{space}/{metric}: replayed {info.get('replayed', 0):,} events")


def _rebuild_store(log_url: str | None, store: str, prefix: str) -> None:
    from .stores.postgres import PostgresLog
    from .stores.redis_feed import RedisFeed

    if not (log_url or "").startswith(("postgresql://", "postgres://")):
        raise click.ClickException("--store needs the PostgreSQL --log to rebuild it from")
    started = time.perf_counter()
    try:
        feed = RedisFeed(PostgresLog(str(log_url)), store, prefix=prefix, fill=False)
        try:
            with _replay_bar(str(log_url)) as on_replay:
                batches = feed.rebuild(on_replay)
        finally:
            feed.close()
    except TallyboardError as exc:
        raise click.ClickException(f"{exc.code}: {exc.message}") from exc
    out.print(f"hot store {store} (prefix {prefix}): {batches:,} batches from {log_url} "
              f"in {time.perf_counter() - started:.2f}s")


@main.group()
def simulate() -> None:
    """Generate live load against a store and check every event arrived."""


@simulate.command()
@click.option("--matches", default=5, show_default=True, type=click.IntRange(1, 1000))
@click.option("--users", default=1000, show_default=True, type=click.IntRange(1))
@click.option("--rate", default=1000.0, show_default=True, type=click.FloatRange(1),
              help="Reactions per second.")
@click.option("--duration", default=30.0, show_default=True, type=click.FloatRange(0.5),
              help="Seconds to send for.")
@click.option("--every", default=2.0, show_default=True, help="Seconds between table updates.")
@click.option("--url", help="Send to a running server instead of --data.")
@click.option("--key", help="API key for --url (write and admin scopes).")
@click.option("--data", type=click.Path(file_okay=False, path_type=Path),
              default=Path("tallyboard-data"), show_default=True)
@click.option("--log", "log_url", help="With --url: the server's durable log, to count "
                                       "what reached it (postgresql://…, sqlite:///…).")
@click.option("--space", help="Space for the run (default: sim-<unix time>, a fresh one).")
@click.option("--seed", default=0, show_default=True)
def reactions(matches: int, users: int, rate: float, duration: float, every: float,
              url: str | None, key: str | None, data: Path, log_url: str | None,
              space: str | None, seed: int) -> None:
    """Emoji reactions during live matches: random users react at --rate.

    Shows a live table of counts per match and emoji (and each emoji's rate over the last
    10 s), read back from the store; at the end prints how many reactions were sent,
    accepted and found in the durable log, and fails unless the three are equal.

    \b
        tallyboard simulate reactions --matches 3 --users 500 --rate 2000 --duration 10
        tallyboard simulate reactions --url http://127.0.0.1:8080 --rate 20000 \\
            --log postgresql://postgres@127.0.0.1/tallyboard
    """
    from .simulate import METRIC, ReactionLoad

    space = space or f"sim-{int(time.time())}"
    load = ReactionLoad(matches, users, rate, space, seed)
    with _opened(data, url, key) as tb:
        tb.set_metric(METRIC, dimensions=["match"], space=space)
        with Live(console=out, auto_refresh=False) as live:
            def show(elapsed: float, counts: Any) -> None:
                live.update(_reactions_table(load.table(tb, elapsed), elapsed, counts),
                            refresh=True)

            counts = load.run(tb, duration, every, show)
        out.print()
        if url and not log_url:
            found, where = _events_in(tb, space), "the server (hot state; --log counts the log)"
    if not url:
        with _opened(data, None, None) as again:  # a fresh replay of the log on disk
            found, where = _events_in(again, space), f"the durable log in {data}"
    elif log_url:
        found, where = _count_in_log(log_url, space, counts.accepted), "the durable log"
    for error in counts.errors[:5]:
        console.print(f"[red]error[/] {error}")
    out.print(f"sent {counts.sent:,} · accepted {counts.accepted:,} · duplicates "
              f"{counts.duplicates:,} · found {found:,} in {where}")
    if not counts.sent == counts.accepted == found:
        raise click.ClickException("sent, accepted and found differ")


def _events_in(tb: Tallyboard | RemoteTallyboard, space: str) -> int:
    from .simulate import METRIC

    return sum(int(m["events"]) for m in tb.metrics(space=space) if m["metric"] == METRIC)


def _count_in_log(log_url: str, space: str, want: int, patience: float = 30.0) -> int:
    """Events of the run in the durable log, waiting for a buffered flush to catch up."""
    from .stores import log_from_url

    deadline = time.monotonic() + patience
    while True:
        with Tallyboard(log_from_url(log_url)) as replayed:
            found = _events_in(replayed, space)
        if found >= want or time.monotonic() > deadline:
            return found
        time.sleep(1)


def _reactions_table(rows: list[dict[str, Any]], elapsed: float, counts: Any) -> Table:
    from .simulate import EMOJI

    table = Table(title=f"{elapsed:5.1f}s · sent {counts.sent:,} · accepted "
                        f"{counts.accepted:,}", title_justify="left")
    table.add_column("match")
    for emoji in EMOJI:
        table.add_column(f"{emoji} (/s)", justify="right")
    for row in rows:
        table.add_row(row["match"], *(f"{row['counts'].get(e, 0):,} "
                                      f"({row['rate'].get(e, 0):,.0f})" for e in EMOJI))
    return table


@main.command()
@click.option("--log", "log_url", required=True, envvar="TALLYBOARD_LOG",
              help="PostgreSQL URL of the durable log (or $TALLYBOARD_LOG).")
def migrate(log_url: str) -> None:
    """Create or upgrade the PostgreSQL schema of the durable log.

    Safe to run again and from several hosts at once (an advisory lock serialises it);
    servers also migrate on start.

    \b
        tallyboard migrate --log postgresql://postgres@127.0.0.1:5432/tallyboard
    """
    from .stores.postgres import migrate as apply

    try:
        applied = apply(log_url)
    except TallyboardError as exc:
        raise click.ClickException(f"{exc.code}: {exc.message}") from exc
    out.print(f"applied schema versions {applied}" if applied else "schema is up to date")


@main.command()
@click.option("--workload", "workloads", multiple=True, show_default=True, default=["all"],
              type=click.Choice(["psd", "study", "reactions", "presence", "commits", "hot",
                                 "all"]),
              help="Workload to run; repeat for several. hot: the shared Redis hot store "
                   "against the seed Redis design (needs --pg and --redis).")
@click.option("--scale", default=1.0, show_default=True, type=click.FloatRange(0.001, 10),
              help="Fraction of the full event counts (0.05 for a quick look).")
@click.option("--queries", default=2000, show_default=True, type=click.IntRange(10),
              help="Timed calls per query kind.")
@click.option("--no-http", is_flag=True, help="Skip the HTTP ingest run.")
@click.option("--pg", "pg_url", help="PostgreSQL server for the commits workload (a "
                                     "database of its own is made and dropped), e.g. "
                                     "postgresql://postgres@127.0.0.1/postgres.")
@click.option("--redis", "redis_url", help="Redis for the hot workload (keys under a "
                                           "prefix of its own, deleted after), e.g. "
                                           "redis://127.0.0.1:6379/0.")
@click.option("--out", "out_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the raw results as JSON.")
@click.option("--markdown", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the results as Markdown (e.g. docs/benchmarks.md).")
def bench(workloads: tuple[str, ...], scale: float, queries: int, no_http: bool, pg_url: str | None,
          redis_url: str | None, out_file: Path | None, markdown: Path | None) -> None:
    """Benchmark ingest and queries against targets and a naive baseline.

    \b
        tallyboard bench --workload all --markdown docs/benchmarks.md
        tallyboard bench --workload study --scale 0.05 --no-http
        tallyboard bench --workload hot --pg postgresql://postgres@127.0.0.1/postgres \
            --redis redis://127.0.0.1:6379/0
    "all" includes hot when --pg and --redis are given.
    """
    from .bench.runner import format_markdown, run_bench

    every = ["psd", "study", "reactions", "presence", "commits"]
    every += ["hot"] if pg_url and redis_url else []
    names = every if "all" in workloads else list(dict.fromkeys(workloads))
    if "hot" in names and not (pg_url and redis_url):
        raise click.UsageError("--workload hot needs --pg and --redis")
    with Progress(TextColumn("{task.description}"), BarColumn(), TimeRemainingColumn(),
                  console=console) as bar:
        tasks: dict[str, Any] = {}

        def progress(description: str, done: int, total: int) -> None:
            if description not in tasks:
                tasks[description] = bar.add_task(description, total=total)
            bar.update(tasks[description], completed=done, total=total)

        results = run_bench(names, scale=scale, queries=queries, http=not no_http,
                            pg=pg_url, redis=redis_url, progress=progress)
    text = format_markdown(results)
    if out_file:
        out_file.write_text(json.dumps(results, indent=2))
    if markdown:
        markdown.write_text(text)
    out.print(text)


if __name__ == "__main__":
    main()
