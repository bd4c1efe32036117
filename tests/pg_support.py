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
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg

from tallyboard.stores.base import EventLog
from tallyboard.stores.postgres import PostgresLog, migrate

if TYPE_CHECKING:
    from redis.cluster import RedisCluster

ADMIN_URL = os.environ.get("TALLYBOARD_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
TABLES = ("tallyboard_batches", "tallyboard_events", "tallyboard_ids", "tallyboard_presence",
          "tallyboard_unpublished",
          "tallyboard_metrics")


REDIS_URL = os.environ.get("TALLYBOARD_TEST_REDIS", "redis://127.0.0.1:6379/0")


def redis_reachable(url: str = REDIS_URL) -> str | None:
    """None if Redis answers at `url`, else why not."""
    import redis

    try:
        with redis.Redis.from_url(url, socket_timeout=3) as client:
            client.ping()
        return None
    except redis.RedisError as exc:
        return f"Redis not reachable at {url} ({exc}); set TALLYBOARD_TEST_REDIS"


class HotStores:
    """Hands out shared hot stores (RedisFeed) over emptied PostgreSQL logs, each under a
    key prefix of its own; `clear` deletes their keys."""

    def __init__(self, pg: PgDatabase, redis_url: str) -> None:
        self.pg = pg
        self.redis_url = redis_url
        self._made: list[str] = []

    def log(self, empty: bool = True, prefix: str | None = None) -> EventLog:
        from tallyboard.stores.redis_feed import RedisFeed

        prefix = prefix or f"tbtest-{uuid.uuid4().hex[:12]}"
        self._made.append(prefix)
        return RedisFeed(self.pg.log(empty), self.redis_url, prefix=prefix)

    def again(self, log: EventLog) -> EventLog:
        """A second server's view of `log`: the same PostgreSQL data and Redis feeds."""
        from tallyboard.stores.redis_feed import RedisFeed

        assert isinstance(log, RedisFeed)
        return self.log(empty=False, prefix=log.prefix)

    def clear(self) -> None:
        from tallyboard.stores.redis_feed import connect, disconnect

        client = connect(self.redis_url)
        for prefix in self._made:
            keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
            for key in keys:
                client.unlink(key)
        disconnect(client)
        self._made.clear()


def backing(request: Any, name: str) -> PgDatabase | HotStores | None:
    """What a test run on store `name` writes to: nothing (memory), the run's PostgreSQL
    database, or hot stores on the machine's Redis or the run's own Redis Cluster
    (their keys are deleted after the test). Skips when a server is missing."""
    import pytest

    if name == "memory":
        return None
    pg: PgDatabase = request.getfixturevalue("postgres")
    if name == "postgres":
        return pg
    url = request.getfixturevalue("redis_cluster").url if name == "cluster" else REDIS_URL
    why = redis_reachable(url)
    if why:
        pytest.skip(why)
    stores = HotStores(pg, url)
    request.addfinalizer(stores.clear)
    return stores


STORES = ["memory", "postgres", "redis", "cluster"]


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

    def again(self, log: EventLog) -> EventLog:
        """`log` reopened, as after a restart: the engine on it rebuilds from PostgreSQL."""
        return self.log(empty=False)

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

    def __init__(self, password: str | None = None) -> None:
        from support import free_port

        self.root = Path(tempfile.mkdtemp(prefix="tallyboard-redis-"))
        self.port = free_port()
        self.password = password
        auth = f":{password}@" if password else ""
        self.url = f"redis://{auth}127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        import redis

        auth = ["--requirepass", self.password] if self.password else []
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir",
             str(self.root), "--appendonly", "yes", "--appendfsync", "always", "--save", "",
             *auth], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with redis.Redis.from_url(self.url) as client:
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


def _cluster_port(taken: set[int]) -> int:
    """A free port p < 55535 whose cluster-bus port p + 10000 is free too."""
    import socket

    from support import free_port

    for _ in range(100):
        port = free_port()
        if port >= 55535 or {port, port + 10000} & taken:
            continue
        with socket.socket() as s, contextlib.suppress(OSError):
            s.bind(("127.0.0.1", port + 10000))
            return port
    raise RuntimeError("no free port pair for a redis cluster node")


