"""The command line: ingest with a summary of bad lines, queries on --data and --url."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from support import ServerProcess
from tallyboard.cli import main

COMMANDS = ["serve", "ingest", "top", "sum", "rank", "streak", "rebuild", "bench", "discord",
            "errors"]


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def _events(path: Path) -> Path:
    lines = [json.dumps({"metric": "points", "member": "alice", "value": 30, "id": "a1"}),
             json.dumps({"metric": "points", "member": "bob", "value": 20, "id": "b1"}),
             "not json",
             json.dumps({"metric": "points", "member": "carl", "value": "7"}),
             "",
             json.dumps({"metric": "points", "member": "dora", "value": 20, "id": "a1"})]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_teaches_with_help(runner: CliRunner, command: str) -> None:
    got = runner.invoke(main, [command, "--help"])
    assert got.exit_code == 0
    assert "Usage:" in got.output and len(got.output.splitlines()) > 5


def test_ingest_ndjson_reports_accepted_duplicates_and_bad_lines(runner: CliRunner,
                                                                 tmp_path: Path) -> None:
    data = tmp_path / "data"
    got = runner.invoke(main, ["ingest", str(_events(tmp_path / "e.ndjson")), "--data",
                               str(data)])
    assert got.exit_code == 1  # some lines were rejected
    assert "accepted 2 · duplicates 1 · rejected 2" in got.output
    assert "line 3:" in got.output and "line 4: value:" in got.output
    top = runner.invoke(main, ["top", "points", "--data", str(data), "--json"])
    board = json.loads(top.output)
    assert [(e["member"], e["score"], e["rank"]) for e in board["entries"]] == [
        ("alice", 30, 1), ("bob", 20, 2)]


def test_ingest_csv_with_tags_then_query(runner: CliRunner, tmp_path: Path) -> None:
    data = tmp_path / "data"
    csv_file = tmp_path / "steps.csv"
    csv_file.write_text("metric,member,value,ts,tag.activity\n"
                        "steps,ann,100,1763800000,run\n"
                        "steps,ben,50,2025-11-22T08:26:40Z,walk\n"
                        "steps,ann,oops,,run\n")
    got = runner.invoke(main, ["ingest", str(csv_file), "--data", str(data)])
    assert "accepted 2 · duplicates 0 · rejected 1" in got.output
    assert "line 4: value 'oops' is not an integer" in got.output
    total = runner.invoke(main, ["sum", "steps", "ann", "--data", str(data)])
    assert total.output.strip() == "100"
    ranked = runner.invoke(main, ["rank", "steps", "ben", "--data", str(data)])
    assert "rank 2 of 2" in ranked.output
    streak = runner.invoke(main, ["streak", "steps", "ann", "--data", str(data)])
    assert streak.exit_code == 0 and "longest: 1 day (2025-11-22 → 2025-11-22)" in streak.output
    rebuilt = runner.invoke(main, ["rebuild", "--data", str(data)])
    assert "replayed 2 events into 1 metrics" in rebuilt.output


def test_query_errors_are_clear_not_tracebacks(runner: CliRunner, tmp_path: Path) -> None:
    got = runner.invoke(main, ["top", "nothing", "--data", str(tmp_path / "d")])
    assert got.exit_code == 1
    assert "not_found: unknown metric 'nothing'" in got.output
    bad = runner.invoke(main, ["top", "x", "--tag", "oops", "--data", str(tmp_path / "d")])
    assert bad.exit_code == 2 and "DIMENSION=VALUE" in bad.output


@pytest.mark.slow
def test_ingest_and_query_against_a_running_server(runner: CliRunner, tmp_path: Path,
                                                   server: ServerProcess) -> None:
    path = _events(tmp_path / "e.ndjson")
    got = runner.invoke(main, ["ingest", str(path), "--url", server.url])
    assert "accepted 2 · duplicates 1 · rejected 2" in got.output
    top = runner.invoke(main, ["top", "points", "--url", server.url, "--window", "day",
                               "--json"])
    assert json.loads(top.output)["total"] == 2
    assert runner.invoke(main, ["sum", "points", "bob", "--url", server.url]).output == "20\n"
    t = int(time.time()) - 600
    for room, member, kind, at in (("a", "ann", "join", t), ("a", "ann", "leave", t + 10),
                                   ("b", "ann", "join", t + 20), ("a", "bob", "join", t),
                                   ("a", "bob", "leave", t + 5), ("c", "bob", "join", t + 6)):
        moved = runner.invoke(main, ["presence", kind, room, member, "--ts", str(at),
                                     "--url", server.url])
        assert moved.exit_code == 0, moved.output
    top = runner.invoke(main, ["presence", "migrations", "-n", "1", "--url", server.url])
    assert top.exit_code == 0, top.output
    assert re.search(r"a\s.*b\s.*1", top.output)  # ties by pair: a -> b before a -> c
    assert not re.search(r"\bc\b", top.output)


def test_serve_refuses_a_public_address_without_keys(runner: CliRunner, tmp_path: Path) -> None:
    got = runner.invoke(main, ["serve", "--host", "0.0.0.0", "--data", str(tmp_path)])
    assert got.exit_code == 1
    assert "refusing to listen on 0.0.0.0 without API keys" in got.output


def test_errors_finds_the_state_the_config_names(runner: CliRunner, tmp_path: Path) -> None:
    from tallyboard.bots.state import error_record, open_state

    state = open_state(str(tmp_path / "bot-state"))
    state.add_error(error_record("command", ValueError("bad n"), guild="g1", command="top"))
    state.close()
    config = tmp_path / "tallyboard.toml"
    config.write_text(f'[discord]\nstate = "{tmp_path / "bot-state"}"\n')
    got = runner.invoke(main, ["errors", "--config", str(config), "--json"])
    assert got.exit_code == 0, got.output
    assert json.loads(got.output)["errors"][0]["error"] == "ValueError: bad n"
    missing = runner.invoke(main, ["errors", "--data", str(tmp_path / "nothing")])
    assert missing.exit_code != 0 and "no bot state" in missing.output
