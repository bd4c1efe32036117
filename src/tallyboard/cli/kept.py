"""`tallyboard errors --kind ingest`: the messages a queue worker kept, and replaying
them after a fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..errors import TallyboardError
from ..redact import HIDDEN, redact
from .common import errors_from_server, out, show_errors, utc


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
        found = errors_from_server(url, key, "/v1/ingest/errors", {"limit": limit})
    else:
        kept = _open(where)
        try:
            found = [e.to_dict() for e in kept.errors(limit=limit)]
        finally:
            kept.close()
    show_errors(found, as_json, "kept messages", ("#", "when (UTC)", "source", "reason",
                                                  "message"), _kept_row)


def _kept_row(e: dict[str, Any]) -> list[str]:
    when = utc(e["at"]) + (f"\nreplayed {utc(e['replayed'])}" if e["replayed"] else "")
    return [str(e["id"]), when, f"{e['source']}\n[dim]{e['origin']}[/]", e["reason"],
            e["body"][:300]]


def replay(where: str, ids: tuple[int, ...], to: str | None) -> None:
    """Publish kept messages `ids` again, as they were, to `to` or their own source."""
    from ..queue.messages import replayable
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
                    publisher.send([replayable(found[i].body, found[i].origin)
                                    for i in chosen])
            except ValueError as exc:
                raise click.UsageError(str(exc)) from exc
            except Exception as exc:  # the broker's own errors, whichever it is
                raise click.ClickException(redact(f"cannot publish to {target}: {exc}")) \
                    from exc
            kept.replayed(chosen)
            out.print(f"replayed {len(chosen)} message(s) to {redact(target)}")
    finally:
        kept.close()
