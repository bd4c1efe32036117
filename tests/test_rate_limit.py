"""`rate_limit` through HTTP on a real `tallyboard serve` (issue 12, item 8): per key for
a valid key, per client address otherwise — a keyless server, and missing or unknown
keys, so guessing keys is limited too. Over it: 429 JSON with Retry-After (SPEC §8)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from api_helpers import assert_error
from support import ServerProcess

pytestmark = pytest.mark.slow

BURST = 3


def serve(tmp_path: Path, keys: str = "") -> ServerProcess:
    """A server allowing BURST requests per bucket, refilling one per ~17 minutes."""
    config = tmp_path / "tallyboard.toml"
    config.write_text(f"rate_limit = 0.001\nrate_burst = {BURST}\n{keys}")
    server = ServerProcess(tmp_path / "data", "--config", str(config))
    server.start()
    return server


def client_from(address: str, server: ServerProcess) -> httpx.Client:
    """A client whose requests come from `address` (any 127.x.y.z is this machine)."""
    return httpx.Client(base_url=server.url, timeout=10,
                        transport=httpx.HTTPTransport(local_address=address))


@pytest.fixture
def keyless(tmp_path: Path) -> Iterator[ServerProcess]:
    server = serve(tmp_path)
    yield server
    server.stop()


@pytest.fixture
def keyed(tmp_path: Path) -> Iterator[ServerProcess]:
    server = serve(tmp_path, '[[keys]]\nkey = "reader-key-1"\n'
                             '[[keys]]\nkey = "reader-key-2"\n')
    yield server
    server.stop()


def assert_limited(r: httpx.Response) -> None:
    assert_error(r, 429, "rate_limited")
    assert int(r.headers["retry-after"]) >= 1


def test_a_keyless_server_limits_each_client_address(keyless: ServerProcess) -> None:
    with client_from("127.0.0.1", keyless) as one, client_from("127.0.0.2", keyless) as two:
        for _ in range(BURST):
            assert one.get("/v1/metrics").status_code == 200
        assert_limited(one.get("/v1/metrics"))
        assert_limited(one.post("/v1/events", json={"metric": "m", "member": "a"}))
        assert two.get("/v1/metrics").status_code == 200  # another client: its own bucket
        assert one.get("/healthz").status_code == 200  # operations are never limited
        assert one.get("/readyz").json()["events"] == 0


def test_unknown_keys_are_limited_per_address_before_the_401(keyed: ServerProcess) -> None:
    with client_from("127.0.0.1", keyed) as guesser, client_from("127.0.0.3", keyed) as other:
        guesses = [guesser.get("/v1/metrics", headers={"Authorization": f"Bearer guess-{i}"})
                   for i in range(BURST)]
        assert [r.status_code for r in guesses] == [401] * BURST
        assert_limited(guesser.get("/v1/metrics", headers={"Authorization": "Bearer guess-x"}))
        assert_limited(guesser.get("/v1/metrics"))  # no key at all: the same bucket
        # the right key still works from there (its own bucket), and others are not held up
        ok = guesser.get("/v1/metrics", headers={"Authorization": "Bearer reader-key-1"})
        assert ok.status_code == 200, ok.text
        assert_error(other.get("/v1/metrics"), 401, "unauthorized")


def test_a_valid_key_has_its_own_bucket_wherever_it_comes_from(keyed: ServerProcess) -> None:
    key1 = {"Authorization": "Bearer reader-key-1"}
    with client_from("127.0.0.1", keyed) as one, client_from("127.0.0.4", keyed) as two:
        for client in (one, two, one):
            assert client.get("/v1/metrics", headers=key1).status_code == 200
        assert_limited(two.get("/v1/metrics", headers=key1))
        key2 = {"Authorization": "Bearer reader-key-2"}
        assert one.get("/v1/metrics", headers=key2).status_code == 200
