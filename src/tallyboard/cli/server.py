"""Running and keeping a server: serve, rebuild (the embedded state or the hot store)
and migrate (the PostgreSQL schema)."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError

from ..api.guards import is_loopback
from ..engine import Tallyboard
from ..errors import TallyboardError
from ..heap import tune_gc
from ..redact import redact, settings_problems
from ..settings import Settings, load_settings
from ..stores.sqlite import SQLiteLog
from . import main
from .common import console, failure, opened, out, replay_bar

SWITCH_INTERVAL = 0.001  # seconds a thread may keep the GIL while others wait (see serve)


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
        tallyboard serve --port 8081 --store redis://127.0.0.1:6379/0 \\
            --log postgresql://postgres@127.0.0.1/tallyboard
    Open http://127.0.0.1:8080/ for the dashboard and /docs for the API.
    """
    import uvicorn

    from ..api import create_app
    from ..api.wire import json_errors_protocol

    settings = settings_or_exit(config_file, host=host, port=port, data=data, log=log_url,
                                durability=durability, buffer=buffer_url, store=store,
                                store_prefix=store_prefix)
    engine = open_engine(settings)
    # A read hops between the event loop and a worker thread, and each hop waits for the
    # GIL, which a thread applying a write keeps for up to the switch interval (5 ms by
    # default): 1 ms keeps reads quick while writes run, for ~1% of write throughput.
    sys.setswitchinterval(SWITCH_INTERVAL)
    console.print(f"[green]tallyboard[/] {engine.events_total:,} events loaded in "
                  f"{engine.rebuild_seconds:.2f}s; listening on "
                  f"http://{settings.host}:{settings.port}")
    try:
        uvicorn.run(create_app(engine, settings), host=settings.host, port=settings.port,
                    log_level="warning", access_log=False, http=json_errors_protocol())
    finally:
        engine.close()


def settings_or_exit(config_file: Path | None, **overrides: Any) -> Settings:
    """Settings from the file, the environment and the flags; a clear exit if they are
    invalid or would expose an open server."""
    try:
        settings = load_settings(config_file, **overrides)
    except ValidationError as exc:
        raise click.ClickException(f"invalid settings:\n{settings_problems(exc.errors())}") \
            from None
    if not settings.keys and not is_loopback(settings.host):
        raise click.ClickException(
            f"refusing to listen on {settings.host} without API keys: anyone could write. "
            "Add [[keys]] to the config file, or listen on 127.0.0.1.")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: "
                        "%(message)s")
    return settings


def open_engine(settings: Settings) -> Tallyboard:
    """The engine the settings describe, rebuilt from its log with a progress bar, for a
    process serving HTTP on the settings' host and port (an embedded log's writer lock
    names that URL, so a refused second writer is told to go through it)."""
    with replay_bar(settings.log_url) as on_replay:
        durable = _log(settings, on_replay)
        engine = Tallyboard(
            durable, default_config=settings.metric_defaults, skew=settings.skew_seconds,
            id_retention=settings.id_retention_days * 86400, on_replay=on_replay,
            checkpoint_every=settings.checkpoint_every)
    if isinstance(durable, SQLiteLog) and durable.writer is not None:
        durable.writer.serving(_reachable_url(settings.host, settings.port))
    tune_gc()
    return engine


def _reachable_url(host: str, port: int) -> str:
    """Where a process on this machine reaches a server listening on `host`."""
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _log(settings: Settings, progress: Callable[[int, int | None], None]) -> Any:
    """The durable log the settings name, shared through the hot store if they name one
    (an empty one is filled from the log first, reporting `progress`)."""
    from ..stores import buffered_log, log_from_url, shared_log

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
        raise failure(exc) from exc
    except ValueError as exc:  # an unsupported URL
        raise click.ClickException(redact(str(exc))) from exc


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

    The embedded store starts from its checkpoint and replays only the batches after it;
    this replays the whole log (no checkpoint), to check it reads back whole and say how
    long that takes. With --store it refills the shared hot store from PostgreSQL
    (every key under the prefix is replaced). It is safe while servers keep writing:
    their writes are accepted (durable in PostgreSQL) and show once it ends; reads
    answer 503 meanwhile, then every server reloads and answers exactly what the log
    holds, writes made during the rebuild included.

    \b
        tallyboard rebuild --data ./tallyboard-data
        tallyboard rebuild --log postgresql://postgres@127.0.0.1/tallyboard
        tallyboard rebuild --log postgresql://postgres@127.0.0.1/tallyboard \\
            --store redis://127.0.0.1:6379/0
    """
    started = time.perf_counter()
    if store:
        _rebuild_store(log_url, store, store_prefix)
        return
    with opened(log_url or data, None, None, read_only=metric is None) as tb:
        assert isinstance(tb, Tallyboard)
        out.print(f"replayed {tb.events_total:,} events into "
                  f"{int(tb.stats()['metrics'])} metrics in "
                  f"{time.perf_counter() - started:.2f}s")
        if metric:
            info = tb.set_metric(metric, space=space, rebuild=True)
            out.print(f"{space}/{metric}: replayed {info.get('replayed', 0):,} events")


def _rebuild_store(log_url: str | None, store: str, prefix: str) -> None:
    from ..stores.postgres import PostgresLog
    from ..stores.redis_feed import RedisFeed

    if not (log_url or "").startswith(("postgresql://", "postgres://")):
        raise click.ClickException("--store needs the PostgreSQL --log to rebuild it from")
    started = time.perf_counter()
    try:
        feed = RedisFeed(PostgresLog(str(log_url)), store, prefix=prefix, fill=False)
        try:
            with replay_bar(str(log_url)) as on_replay:
                batches = feed.rebuild(on_replay)
        finally:
            feed.close()
    except TallyboardError as exc:
        raise failure(exc) from exc
    out.print(f"hot store {redact(store)} (prefix {prefix}): {batches:,} batches from "
              f"{redact(str(log_url))} in {time.perf_counter() - started:.2f}s, and the "
              "writes servers made meanwhile")


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
    from ..stores.postgres import migrate as apply

    try:
        applied = apply(log_url)
    except TallyboardError as exc:
        raise failure(exc) from exc
    out.print(f"applied schema versions {applied}" if applied else "schema is up to date")
