"""Helpers for tests that need real processes: a `tallyboard serve` on a free port."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tallyboard.bench.measure import free_port


class ServerProcess:
    """A real `tallyboard serve` process on a free loopback port (or another command
    with an HTTP side, such as `twitch`, with `env` added to the environment)."""

    def __init__(self, data: Path, *extra: str, command: str = "serve",
                 env: dict[str, str] | None = None, ready: str = "/readyz") -> None:
        self.data = data
        self.extra = extra
        self.command, self.env, self.ready = command, env or {}, ready
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.data.mkdir(parents=True, exist_ok=True)
        self.log = self.data.parent / f"{self.command}-{self.port}.log"
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tallyboard.cli", self.command, "--port",
                 str(self.port), "--data", str(self.data), *self.extra],
                stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **self.env})
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()}")
            try:
                if httpx.get(self.url + self.ready, timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.05)
        raise RuntimeError("server did not become ready")

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def stop(self) -> None:
        stop_process(self.proc)


def stop_process(proc: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM, as a service manager stops a process; SIGKILL if it hangs."""
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
