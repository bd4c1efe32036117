"""Restart cost against live cost: many small metrics, a kill -9, and a reopen.

A live server holds what it was sent; a restart replays the log into the same state.
This measures both in fresh processes on one embedded data directory: the writer
ingests `metrics` metrics of a few events each (batches of 1,000 rows, as HTTP clients
send), reports its time and memory, and is killed with SIGKILL; the reader reopens the
directory and reports the replay's time, its memory now and at its peak, and its first
leaderboard (hot boards of small metrics are built on first use).

    python -m tallyboard.bench.restart --metrics 50000
"""

from __future__ import annotations

import argparse
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from .. import open as open_board
from ..engine import Tallyboard
from .measure import Progress, report, rss_bytes

METRICS = 50_000  # at scale 1
EVENTS_PER_METRIC = 3
BATCH = 1_000
MB = 1 << 20


def _peak_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def _memory() -> dict[str, float]:
    return {"rss_mb": rss_bytes() / MB, "peak_mb": _peak_bytes() / MB}


def _write(data: Path, metrics: int) -> dict[str, Any]:
    """Ingest `metrics` small metrics; the caller reports and then dies by SIGKILL."""
    now = int(time.time())
    started = time.perf_counter()
    tb = open_board(str(data))
    assert isinstance(tb, Tallyboard)
    rows: list[dict[str, Any]] = []
    for i in range(metrics):
        rows += [{"metric": f"m{i}", "member": f"u{(i + j) % 97}", "value": j + 1,
                  "ts": now - 1000 + j} for j in range(EVENTS_PER_METRIC)]
        if len(rows) >= BATCH:
            tb.record_many(rows)
            rows = []
    if rows:
        tb.record_many(rows)
    return {"seconds": time.perf_counter() - started, **_memory()}


def _reopen(data: Path) -> dict[str, Any]:
    """Replay the log as a restarted server does, then one first leaderboard."""
    started = time.perf_counter()
    tb = open_board(str(data))
    assert isinstance(tb, Tallyboard)
    seconds = time.perf_counter() - started
    first = time.perf_counter()
    tb.leaderboard("m0", window="day")
    return {"seconds": seconds, "first_board_ms": (time.perf_counter() - first) * 1e3,
            **_memory()}


def _child(mode: str, data: Path, metrics: int) -> dict[str, Any]:
    """Run one side in a fresh interpreter; the writer must have died of SIGKILL."""
    done = subprocess.run([sys.executable, "-m", "tallyboard.bench.restart", "--child", mode,
                           "--data", str(data), "--metrics", str(metrics)],
                          capture_output=True, check=False)
    expected = -signal.SIGKILL if mode == "write" else 0
    if done.returncode != expected:
        raise RuntimeError(f"restart bench {mode} exited {done.returncode}: "
                           f"{done.stderr.decode(errors='replace')}")
    got: dict[str, Any] = orjson.loads(done.stdout.splitlines()[-1])
    return got


def run_restart(tmp: Path, scale: float, progress: Progress) -> dict[str, Any]:
    """The bench workload: `scale` of 50,000 metrics (at least 100)."""
    return measure_restart(tmp, max(100, int(METRICS * scale)), progress)


def measure_restart(tmp: Path, metrics: int, progress: Progress) -> dict[str, Any]:
    """Live ingest and kill -9, then the restart: times, RSS and peak RSS of each."""
    data = tmp / "restart-data"
    progress("restart: live ingest, then kill -9", 0, 2)
    live = _child("write", data, metrics)
    progress("restart: live ingest, then kill -9", 1, 2)
    restart = _child("reopen", data, metrics)
    progress("restart: live ingest, then kill -9", 2, 2)
    return {"metrics": metrics, "events": metrics * EVENTS_PER_METRIC, "live": live,
            "restart": restart, "peak_vs_live": restart["peak_mb"] / live["rss_mb"]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--metrics", type=int, default=METRICS)
    parser.add_argument("--child", choices=("write", "reopen"), help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is None:
        with tempfile.TemporaryDirectory(prefix="tallyboard-bench-restart-") as tmp:
            got = measure_restart(Path(tmp), args.metrics, lambda *_: None)
        sys.stdout.write(orjson.dumps(got, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    result = _write(args.data, args.metrics) if args.child == "write" else _reopen(args.data)
    report(result, crash=args.child == "write")  # the restart replays the whole log


if __name__ == "__main__":
    main()
