"""What every command shares: consoles, the store options, opening a store with a
progress bar over its rebuild."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)

from .. import open as open_tallyboard
from ..client import RemoteTallyboard
from ..engine import Tallyboard
from ..errors import TallyboardError
from ..redact import redact

console = Console(stderr=True)
out = Console()


def store_options(fn: Any) -> Any:
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
def replay_bar(source: str) -> Iterator[Callable[[int, int | None], None]]:
    """A progress bar over the batches of a rebuild from the durable log at `source`."""
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("batches"), TimeRemainingColumn(), console=console,
                  transient=True) as bar:
        task = bar.add_task(f"rebuilding from {redact(source)}", total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


@contextmanager
def opened(data: Path | str, url: str | None, key: str | None, *,
           read_only: bool = False) -> Iterator[Tallyboard | RemoteTallyboard]:
    """The server at `url`, else the embedded store in `data`: as its one writer (refused
    while another process writes it), or `read_only` beside that writer (queries)."""
    try:
        if url:
            tb: Tallyboard | RemoteTallyboard = open_tallyboard(url, key=key)
        else:
            with replay_bar(str(data)) as on_replay:
                tb = open_tallyboard(str(data), on_replay=on_replay, read_only=read_only)
    except TallyboardError as exc:
        raise failure(exc) from exc
    except (OSError, ValueError) as exc:
        raise click.ClickException(redact(str(exc))) from exc
    try:
        yield tb
    except TallyboardError as exc:
        raise failure(exc) from exc
    finally:
        tb.close()


def failure(exc: TallyboardError) -> click.ClickException:
    """A tallyboard error as the command's exit message, credentials redacted."""
    return click.ClickException(redact(f"{exc.code}: {exc.message}"))


def parse_tag(text: str | None) -> tuple[str, str] | None:
    if not text:
        return None
    dim, sep, value = text.partition("=")
    if not sep or not dim or not value:
        raise click.BadParameter("use --tag DIMENSION=VALUE", param_hint="--tag")
    return dim, value


def number(text: str) -> int | float | str:
    """A CSV cell or a --ts value as int or float when numeric, else the text (RFC 3339)."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def errors_from_server(url: str, key: str | None, path: str,
                       params: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``errors`` a running process lists at `path` (a bot's, a worker's)."""
    import httpx

    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        r = httpx.get(url.rstrip("/") + path, params=params, headers=headers, timeout=30)
    except httpx.TransportError as exc:
        raise click.ClickException(redact(f"cannot reach {url}: {exc}")) from exc
    if r.status_code != 200:
        raise click.ClickException(f"{r.status_code}: {r.text[:300]}")
    found: list[dict[str, Any]] = r.json()["errors"]
    return found


def show_errors(found: list[dict[str, Any]], as_json: bool, what: str,
                columns: tuple[str, ...], row: Callable[[dict[str, Any]], list[str]]) -> None:
    """Kept errors as JSON, or a table of `columns` (one `row` each), newest first."""
    import json

    from rich.table import Table

    if as_json:
        out.print_json(json.dumps({"errors": found}))
        return
    if not found:
        out.print(f"no {what} kept")
        return
    table = Table(title=f"{len(found)} newest {what}", show_lines=True)
    for column in columns:
        table.add_column(column)
    for e in found:
        table.add_row(*row(e))
    out.print(table)


def utc(ts: float) -> str:
    """Unix seconds as a UTC time a person reads."""
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")
