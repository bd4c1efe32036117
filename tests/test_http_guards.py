"""Requests a web page or a broken client sends (issue 12, items 6 and 8): bodies without a
JSON type, Hosts that are not the server's (DNS rebinding), what a 405 allows, and what the
HTTP parser refuses before any route runs, on the app and on a real `tallyboard serve`."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from api_helpers import NOW, Api, api, assert_error, event
from support import ServerProcess
from tallyboard.api import create_app
from tallyboard.api.guards import allowed_hosts
from tallyboard.client import RemoteTallyboard, path_segment
from tallyboard.engine import Tallyboard
from tallyboard.settings import ApiKey, Settings
from tallyboard.stores import MemoryLog

EVENT = b'[{"metric": "points", "member": "alice", "value": 2, "ts": %d}]' % (NOW - 60)
WRITES = [("POST", "/v1/events"), ("POST", "/v1/presence"), ("PUT", "/v1/metrics/points"),
          ("PUT", "/v1/presence/config"), ("POST", "/v1/leaderboard?metric=points")]


@pytest.fixture
def tb() -> Iterator[Api]:
    with api() as a:
        yield a


# ---- item 6: bodies only with their media type ---------------------------------------------

@pytest.mark.parametrize("ctype", [None, "text/plain", "text/plain; charset=utf-8",
                                   "application/x-www-form-urlencoded",
                                   "multipart/form-data; boundary=x", "application/xml",
                                   "application/jsonx", "json"])
@pytest.mark.parametrize(("method", "path"), WRITES)
def test_a_body_without_a_json_type_is_415_and_not_applied(tb: Api, ctype: str | None,
                                                           method: str, path: str) -> None:
    # an untyped body is a page's only when it comes with Origin (see the next test)
    headers = {"content-type": ctype} if ctype else {"origin": "https://evil.example"}
    body = EVENT if "events" in path else b'{"members": ["a"]}'
    r = tb.client.request(method, path, content=body, headers=headers)
    err = assert_error(r, 415, "unsupported_media_type")
    assert "application/json" in err["accepted"]
    assert tb.engine.events_total == 0 and tb.engine.metrics() == []


@pytest.mark.parametrize("method", ["POST", "PUT"])
def test_an_untyped_body_from_a_script_is_json(tb: Api, method: str) -> None:
    """No Content-Type and no Origin (curl --data-binary @- with -H 'Content-Type:',
    requests.post(data=…)): not a browser, so the body is read as JSON."""
    if method == "POST":
        assert tb.client.post("/v1/events", content=EVENT).status_code == 200
        assert tb.sum("points", "alice") == 2
    else:
        r = tb.client.put("/v1/metrics/points", content=b'{"timezone": "Europe/Paris"}')
        assert r.status_code == 200, r.text
        assert r.json()["timezone"] == "Europe/Paris"


@pytest.mark.parametrize("ctype", ["application/json", "Application/JSON; charset=utf-8",
                                   "application/vnd.tallyboard+json", "application/x-ndjson",
                                   "application/ndjson", "application/jsonl"])
def test_json_and_ndjson_types_are_taken(tb: Api, ctype: str) -> None:
    assert tb.post_raw(EVENT.strip(b"[]"), ctype).status_code == 200
    assert tb.sum("points", "alice") == 2


def test_ndjson_only_where_documented(tb: Api) -> None:
    r = tb.client.put("/v1/metrics/points", content=b"{}",
                      headers={"content-type": "application/x-ndjson"})
    assert_error(r, 415, "unsupported_media_type", accepted=["application/json"])
    assert tb.client.put("/v1/metrics/points", content=b"{}",
                         headers={"content-type": "application/json"}).status_code == 200


def test_a_put_without_a_body_is_400(tb: Api) -> None:
    r = tb.client.put("/v1/metrics/points", headers={"content-type": "application/json"})
    assert_error(r, 400, "bad_request")
    assert_error(tb.client.put("/v1/metrics/points"), 400, "bad_request")
    assert_error(tb.client.put("/v1/metrics/points", headers={"origin": "https://x.example"}),
                 415, "unsupported_media_type")


def test_reads_need_no_content_type(tb: Api) -> None:
    tb.record(event())
    r = tb.client.request("GET", "/v1/sum?metric=points&member=alice", content=b"x",
                          headers={"content-type": "text/plain"})
    assert r.status_code == 200 and r.json() == {"sum": 1}


# ---- item 6: the Host of a server on loopback ----------------------------------------------

def app_client(**settings: Any) -> TestClient:
    return TestClient(create_app(Tallyboard(MemoryLog()), Settings(**settings)))


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8080", "127.0.0.1.evil.example",
                                  "localhost.evil.example", "10.0.0.1", "testserver", "[::2]"])
@pytest.mark.parametrize("path", ["/v1/metrics", "/", "/healthz", "/metrics", "/nope"])
def test_a_loopback_server_refuses_other_hosts_with_421(host: str, path: str) -> None:
    client = app_client()
    err = assert_error(client.get(path, headers={"host": host}), 421, "misdirected_request")
    assert "allowed_hosts" in err["message"]
    r = client.post("/v1/events", content=EVENT, headers={
        "host": host, "content-type": "application/json"})
    assert_error(r, 421, "misdirected_request")


@pytest.mark.parametrize("host", ["localhost", "localhost:8080", "LOCALHOST:1", "127.0.0.1",
                                  "127.0.0.1:80", "[::1]", "[::1]:8080"])
def test_a_loopback_server_answers_its_own_names_on_any_port(host: str) -> None:
    assert app_client().get("/v1/metrics", headers={"host": host}).status_code == 200


def test_the_bound_address_counts_and_allowed_hosts_replaces_the_list() -> None:
    assert app_client(host="127.0.0.2").get(
        "/healthz", headers={"host": "127.0.0.2:9000"}).status_code == 200
    proxied = app_client(allowed_hosts=["tally.example.org"])
    assert proxied.get("/healthz", headers={"host": "tally.example.org"}).status_code == 200
    assert_error(proxied.get("/healthz", headers={"host": "localhost"}), 421,
                 "misdirected_request")
    assert app_client(allowed_hosts=["*"]).get(
        "/healthz", headers={"host": "anything"}).status_code == 200


def test_the_production_default_is_not_weakened() -> None:
    assert allowed_hosts(Settings()) == {"localhost", "127.0.0.1", "::1"}
    assert allowed_hosts(Settings(host="::1")) == {"localhost", "127.0.0.1", "::1"}
    keyed = Settings(host="0.0.0.0", keys=[ApiKey(key="a-long-key", scopes=["read"])])
    assert allowed_hosts(keyed) is None  # on a network, keys guard it


# ---- item 8: Allow lists every method of the path ------------------------------------------

@pytest.mark.parametrize(("method", "path", "allow"), [
    ("DELETE", "/v1/presence/config", "GET, PUT"), ("OPTIONS", "/v1/presence/config", "GET, PUT"),
    ("DELETE", "/v1/metrics/a/b", "GET, PUT"), ("PATCH", "/v1/leaderboard", "GET, POST"),
    ("DELETE", "/v1/events", "POST"), ("POST", "/healthz", "GET"),
])
def test_405_allows_every_method_of_the_path(tb: Api, method: str, path: str,
                                             allow: str) -> None:
    r = tb.client.request(method, path)
    assert_error(r, 405, "method_not_allowed")
    assert r.headers["allow"] == allow


# ---- item 8: what the HTTP parser refuses, on a real server --------------------------------

@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    srv = ServerProcess(Path(tmp_path_factory.mktemp("guards")) / "data")
    srv.start()
    yield srv
    srv.stop()


def raw(server: ServerProcess, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send `request` as is and read the answer until the server closes."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            s.sendall(request)  # (it may answer and close before reading it all)
        data = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := s.recv(65536):
                data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, body


@pytest.mark.slow
@pytest.mark.parametrize("request_bytes", [
    b"GET /v1/sum?metric=" + b"m" * 100_000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    b"POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    b"Content-Length: 2\r\n\r\n[]garbage that is no request\r\n\r\n",
    b"POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    b"Content-Length: twelve\r\n\r\n[]",
    b"POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    b"Content-Length: 2\r\nContent-Length: 5\r\n\r\n[]",
    b"GET /v1/sum?metric=\xd9\xa3 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
])
def test_unparsable_requests_get_a_json_400(served: ServerProcess, request_bytes: bytes) -> None:
    status, headers, body = raw(served, request_bytes)
    assert status == 400, body
    assert headers["content-type"] == "application/json"
    assert httpx.Response(400, content=body).json()["error"]["code"] == "bad_request"
    assert httpx.get(served.url + "/healthz").status_code == 200


@pytest.mark.slow
def test_a_real_server_checks_host_and_media_type(served: ServerProcess) -> None:
    ok = httpx.post(served.url + "/v1/events", content=EVENT,
                    headers={"content-type": "application/json"})
    assert ok.status_code == 200, ok.text
    form = httpx.post(served.url + "/v1/events", content=EVENT,
                      headers={"content-type": "application/x-www-form-urlencoded"})
    assert_error(form, 415, "unsupported_media_type")
    rebound = httpx.get(served.url + "/v1/metrics", headers={"host": "evil.example"})
    assert_error(rebound, 421, "misdirected_request")
    assert httpx.get(f"http://localhost:{served.port}/v1/metrics").status_code == 200


@pytest.mark.slow
@pytest.mark.parametrize("name", ["%41", "50%", "a/%2F/b"])
def test_names_with_percent_signs_are_reachable(served: ServerProcess, name: str) -> None:
    with RemoteTallyboard(served.url) as tb:
        tb.record_many([{"metric": name, "member": "alice"}])
        assert tb.set_metric(name, rolling=["1h"])["metric"] == name
    r = httpx.get(f"{served.url}/v1/metrics/{path_segment(name)}")
    assert r.status_code == 200 and r.json()["metric"] == name, r.text
