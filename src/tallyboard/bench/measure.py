"""Small measuring tools: latency percentiles, resident memory, a server on a free port."""

from __future__ import annotations

import gc
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson

Progress = Callable[[str, int, int], None]


def latencies(call: Callable[[int], Any], count: int) -> dict[str, float]:
    """p50/p99/mean in milliseconds of `call(i)` for i in range(count)."""
    times = np.empty(count)
    for i in range(count):
        t0 = time.perf_counter()
        call(i)
        times[i] = time.perf_counter() - t0
    return {"p50_ms": float(np.percentile(times, 50) * 1e3),
            "p99_ms": float(np.percentile(times, 99) * 1e3),
            "mean_ms": float(times.mean() * 1e3), "calls": count}


def rss_bytes() -> int:
    """Resident memory now (Linux /proc; elsewhere the peak, which over-reports)."""
    gc.collect()
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def report(result: Any, crash: bool) -> None:
    """A bench child's last word: its result as one JSON line on stdout, then, with
    `crash`, a SIGKILL of itself (no clean shutdown: the restart measured next is one
    after a crash)."""
    sys.stdout.write(orjson.dumps(result).decode() + "\n")
    sys.stdout.flush()
    if crash:
        os.kill(os.getpid(), signal.SIGKILL)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """`tallyboard serve` in its own process on a free loopback port, for HTTP runs."""

    def __init__(self, data: Path) -> None:
        self.url = f"http://127.0.0.1:{free_port()}"
        port = self.url.rsplit(":", 1)[1]
        self.log = data.parent / "server.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tallyboard.cli", "serve", "--port", port,
                 "--data", str(data)],
                stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"bench server exited: {self.log.read_text()}")
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("bench server did not become ready")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
