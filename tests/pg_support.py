"""A PostgreSQL database of the test run's own on the machine's server, for tests of the
PostgreSQL log. Tests reach it through the `postgres` fixture (tests/conftest.py); without
a server they skip with the reason, which CI (CI=true) turns into a failure. Fault tests
start a server process of their own (`OwnPostgres`) to stop and kill."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

from tallyboard.stores.postgres import PostgresLog, migrate

ADMIN_URL = os.environ.get("TALLYBOARD_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
TABLES = ("tallyboard_batches", "tallyboard_events", "tallyboard_ids", "tallyboard_presence",
          "tallyboard_metrics")


def reachable() -> str | None:
    """None if the server answers, else why not."""
    try:
        with psycopg.connect(ADMIN_URL, connect_timeout=3):
            return None
    except psycopg.Error as exc:
        return f"PostgreSQL not reachable at {ADMIN_URL} ({exc}); set TALLYBOARD_TEST_PG"


class PgDatabase:
    """A fresh database (dropped by `drop`), migrated; `log` hands out emptied logs."""

    def __init__(self) -> None:
        self.name = f"tallyboard_test_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(ADMIN_URL, autocommit=True) as db:
            db.execute(f"CREATE DATABASE {self.name}")
        self.url = ADMIN_URL.rsplit("/", 1)[0] + "/" + self.name
        migrate(self.url)
        self._open: list[PostgresLog] = []

    def log(self, empty: bool = True) -> PostgresLog:
        """A log on this database (emptied first unless `empty` is False); logs handed out
        before are closed, so a long property test never runs out of connections."""
        self.close_logs()
        if empty:
            with psycopg.connect(self.url, autocommit=True) as db:
                db.execute(f"TRUNCATE {', '.join(TABLES)}")
        log = PostgresLog(self.url, auto_migrate=False)
        self._open.append(log)
        return log

    def close_logs(self) -> None:
        for log in self._open:
            log.close()
        self._open.clear()

    def drop(self) -> None:
        self.close_logs()
        with psycopg.connect(ADMIN_URL, autocommit=True) as db:
            db.execute(f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")


class OwnPostgres:
    """A PostgreSQL server process of a test's own on a free port, to stop and kill."""

    def __init__(self) -> None:
        from support import free_port

        found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
        self.bin = found[-1].parent if found else Path(shutil.which("pg_ctl") or "").parent
        # Not under pytest's tmp_path: that is private to root, and initdb runs as postgres.
        self.root = Path(tempfile.mkdtemp(prefix="tallyboard-pg-"))
        self.root.chmod(0o755)
        self.dir = self.root / "pgdata"
        self.dir.mkdir()
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._run("initdb", "-D", str(self.dir), "-A", "trust", "-U", "postgres", "--no-sync")

    def _run(self, tool: str, *args: str) -> None:
        as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if as_postgres:
            shutil.chown(self.dir, "postgres")
        subprocess.run([*as_postgres, str(self.bin / tool), *args], check=True,
                       capture_output=True, timeout=120)

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.dir), "-w", "-l", str(self.dir / "server.log"),
                  "-o", f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 "
                  "-c fsync=off", "start")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server; ``immediate`` is a crash (no shutdown checkpoint)."""
        self._run("pg_ctl", "-D", str(self.dir), "-m", mode, "-w", "stop")

    def remove(self) -> None:
        """Kill the server if it runs and delete its files."""
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


class OwnRedis:
    """A redis-server of a test's own on a free port (append-only file on, fsync always)."""

    def __init__(self) -> None:
        from support import free_port

        self.root = Path(tempfile.mkdtemp(prefix="tallyboard-redis-"))
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        import redis

        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir",
             str(self.root), "--appendonly", "yes", "--appendfsync", "always", "--save", ""],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url)
        for _ in range(200):
            with contextlib.suppress(redis.ConnectionError):
                client.ping()
                return
            time.sleep(0.025)
        raise RuntimeError("redis-server did not start")

    def remove(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.root, ignore_errors=True)
