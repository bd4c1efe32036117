"""A local Twitch Helix API and OAuth server on 127.0.0.1, for `tallyboard twitch`'s tests
and benchmark: Get Streams, Get Users and Get Chatters (with `first`/`after` cursor
pagination and `total`), `/oauth2/validate` and `/oauth2/token` (refresh_token and
client_credentials grants), and Helix's rate limit (a bucket of points per token with
`Ratelimit-Limit`, `-Remaining`, `-Reset` headers, 429 when it is empty).

Tests set the world (`go_live`, `set_viewers`, `go_offline`, moderators) and inject what
Twitch does on a bad day: `fail` answers the next requests of a path with a status (429,
401, 5xx), `expire` revokes a token so the next call gets 401, `cut_after` fails a
chatter list after some pages. Every request is recorded in `calls`. The server runs its
own event loop in a thread; the public methods may be called from any thread.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from .threaded import WebStandIn

__all__ = ["HelixCall", "HelixStandIn"]

MAX_PAGE = 1000  # Get Chatters' largest `first`
STREAMS_PAGE = 100


@dataclass
class Stream:
    login: str
    id: str
    live: bool = False
    viewers: list[str] = field(default_factory=list)  # chatter logins, listed in this order
    game_id: str = "509658"
    language: str = "en"
    viewer_count: int | None = None  # Helix's own count; None: the chatters'
    started_at: str = "2026-01-01T00:00:00Z"


@dataclass(frozen=True)
class HelixCall:
    """One request the stand-in answered: when, what, with which status."""

    at: float
    method: str
    path: str
    query: dict[str, str]
    status: int
    token: str | None


@dataclass
class _Token:
    user_id: str | None  # None: an app access token (client credentials)
    scopes: list[str]
    expires_at: float
    refresh: str | None = None


class HelixStandIn(WebStandIn):
    """Helix and OAuth on one port: `helix_url` and `auth_url` for the client's settings."""

    def __init__(self, *, client_id: str = "standin-client", client_secret: str = "secret",
                 rate_limit: int = 800, refill_seconds: float = 60.0, port: int = 0) -> None:
        self.client_id, self.client_secret = client_id, client_secret
        self.rate_limit, self.refill_seconds = rate_limit, refill_seconds
        super().__init__(port)
        self._lock = threading.Lock()
        self._streams: dict[str, Stream] = {}
        self._tokens: dict[str, _Token] = {}
        self._refresh: dict[str, str] = {}  # refresh token -> user id
        self._buckets: dict[str, tuple[float, float]] = {}  # token -> (points, as of)
        self._failures: dict[str, list[int]] = {}
        self._cuts: dict[str, int] = {}  # broadcaster login -> pages served before failing
        self._moderates: set[str] = set()  # broadcaster ids the user token moderates
        self.calls: list[HelixCall] = []
        self.user = {"id": "1000", "login": "tallybot"}

    # -- lifetime -------------------------------------------------------------------------
    thread_name = "helix-standin"

    @property
    def helix_url(self) -> str:
        return self.origin + "/helix"

    @property
    def auth_url(self) -> str:
        return self.origin + "/oauth2"

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/oauth2/validate", self._validate)
        app.router.add_post("/oauth2/token", self._token)
        app.router.add_get("/helix/streams", self._get_streams)
        app.router.add_get("/helix/users", self._get_users)
        app.router.add_get("/helix/chat/chatters", self._get_chatters)
        return app

    # -- the world ------------------------------------------------------------------------
    def user_token(self, scopes: tuple[str, ...] = ("moderator:read:chatters",),
                   lifetime: float = 14_400) -> tuple[str, str]:
        """A new user access token for `self.user` and its refresh token."""
        access, refresh = secrets.token_hex(15), secrets.token_hex(25)
        with self._lock:
            self._tokens[access] = _Token(self.user["id"], list(scopes),
                                          time.time() + lifetime, refresh)
            self._refresh[refresh] = self.user["id"]
        return access, refresh

    def expire(self, token: str) -> None:
        """The token stops working (expired or revoked): its next call gets 401."""
        with self._lock:
            self._tokens.pop(token, None)

    def tokens(self) -> list[str]:
        with self._lock:
            return list(self._tokens)

    def go_live(self, login: str, viewers: list[str] | None = None, *, moderated: bool = True,
                viewer_count: int | None = None) -> None:
        with self._lock:
            s = self._stream(login)
            s.live = True
            if viewers is not None:
                s.viewers = list(viewers)
            s.viewer_count = viewer_count
            if moderated:
                self._moderates.add(s.id)
            else:
                self._moderates.discard(s.id)

    def set_viewers(self, login: str, viewers: list[str]) -> None:
        with self._lock:
            self._stream(login).viewers = list(viewers)

    def go_offline(self, login: str) -> None:
        with self._lock:
            s = self._stream(login)
            s.live, s.viewers = False, []

    def fail(self, path: str, *statuses: int) -> None:
        """Answer the next len(statuses) requests of `path` (e.g. "/helix/chat/chatters")
        with these statuses, in order."""
        with self._lock:
            self._failures.setdefault(path, []).extend(statuses)

    def cut_after(self, login: str, pages: int) -> None:
        """The next chatter list of `login` fails (500) after `pages` pages."""
        with self._lock:
            self._cuts[login] = pages

    def calls_to(self, path: str) -> list[HelixCall]:
        with self._lock:
            return [c for c in self.calls if c.path == path]

    def _stream(self, login: str) -> Stream:
        login = login.lower()
        if login not in self._streams:
            self._streams[login] = Stream(login, str(20_000 + len(self._streams)))
        return self._streams[login]

    # -- OAuth ----------------------------------------------------------------------------
    async def _validate(self, request: web.Request) -> web.Response:
        header = request.headers.get("Authorization", "")
        token = header.removeprefix("OAuth ").strip()
        with self._lock:
            t = self._tokens.get(token)
            ok = t is not None and t.expires_at > time.time()
            self._record(request, 200 if ok else 401, token)
            if t is None or not ok:
                return _error(401, "invalid access token")
            body: dict[str, Any] = {"client_id": self.client_id, "scopes": t.scopes,
                                    "expires_in": int(t.expires_at - time.time())}
            if t.user_id is not None:
                body.update(login=self.user["login"], user_id=t.user_id)
            return web.json_response(body)

    async def _token(self, request: web.Request) -> web.Response:
        form = {**request.query, **(await request.post())}
        with self._lock:
            status, body = self._grant({k: str(v) for k, v in form.items()})
            self._record(request, status, None)
        return web.json_response(body, status=status)

    def _grant(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if form.get("client_id") != self.client_id or \
                form.get("client_secret") != self.client_secret:
            return 403, {"status": 403, "message": "invalid client secret"}
        access = secrets.token_hex(15)
        if form.get("grant_type") == "client_credentials":
            self._tokens[access] = _Token(None, [], time.time() + 5_000_000)
            return 200, {"access_token": access, "expires_in": 5_000_000,
                         "token_type": "bearer"}
        if form.get("grant_type") == "refresh_token":
            user = self._refresh.pop(form.get("refresh_token", ""), None)
            if user is None:
                return 400, {"status": 400, "message": "Invalid refresh token"}
            refresh = secrets.token_hex(25)
            self._refresh[refresh] = user
            self._tokens[access] = _Token(user, ["moderator:read:chatters"],
                                          time.time() + 14_400, refresh)
            return 200, {"access_token": access, "refresh_token": refresh,
                         "expires_in": 14_400, "scope": ["moderator:read:chatters"],
                         "token_type": "bearer"}
        return 400, {"status": 400, "message": "unsupported grant_type"}

    # -- Helix ----------------------------------------------------------------------------
    def _admit(self, request: web.Request) -> tuple[web.Response | None, _Token | None,
                                                     dict[str, str]]:
        """Auth, the injected failures and the rate limit (under the lock): a refusal, or
        the caller's token and the rate-limit headers to send."""
        token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        t = self._tokens.get(token)
        if request.headers.get("Client-Id") != self.client_id or t is None or \
                t.expires_at <= time.time():
            self._record(request, 401, token)
            return _error(401, "Invalid OAuth token"), None, {}
        points, since = self._buckets.get(token, (float(self.rate_limit), time.time()))
        now = time.time()
        points = min(self.rate_limit, points + (now - since) * self.rate_limit
                     / self.refill_seconds)
        reset = int(now + (self.rate_limit - points) * self.refill_seconds / self.rate_limit)
        headers = {"Ratelimit-Limit": str(self.rate_limit), "Ratelimit-Reset": str(reset)}
        if points < 1:
            self._buckets[token] = (points, now)
            headers["Ratelimit-Remaining"] = "0"
            self._record(request, 429, token)
            return _error(429, "Too Many Requests", headers), None, {}
        points -= 1
        self._buckets[token] = (points, now)
        headers["Ratelimit-Remaining"] = str(int(points))
        queued = self._failures.get(request.path)
        if queued:
            status = queued.pop(0)
            self._record(request, status, token)
            if status == 401:
                self._tokens.pop(token, None)  # what expiry looks like: gone until refreshed
            if status == 429:
                headers["Ratelimit-Remaining"] = "0"
            return _error(status, "injected", headers), None, {}
        return None, t, headers

    async def _get_streams(self, request: web.Request) -> web.Response:
        with self._lock:
            refused, _, headers = self._admit(request)
            if refused is not None:
                return refused
            logins = {x.lower() for x in request.query.getall("user_login", [])}
            live = [s for s in self._streams.values() if s.live
                    and (not logins or s.login in logins)
                    and ("game_id" not in request.query
                         or s.game_id in request.query.getall("game_id"))
                    and ("language" not in request.query
                         or s.language in request.query.getall("language"))]
            live.sort(key=lambda s: -self._count(s))
            first = min(int(request.query.get("first", 20)), STREAMS_PAGE)
            start = int(request.query.get("after") or 0)
            page = live[start:start + first]
            cursor = {"cursor": str(start + first)} if start + first < len(live) else {}
            self._record(request, 200, None)
            return web.json_response({"data": [self._stream_json(s) for s in page],
                                      "pagination": cursor}, headers=headers)

    async def _get_users(self, request: web.Request) -> web.Response:
        with self._lock:
            refused, _, headers = self._admit(request)
            if refused is not None:
                return refused
            data = [{"id": s.id, "login": s.login, "display_name": s.login}
                    for s in (self._stream(x) for x in request.query.getall("login", []))]
            self._record(request, 200, None)
            return web.json_response({"data": data}, headers=headers)

    async def _get_chatters(self, request: web.Request) -> web.Response:
        with self._lock:
            refused, token, headers = self._admit(request)
            if refused is not None:
                return refused
            assert token is not None
            q = request.query
            stream = next((s for s in self._streams.values()
                           if s.id == q.get("broadcaster_id")), None)
            if stream is None:
                self._record(request, 400, None)
                return _error(400, "invalid broadcaster_id", headers)
            if token.user_id is None or q.get("moderator_id") != token.user_id or \
                    stream.id not in self._moderates or \
                    "moderator:read:chatters" not in token.scopes:
                self._record(request, 403, None)
                return _error(403, "the user is not a moderator of the channel", headers)
            first = max(1, min(int(q.get("first", 100)), MAX_PAGE))
            start = int(q.get("after") or 0)
            cut = self._cuts.get(stream.login)
            if cut is not None and start >= cut * first:
                del self._cuts[stream.login]
                self._record(request, 500, None)
                return _error(500, "Internal Server Error", headers)
            page = stream.viewers[start:start + first]
            more = start + first < len(stream.viewers)
            self._record(request, 200, None)
            return web.json_response(
                {"data": [{"user_id": str(hash(v) & 0xFFFFFFF), "user_login": v,
                           "user_name": v} for v in page],
                 "pagination": {"cursor": str(start + first)} if more else {},
                 "total": len(stream.viewers)}, headers=headers)

    def _count(self, s: Stream) -> int:
        return s.viewer_count if s.viewer_count is not None else len(s.viewers)

    def _stream_json(self, s: Stream) -> dict[str, Any]:
        return {"id": f"s{s.id}", "user_id": s.id, "user_login": s.login, "user_name": s.login,
                "game_id": s.game_id, "game_name": "Just Chatting", "type": "live",
                "title": f"{s.login} live", "viewer_count": self._count(s),
                "started_at": s.started_at, "language": s.language}

    def _record(self, request: web.Request, status: int, token: str | None) -> None:
        self.calls.append(HelixCall(time.time(), request.method, request.path,
                                    dict(request.query), status, token))

    def statuses(self) -> Counter[int]:
        with self._lock:
            return Counter(c.status for c in self.calls)


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    reason = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
              429: "Too Many Requests"}.get(status, "Error")
    return web.json_response({"error": reason, "status": status, "message": message},
                             status=status, headers=headers)
