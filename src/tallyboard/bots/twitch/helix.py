"""A small Twitch Helix client: just what the tracker needs, and nothing hidden from it.

Written here rather than taken from a Twitch library because the tracker must see what
those libraries absorb: the `Ratelimit-*` headers (one budget shared by every stream's
polls), and whether a chatter list came back whole (a page that failed mid-pagination
must fail the whole poll, never yield a shorter list). Tokens are sent as headers and
never appear in a log line or an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import orjson

log = logging.getLogger("tallyboard.twitch")

PAGE = 1000  # Get Chatters' largest page
LOGINS_PER_CALL = 100  # Get Streams / Get Users take up to 100 logins
MOST_WAIT = 60.0  # seconds: the longest a 429 or an empty budget is waited out
LEAST_429_WAIT = 0.5  # seconds after a 429 whose reset time has passed (clocks differ)


class PollFailed(Exception):
    """A chatter list could not be read whole; `reason` is a short label for metrics."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


class AuthFailed(Exception):
    """No working token: validation failed and it could not be refreshed."""


@dataclass(frozen=True)
class LiveStream:
    login: str
    user_id: str
    viewer_count: int
    game_id: str
    language: str


@dataclass
class RateBudget:
    """Helix's points for one token, as its last answer told them, less the calls sent
    since and not yet answered (so concurrent polls never spend a point twice)."""

    limit: int = 800
    remaining: int = 800
    reset: float = 0.0  # unix time the bucket is full again
    waits: int = 0  # times a call waited for points (429 or none left)
    in_flight: int = 0
    read_at: float = 0.0

    def read(self, headers: httpx.Headers, now: float | None = None) -> None:
        """Take an answer's headers. Its Remaining never raises the estimate (an answer
        to an earlier call may arrive after a later one's), and its Reset is moved onto
        this clock by the answer's Date (later by up to a second: Date is whole seconds,
        and the time the answer took counts too), so a clock ahead of Twitch's does not
        spend a bucket before Twitch refills it."""
        now = time.time() if now is None else now
        try:
            limit = int(headers["Ratelimit-Limit"])
            remaining = int(headers["Ratelimit-Remaining"])
            reset = float(headers["Ratelimit-Reset"])
        except (KeyError, ValueError):
            return
        with contextlib.suppress(KeyError, TypeError, ValueError):  # no Date: as it is
            reset += now - parsedate_to_datetime(headers["Date"]).timestamp()
        if self.read_at:
            remaining = min(remaining, math.floor(self.spendable(now) + self.in_flight))
        self.limit, self.remaining = limit, max(0, remaining)
        self.reset, self.read_at = max(reset, self.reset if now < self.reset + 1 else 0), now

    def emptied(self) -> None:
        """Helix said 429: nothing is left, whatever was last read."""
        self.remaining, self.read_at = 0, time.time()

    def _refill_per_s(self) -> float:
        """The pace points come back at: evenly until `reset` (a whole second later, as
        Helix rounds it down), so the estimate never runs ahead of Helix's bucket."""
        return (self.limit - self.remaining) / max(1.0, self.reset + 1 - self.read_at)

    def spendable(self, now: float) -> float:
        if now >= self.reset + 1:
            return self.limit - self.in_flight
        back = (now - self.read_at) * self._refill_per_s()
        return min(self.limit, self.remaining + back) - self.in_flight

    def wait_s(self) -> float:
        """How long to wait before the next call may be spent (0: now): the time the
        missing point takes to come back, so calls are spread out rather than bunched
        after a full refill."""
        short = 1 - self.spendable(time.time())
        if short <= 0:
            return 0.0
        rate = self._refill_per_s()
        return min(MOST_WAIT, short / rate) if rate > 0 else LEAST_429_WAIT


