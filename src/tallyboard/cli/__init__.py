"""The `tallyboard` command: serve, ingest files, query, rebuild, bots and benchmark.

Every query command works against an embedded data directory (``--data``) or a running
server (``--url``), through the same Python API. One module a family of commands.
"""

from __future__ import annotations

import logging

import click


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



from . import bench, bots, ingest, presence, queries, server, simulate, worker  # noqa: E402 - they register on main

__all__ = ["bench", "bots", "ingest", "main", "presence", "queries", "server", "simulate",
           "worker"]
