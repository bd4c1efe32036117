"""`tallyboard worker`: consume events from message brokers into the engine."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click

from ..client import RemoteTallyboard
from ..engine import Tallyboard
from ..errors import TallyboardError
from ..redact import redact
from . import main
from .common import console

FROM_HELP = ("A queue to consume; repeat for several: nats://host:4222/STREAM/SUBJECT, "
             "redis-stream://host:6379/DB/KEY?group=G, amqp://user:pass@host:5672/QUEUE.")


@main.command()
@click.option("--from", "sources", multiple=True, required=True, metavar="URL", help=FROM_HELP)
@click.option("--url", help="Write to a tallyboard server instead of an engine of its own "
                            "(key: TALLYBOARD_KEY).")
@click.option("--data", type=click.Path(file_okay=False, path_type=Path),
              help="Embedded data directory (default ./tallyboard-data); also where "
                   "rejected messages are kept (ingest-errors.sqlite3) unless --state says.")
@click.option("--log", "log_url", help="Durable log URL: sqlite:///… or postgresql://….")
@click.option("--store", help="Shared hot store redis://host:port/db, so several workers and "
                              "servers share one state (needs a PostgreSQL --log).")
@click.option("--store-prefix", help="Key prefix in the hot store (default tb).")
@click.option("--state", "state_url", help="Where rejected messages are kept: a directory, "
                                           "sqlite:///… or postgresql://… (default: the "
                                           "PostgreSQL --log, else --data).")
@click.option("--space", default="default", show_default=True,
              help="Space of items that name none.")
@click.option("--batch", default=1000, show_default=True, type=click.IntRange(1, 10_000),
              help="Most messages fetched and acked together (fewer when messages hold "
                   "many events: about 50,000 events a batch); at most 4x this delivered "
                   "unacked on JetStream, and RabbitMQ's prefetch.")
@click.option("--host", help="Address of the HTTP side (default 127.0.0.1).")
@click.option("--port", type=int, help="Port of the HTTP side (default 8080).")
@click.option("--config", "config_file", type=click.Path(dir_okay=False, exists=True,
                                                         path_type=Path),
              help="TOML config file (see docs/configuration.md).")
def worker(sources: tuple[str, ...], url: str | None, data: Path | None, log_url: str | None,
           store: str | None, store_prefix: str | None, state_url: str | None, space: str,
           batch: int, host: str | None, port: int | None, config_file: Path | None) -> None:
    """Consume tallyboard events from message brokers, exactly once in effect.

    Each message is what POST /v1/events (or /v1/presence) takes: one object, a JSON
    array or NDJSON. Messages are applied in batches and acked once durable; a message
    redelivered after a crash counts once (items without an id get one from the
    message's place in its broker). A message that cannot be applied is kept with its
    reason and acked: `tallyboard errors --kind ingest` lists them. The HTTP side has
    /metrics, /readyz (503 while a broker is down) and /v1/ingest/errors; beside an
    engine of its own, the whole API. See docs/queues.md.

    \b
        tallyboard worker --from redis-stream://127.0.0.1:6379/0/events?group=tallyboard
        tallyboard worker --from nats://127.0.0.1:4222/EVENTS/events.points \\
            --from amqp://guest:guest@127.0.0.1:5672/events --port 9110
    Several workers sharing one state (Redis hot store, PostgreSQL log):
        tallyboard worker --from nats://127.0.0.1:4222/EVENTS/events --port 9111 \\
            --store redis://127.0.0.1:6379/0 --log postgresql://postgres@127.0.0.1/tallyboard
    Beside a server that owns the embedded data:
        tallyboard worker --from redis-stream://127.0.0.1:6379/0/events \\
            --url http://127.0.0.1:8080 --port 9110
    """
    import os

    from ..api import add_ingest_routes, create_app, create_bot_app
    from ..queue.kept import open_kept
    from ..queue.run import serve
    from ..queue.sources import open_source
    from ..queue.telemetry import QueueMetrics
    from ..queue.worker import Worker
    from .server import SWITCH_INTERVAL, open_engine, settings_or_exit

    settings = settings_or_exit(config_file, host=host, port=port, data=data, log=log_url,
                                store=store, store_prefix=store_prefix)
    try:
        queues = [open_source(u) for u in dict.fromkeys(sources)]
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    log = settings.log or ""
    where = state_url or (log if log.startswith(("postgresql://", "postgres://"))
                          else str(settings.data))
    try:
        kept = open_kept(where)
    except (TallyboardError, ValueError) as exc:
        raise click.ClickException(redact(str(exc))) from exc
    tally: Tallyboard | RemoteTallyboard
    if url:
        tally = RemoteTallyboard(url, key=os.environ.get("TALLYBOARD_KEY"))
        app = create_bot_app(None, settings)
        registry = app.state.registry
    else:
        tally = engine = open_engine(settings)
        app = create_app(engine, settings)
        registry = app.state.telemetry.registry
    running = Worker(tally, queues, kept, QueueMetrics(registry), space=space, batch=batch)
    # as `serve` does: the event loop (broker I/O, HTTP reads) waits for the GIL behind
    # the thread applying a batch for at most 1 ms a turn, not the default 5 ms
    sys.setswitchinterval(SWITCH_INTERVAL)
    add_ingest_routes(app, kept, running.problems)
    console.print(f"[green]tallyboard worker[/] consuming {', '.join(q.name for q in queues)} "
                  f"into {redact(url or settings.log_url)}; HTTP on "
                  f"http://{settings.host}:{settings.port}")
    try:
        asyncio.run(serve(running, app, settings.host, settings.port))
    finally:
        tally.close()
        kept.close()