class Helix:
    """Helix calls with one token: validated at start, refreshed on a 401, paced by the
    token's budget. `on_wait(seconds)` hears of every wait for the budget, and
    `on_renewed(token, refresh_token)` of every renewal (a renewal spends the refresh
    token: the new pair must be kept for a restart)."""

    def __init__(self, helix_url: str, auth_url: str, client_id: str, token: str | None,
                 refresh_token: str | None = None, client_secret: str | None = None, *,
                 timeout: float = 10.0,
                 on_wait: Callable[[float], None] | None = None,
                 on_renewed: Callable[[str, str | None], None] | None = None) -> None:
        self._helix, self._auth = helix_url.rstrip("/"), auth_url.rstrip("/")
        self.client_id, self._token, self._refresh = client_id, token, refresh_token
        self._secret = client_secret
        self.user_id: str | None = None
        self.login: str | None = None  # the token's user (the IRC nick)
        self.budget = RateBudget()
        self._http = httpx.AsyncClient(timeout=timeout)
        self._on_wait = on_wait
        self._on_renewed = on_renewed
        self._renewing = asyncio.Lock()

    async def close(self) -> None:
        await self._http.aclose()

    def token(self) -> str | None:
        """The current access token (for the chat login; never logged)."""
        return self._token

    # -- tokens ---------------------------------------------------------------------------
    async def start(self) -> None:
        """Validate the token (refreshing it if Twitch refuses it) and learn whose it is."""
        if self._token is None or not await self._validate():
            await self._renew()
            if not await self._validate():
                raise AuthFailed("Twitch refused the renewed token")

    async def _validate(self) -> bool:
        try:
            r = await self._http.get(self._auth + "/validate",
                                     headers={"Authorization": f"OAuth {self._token}"})
        except httpx.TransportError as exc:
            raise PollFailed("unreachable", f"{self._auth}: {type(exc).__name__}") from exc
        if r.status_code == 401:
            return False
        if r.status_code != 200:
            raise PollFailed(f"http_{r.status_code}", "/validate")
        self.user_id, self.login = r.json().get("user_id"), r.json().get("login")
        if self.user_id is None:
            log.warning("the Twitch token is an app token: it lists streams but cannot "
                        "read chatters (Get Chatters needs a moderator's user token)")
        return True

    async def _renew(self) -> None:
        """A new access token: from the refresh token, else by client credentials (an app
        token: it reads streams, but Get Chatters needs a moderator's user token)."""
        if self._secret is None:
            raise AuthFailed("the token was refused and there is no client_secret to "
                             "renew it with (set twitch.client_secret)")
        form = {"client_id": self.client_id, "client_secret": self._secret}
        if self._refresh:
            form.update(grant_type="refresh_token", refresh_token=self._refresh)
        else:
            form["grant_type"] = "client_credentials"
        try:
            r = await self._http.post(self._auth + "/token", data=form)
        except httpx.TransportError as exc:
            raise PollFailed("unreachable", f"{self._auth}: {type(exc).__name__}") from exc
        if r.status_code == 429 or r.status_code >= 500:  # Twitch is struggling: later
            raise PollFailed(f"http_{r.status_code}", "/token")
        if r.status_code != 200:
            raise AuthFailed(f"Twitch refused to renew the token ({r.status_code})")
        got = r.json()
        self._token, self._refresh = got["access_token"], got.get("refresh_token",
                                                                 self._refresh)
        log.info("renewed the Twitch access token")
        if self._on_renewed is not None:
            self._on_renewed(self._token, self._refresh)

    # -- calls ----------------------------------------------------------------------------
    async def get(self, path: str, params: Any) -> dict[str, Any]:
        """GET a Helix path: waits out an empty budget and 429s, renews the token once on
        a 401, tries once more after a connection error (a GET is safe to repeat); any
        other refusal, a timeout or a second connection error raises PollFailed."""
        renewed, retried = False, False
        while True:
            while wait := self.budget.wait_s():
                await self._wait(wait)
            used = self._token
            self.budget.in_flight += 1  # no await since the check: no other call took it
            try:
                r = await self._http.get(self._helix + path, params=params,
                                         headers={"Client-Id": self.client_id,
                                                  "Authorization": f"Bearer {used}"})
            except httpx.TimeoutException as exc:
                raise PollFailed("timeout", path) from exc
            except httpx.TransportError as exc:
                if not retried:  # a kept-alive connection the server had just closed
                    retried = True
                    continue
                raise PollFailed("unreachable", f"{path}: {type(exc).__name__}") from exc
            finally:
                self.budget.in_flight -= 1
            self.budget.read(r.headers)
            if r.status_code == 429:  # wait for the reset Helix gives, at least a moment
                self.budget.emptied()
                await self._wait(max(self.budget.wait_s(), LEAST_429_WAIT))
                continue
            if r.status_code == 401 and not renewed:
                async with self._renewing:  # one renewal for every call refused at once
                    if self._token == used:
                        await self._renew()
                renewed = True
                continue
            if r.status_code != 200:
                raise PollFailed(f"http_{r.status_code}", path)
            try:  # orjson: a page of 1,000 chatters decodes ~4x faster, holding the GIL less
                body = orjson.loads(r.content)
            except orjson.JSONDecodeError as exc:
                raise PollFailed("bad_body", path) from exc
            if not isinstance(body, dict):
                raise PollFailed("bad_body", path)
            return body

    async def _wait(self, seconds: float) -> None:
        self.budget.waits += 1
        if self._on_wait is not None:
            self._on_wait(seconds)
        await asyncio.sleep(seconds)

    async def users(self, logins: list[str]) -> dict[str, str]:
        """login -> user id of those that exist."""
        out: dict[str, str] = {}
        for lo in range(0, len(logins), LOGINS_PER_CALL):
            part = logins[lo:lo + LOGINS_PER_CALL]
            got = await self.get("/users", [("login", x) for x in part])
            out.update({u["login"].lower(): u["id"] for u in got["data"]})
        return out

    async def live(self, logins: list[str]) -> dict[str, LiveStream]:
        """Which of `logins` are live now, with Helix's viewer counts."""
        out: dict[str, LiveStream] = {}
        for lo in range(0, len(logins), LOGINS_PER_CALL):
            part = logins[lo:lo + LOGINS_PER_CALL]
            params = [("user_login", x) for x in part] + [("first", str(LOGINS_PER_CALL))]
            got = await self.get("/streams", params)
            out.update({s.login: s for s in map(_stream, got["data"])})
        return out

    async def top(self, n: int, game_ids: list[str] = [],  # noqa: B006 (never mutated)
                  languages: list[str] = []) -> list[LiveStream]:  # noqa: B006
        """The `n` live streams with most viewers (optionally of these games/languages)."""
        out: list[LiveStream] = []
        cursor: str | None = None
        while len(out) < n:
            params = [("first", str(min(100, n - len(out))))]
            params += [("game_id", g) for g in game_ids] + [("language", x) for x in languages]
            if cursor:
                params.append(("after", cursor))
            got = await self.get("/streams", params)
            out.extend(map(_stream, got["data"]))
            cursor = (got.get("pagination") or {}).get("cursor")
            if not cursor or not got["data"]:
                break
        return out[:n]

    async def chatters(self, broadcaster_id: str,
                       pause: Callable[[], Awaitable[Any]] | None = None) -> list[str]:
        """Every chatter login of a stream, whole or not at all (PollFailed); `pause` is
        awaited before each page (the tracker holds pages back while a big snapshot
        applies)."""
        if self.user_id is None:
            raise PollFailed("no_moderator", "an app token cannot read chatters")
        seen: dict[str, None] = {}
        cursor: str | None = None
        while True:
            if pause is not None:
                await pause()
            params = {"broadcaster_id": broadcaster_id, "moderator_id": self.user_id,
                      "first": str(PAGE)}
            if cursor:
                params["after"] = cursor
            got = await self.get("/chat/chatters", params)
            seen.update((c["user_login"].lower(), None) for c in got.get("data", []))
            cursor = (got.get("pagination") or {}).get("cursor")
            if not cursor:
                return list(seen)


def _stream(s: dict[str, Any]) -> LiveStream:
    return LiveStream(s["user_login"].lower(), s["user_id"], int(s.get("viewer_count", 0)),
                      s.get("game_id", ""), s.get("language", ""))
