"""`tallyboard presence`: joins, leaves, snapshots, rooms and migrations from the shell."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.table import Table

from . import main
from .common import number, opened, out, store_options


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
        op["ts"] = number(ts)
    with opened(data, url, key) as tb:
        got = tb.presence([op], space=space)
    out.print(f"accepted {got.accepted} · duplicates {got.duplicates}")


@presence.command()
@click.argument("room")
@click.argument("member")
@click.option("--ts", help="When (Unix seconds or RFC 3339); default now.")
@store_options
def join(room: str, member: str, ts: str | None, data: Path, url: str | None,
         key: str | None, space: str) -> None:
    """MEMBER joins ROOM (a second join while present changes nothing)."""
    _presence_op({"type": "join", "room": room, "member": member}, ts, data, url, key, space)


@presence.command()
@click.argument("room")
@click.argument("member")
@click.option("--ts", help="When (Unix seconds or RFC 3339); default now.")
@store_options
def leave(room: str, member: str, ts: str | None, data: Path, url: str | None,
          key: str | None, space: str) -> None:
    """MEMBER leaves ROOM; the session's seconds stay credited."""
    _presence_op({"type": "leave", "room": room, "member": member}, ts, data, url, key, space)


@presence.command()
@click.argument("room")
@click.argument("members", nargs=-1)
@click.option("--ts", help="When (Unix seconds or RFC 3339); default now.")
@store_options
def snapshot(room: str, members: tuple[str, ...], ts: str | None, data: Path,
             url: str | None, key: str | None, space: str) -> None:
    """Everyone in ROOM now is MEMBERS: the absent join, the unlisted leave."""
    _presence_op({"type": "snapshot", "room": room, "members": list(members)}, ts, data, url,
                 key, space)


@presence.command()
@store_options
def rooms(data: Path, url: str | None, key: str | None, space: str) -> None:
    """Rooms with someone present, most crowded first."""
    with opened(data, url, key, read_only=True) as tb:
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
@click.option("-n", "n", type=click.IntRange(min=1), help="Only the n most frequent pairs.")
@click.option("--from", "source", help="Only moves out of this room.")
@click.option("--to", "target", help="Only moves into this room.")
@click.option("--viewers", type=click.IntRange(1, 100_000),
              help="With --from and --to: list up to this many members behind that flow, "
                   "with their leave and join times.")
@store_options
def migrations(start: str | None, end: str | None, member: str | None, n: int | None,
               source: str | None, target: str | None, viewers: int | None,
               data: Path, url: str | None, key: str | None, space: str) -> None:
    """Moves between rooms, counted per pair, most frequent first.

    \b
        tallyboard presence migrations --space twitch -n 10
        tallyboard presence migrations --space twitch --from alpha --to beta --viewers 20
    """
    with opened(data, url, key, read_only=True) as tb:
        got = tb.migrations(start=start, end=end, member=member, n=n, source=source,
                            target=target, viewers=viewers, space=space)
    table = Table(title="migrations", title_justify="left")
    for col in ("from", "to", "count"):
        table.add_column(col)
    for m in got["migrations"]:
        table.add_row(m["from"], m["to"], str(m["count"]))
    out.print(table)
    for move in got.get("moves", []):
        out.print(f"  {move['ts']}: {move['from']} → {move['to']}")
    if "viewers" in got:
        behind = Table(title=f"members behind {source} → {target}", title_justify="left")
        for col in ("member", "left", "joined"):
            behind.add_column(col)
        for v in got["viewers"]:
            behind.add_row(v["member"], str(v["left"]), str(v["joined"]))
        out.print(behind)


@presence.command()
@click.argument("room")
@click.option("--start", help="From (Unix seconds or RFC 3339); with neither --start nor "
                              "--end: who is present now.")
@click.option("--end", help="To (exclusive; default now).")
@click.option("-n", "n", type=click.IntRange(min=1), help="Only the n rooms sharing most.")
@store_options
def overlap(room: str, start: str | None, end: str | None, n: int | None, data: Path,
            url: str | None, key: str | None, space: str) -> None:
    """Audience overlap: which other rooms ROOM's members were in too, most first.

    \b
        tallyboard presence overlap alpha --space twitch            # present now
        tallyboard presence overlap alpha --space twitch --start 2026-12-01T00:00:00Z
    """
    with opened(data, url, key, read_only=True) as tb:
        got = tb.overlap(room, start=start, end=end, n=n, space=space)
    table = Table(title=f"{got['audience']} members of {room} were also in",
                  title_justify="left")
    for col, justify in (("room", "left"), ("members", "right"), ("share", "right")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for o in got["overlap"]:
        table.add_row(o["room"], str(o["members"]), f"{o['share']:.1%}")
    out.print(table)