class OwnRedisCluster:
    """A Redis Cluster of a test's own: 3 masters, no replicas, on free ports (no
    persistence). `url` names one seed node; a cluster has db 0 only."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="tallyboard-redis-cluster-"))
        taken: set[int] = set()
        self.ports: list[int] = []
        for _ in range(3):
            self.ports.append(_cluster_port(taken))
            taken |= {self.ports[-1], self.ports[-1] + 10000}
        self.url = f"redis://127.0.0.1:{self.ports[0]}/0"
        self.procs: list[subprocess.Popen[bytes]] = []

    def cli(self, port: int, *args: str) -> str:
        """A redis-cli command on one node; its output ("" when the node does not answer)."""
        return subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(port), *args],
                              capture_output=True, text=True, timeout=10).stdout

    def start(self) -> None:
        import redis

        for port in self.ports:
            (self.root / str(port)).mkdir()
            self.procs.append(subprocess.Popen(
                ["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                 "--cluster-enabled", "yes",
                 "--cluster-config-file", str(self.root / f"nodes-{port}.conf"),
                 "--cluster-node-timeout", "5000", "--appendonly", "no", "--save", "",
                 "--dir", str(self.root / str(port))],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        deadline = time.monotonic() + 20
        while not all(self.cli(port, "PING").strip() == "PONG" for port in self.ports):
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.025)
        subprocess.run(["redis-cli", "--cluster", "create",
                        *(f"127.0.0.1:{port}" for port in self.ports),
                        "--cluster-replicas", "0", "--cluster-yes"],
                       check=True, capture_output=True, timeout=60)
        while not all("cluster_state:ok" in self.cli(port, "CLUSTER", "INFO")
                      for port in self.ports):
            if time.monotonic() > deadline:
                raise RuntimeError("redis cluster did not reach cluster_state:ok")
            time.sleep(0.025)
        while True:  # {b}, {c} and {a} hash to slots on the 1st, 2nd and 3rd node
            with (contextlib.suppress(redis.RedisError, redis.RedisClusterException),
                  self.client() as rc):
                for key in ("tallyboard-probe:{a}", "tallyboard-probe:{b}",
                            "tallyboard-probe:{c}"):
                    rc.set(key, "1")
                    assert rc.get(key) == b"1"
                    rc.delete(key)
                return
            if time.monotonic() > deadline:
                raise RuntimeError("redis cluster did not serve SET/GET")
            time.sleep(0.05)

    @contextlib.contextmanager
    def client(self) -> Iterator[RedisCluster]:
        """A cluster client whose every socket is closed afterwards."""
        from redis.cluster import RedisCluster

        from tallyboard.stores.redis_feed import disconnect

        rc = RedisCluster.from_url(self.url)
        try:
            yield rc
        finally:
            disconnect(rc)

    def flushall(self, functions: bool = False) -> None:
        """Empty every master, as if Redis were lost; `functions` drops the loaded function
        libraries too (as a restart without persistence would)."""
        commands = [["FLUSHALL"], ["FUNCTION", "FLUSH"]] if functions else [["FLUSHALL"]]
        for port in self.ports:
            for command in commands:
                if self.cli(port, *command).strip() != "OK":
                    raise RuntimeError(f"{' '.join(command)} failed on port {port}")

    def remove(self) -> None:
        for proc in self.procs:
            proc.kill()
        for proc in self.procs:
            proc.wait()
        shutil.rmtree(self.root, ignore_errors=True)


def start_redis_cluster() -> OwnRedisCluster:
    """A started cluster of the test's own; skips with the reason (a failure in CI) without
    the redis-server and redis-cli programs."""
    import pytest

    missing = [tool for tool in ("redis-server", "redis-cli") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{' and '.join(missing)} not on PATH: a Redis Cluster needs them")
    cluster = OwnRedisCluster()
    try:
        cluster.start()
    except BaseException:
        cluster.remove()
        raise
    return cluster
