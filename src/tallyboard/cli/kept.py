"""`tallyboard errors --kind ingest`: the messages a queue worker kept, and replaying
them after a fix."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import httpx
from rich.table import Table

from ..errors import TallyboardError
from ..redact import HIDDEN, redact
from .common import out


def _open(where: str) -> Any:
    from ..queue.kept import ERRORS_FILE, open_kept

    if "://" not in where and not (Path(where) / ERRORS_FILE).exists():
        raise click.ClickException(f"no kept messages in {where} (no {ERRORS_FILE}); give "
                                   "--data, --state or --url")
    try:
        return open_kept(where)
    except (TallyboardError, ValueError) as exc:
        raise click.ClickException(redact(str(exc))) from exc


def list_kept(url: str | None, key: str | None, where: str, limit: int,
              as_json: bool) -> None:
    """Print the newest kept messages (from a worker's HTTP side at `url`, else the
    database at `where`)."""
    if url:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        try:
            r = httpx.get(url.rstrip("/") + "/v1/ingest/errors", params={"limit": limit},
                          headers=headers, timeout=30)
        except httpx.TransportError as exc:
            raise click.ClickException(redact(f"cannot reach {url}: {exc}")) from exc
        if r.status_code != 200:
            raise click.ClickException(f"{r.status_code}: {r.text[:300]}")
        found: list[dict[str, Any]] = r.json()["errors"]
    else:
        kept = _open(where)
        try:
            found = [e.to_dict() for e in kept.errors(limit=limit)]
        finally:
            kept.close()
    if as_json:
        out.print_json(json.dumps({"errors": found}))
        return
    if not found:
        out.print("no messages kept")
        return
    table = Table(title=f"{len(found)} newest kept messages", show_lines=True)
    for column in ("#", "when (UTC)", "source", "reason", "message"):
        table.add_column(column)
    for e in found:
        when = datetime.fromtimestamp(e["at"], UTC).strftime("%Y-%m-%d %H:%M:%S")
        if e["replayed"]:
            when += "\nreplayed " + datetime.fromtimestamp(e["replayed"], UTC).strftime(
                "%Y-%m-%d %H:%M:%S")
        table.add_row(str(e["id"]), when, f"{e['source']}\n[dim]{e['origin']}[/]",
                      e["reason"], e["body"][:300], )
    out.print(table)


def replay(where: str, ids: tuple[int, ...], to: str | None) -> None:
    """Publish kept messages `ids` again, as they were, to `to` or their own source."""
    from ..queue.publish import Publisher

    kept = _open(where)
    try:
        found = {e.id: e for e in kept.errors(ids=ids)}
        missing = [i for i in ids if i not in found]
        if missing:
            raise click.ClickException(f"no kept message {', '.join(map(str, missing))}")
        again = [i for i in ids if found[i].replayed]
        if again:
            raise click.ClickException(
                f"message {', '.join(map(str, again))} was replayed already; a second "
                "replay would count it twice if the first one was applied")
        by_target: dict[str, list[int]] = {}
        for i in ids:
            target = to or found[i].source
            if HIDDEN in target:
                raise click.ClickException(f"message {i} came from {target}, whose password "
                                           "was not kept: give --to URL")
            by_target.setdefault(target, []).append(i)
        for target, chosen in by_target.items():
            try:
                with Publisher(target) as publisher:
                    publisher.send([found[i].body for i in chosen])
            except ValueError as exc:
                raise click.UsageError(str(exc)) from exc
            except Exception as exc:  # the broker's own errors, whichever it is
                raise click.ClickException(redact(f"cannot publish to {target}: {exc}")) \
                    from exc
            kept.replayed(chosen)
            out.print(f"replayed {len(chosen)} message(s) to {redact(target)}")
    finally:
        kept.close()
