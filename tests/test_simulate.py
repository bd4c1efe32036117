"""``tallyboard simulate reactions``: the live-match load generator sends at its rate,
shows counts read back from the store, and finds every accepted reaction in the log."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from pg_support import OwnRedis, PgDatabase
from support import ServerProcess
from tallyboard.cli import main

SUMMARY = re.compile(r"sent ([\d,]+) · accepted ([\d,]+) · duplicates 0 · found ([\d,]+)")


def numbers(output: str) -> tuple[int, ...]:
    found = SUMMARY.search(output.replace("\n", " "))
    assert found, output
    return tuple(int(n.replace(",", "")) for n in found.groups())


def test_embedded_run_finds_everything_in_the_log(tmp_path: Path) -> None:
    r = CliRunner().invoke(main, ["simulate", "reactions", "--matches", "2", "--users", "20",
                                  "--rate", "400", "--duration", "1.5", "--every", "0.5",
                                  "--data", str(tmp_path / "d"), "--space", "live"])
    assert r.exit_code == 0, r.output
    assert numbers(r.output) == (600, 600, 600)
    assert "match-2" in r.output and "🔥" in r.output


@pytest.mark.slow
def test_run_against_a_buffered_server_counts_the_postgresql_log(
        tmp_path: Path, postgres: PgDatabase) -> None:
    postgres.log()  # empty
    postgres.close_logs()
    own_redis = OwnRedis()
    own_redis.start()
    srv = ServerProcess(tmp_path / "data", "--log", postgres.url, "--durability", "buffered",
                        "--buffer", own_redis.url)
    try:
        srv.start()
        r = CliRunner().invoke(main, ["simulate", "reactions", "--url", srv.url, "--matches",
                                      "3", "--rate", "2000", "--duration", "2", "--every",
                                      "1", "--log", postgres.url])
        assert r.exit_code == 0, r.output
        assert numbers(r.output) == (4000, 4000, 4000)
        assert "the durable log" in r.output
    finally:
        srv.stop()
        own_redis.remove()
