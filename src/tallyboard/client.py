"""A client for a remote tallyboard server with the same methods as the embedded engine.

`tallyboard.open("http://host:8080")` returns one; errors come back as the same
exception classes the engine raises, so code works against either.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx

from . import errors
from .bounds import Instant
from .core.events import Event
from .core.results import Accepted, Entry, Leaderboard, Point, Rank, Run, Streak
from .engine import DEFAULT_SPACE
from .presence.concurrency import Bucket

_BY_CODE: dict[str, type[errors.TallyboardError]] = {
    cls.code: cls for cls in (errors.BadQuery, errors.BadRequest, errors.Unauthorized,
                              errors.Forbidden, errors.NotFound, errors.Conflict,
                              errors.TooLarge)}


def path_segment(name: str) -> str:
    """`name` as one path segment: ``a/b`` -> ``a%2Fb``; ``.`` and ``..`` encoded too, or
    the URL would resolve them away."""
    quoted = quote(name, safe="")
    return quoted.replace(".", "%2E") if quoted in (".", "..") else quoted


class RemoteTallyboard:
    """Talks to a tallyboard server over HTTP; one connection pool, closed by `close`."""

    def __init__(self, url: str, *, key: str | None = None, timeout: float = 30.0) -> None:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._http = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RemoteTallyboard:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            r = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise errors.StoreUnavailable(f"cannot reach the server: {exc}") from exc
        if r.status_code < 400:
            return r.json()
        try:
            body = r.json()["error"]
        except (ValueError, KeyError, TypeError):
            body = {"code": "http_error", "message": r.text[:200]}
        message = body.pop("message", r.reason_phrase)
        code = body.pop("code", "")
        retry = int(r.headers.get("retry-after", "1") or 1)
        if code == "invalid_event":
            raise errors.InvalidEvent(message, body.get("index", 0), body.get("field", ""))
        if r.status_code == 429:
            raise errors.RateLimited(message, retry)
        if r.status_code == 503:
            raise errors.StoreUnavailable(message, retry)
        raise _BY_CODE.get(code, errors.TallyboardError)(message, **body)

    @staticmethod
    def _params(tag: tuple[str, str] | None, **params: Any) -> dict[str, Any]:
        out = {k: (v.isoformat() if isinstance(v, datetime) else v)
               for k, v in params.items() if v is not None}
        if tag is not None:
            out[f"tag.{tag[0]}"] = tag[1]
        return out

    def record(self, metric: str, member: str, value: int = 1, *, ts: Instant | None = None,
               tags: Mapping[str, str] | None = None, id: str | None = None,
               space: str = DEFAULT_SPACE) -> Accepted:
        raw: dict[str, Any] = {"metric": metric, "member": member, "value": value}
        for k, v in (("ts", ts), ("tags", tags), ("id", id)):
            if v is not None:
                raw[k] = v.isoformat() if isinstance(v, datetime) else v
        return self.record_many([raw], space=space)

    def record_many(self, events: Iterable[Mapping[str, Any] | Event], *,
                    space: str = DEFAULT_SPACE) -> Accepted:
        body = [e._asdict() if isinstance(e, Event) else dict(e) for e in events]
        got = self._call("POST", "/v1/events", params={"space": space}, json=body)
        return Accepted(got["accepted"], got["duplicates"])

    def sum(self, metric: str, member: str, *, start: Instant | None = None,
            end: Instant | None = None, space: str = DEFAULT_SPACE,
            tag: tuple[str, str] | None = None) -> int:
        got = self._call("GET", "/v1/sum", params=self._params(
            tag, metric=metric, member=member, start=start, end=end, space=space))
        return int(got["sum"])

    def series(self, metric: str, member: str, *, step: str, start: Instant | None = None,
               end: Instant | None = None, space: str = DEFAULT_SPACE,
               tag: tuple[str, str] | None = None) -> list[Point]:
        got = self._call("GET", "/v1/series", params=self._params(
            tag, metric=metric, member=member, step=step, start=start, end=end, space=space))
        return [Point(**p) for p in got["points"]]

    def leaderboard(self, metric: str, *, window: str = "all", n: int = 10, offset: int = 0,
                    at: Instant | None = None, start: Instant | None = None,
                    end: Instant | None = None, members: Sequence[str] | None = None,
                    space: str = DEFAULT_SPACE,
                    tag: tuple[str, str] | None = None) -> Leaderboard:
        got = self._call("GET", "/v1/leaderboard", params=self._params(
            tag, metric=metric, window=window, n=n, offset=offset, at=at, start=start, end=end,
            members=",".join(members) if members is not None else None, space=space))
        return Leaderboard(got["window"]["start"], got["window"]["end"], got["total"],
                           [Entry(**e) for e in got["entries"]])

    def rank(self, metric: str, member: str, *, window: str = "all", radius: int = 0,
             at: Instant | None = None, start: Instant | None = None,
             end: Instant | None = None, space: str = DEFAULT_SPACE,
             tag: tuple[str, str] | None = None) -> Rank:
        got = self._call("GET", "/v1/rank", params=self._params(
            tag, metric=metric, member=member, window=window, radius=radius, at=at,
            start=start, end=end, space=space))
        return Rank(got["rank"], got["score"], got["total"], [Entry(**e) for e in got["around"]])

    def streak(self, metric: str, member: str, *, min: int = 1, at: Instant | None = None,
               timezone: str | None = None, day_start: str | None = None,
               space: str = DEFAULT_SPACE, tag: tuple[str, str] | None = None) -> Streak:
        got = self._call("GET", "/v1/streak", params=self._params(
            tag, metric=metric, member=member, min=min, at=at, timezone=timezone,
            day_start=day_start, space=space))
        return Streak(Run(**got["current"]), Run(**got["longest"]))

    def set_metric(self, metric: str, settings: Mapping[str, Any] | None = None, *,
                   space: str = DEFAULT_SPACE, rebuild: bool = False,
                   **more: Any) -> dict[str, Any]:
        params: dict[str, Any] = {"space": space}
        if rebuild:
            params["rebuild"] = "true"
        got: dict[str, Any] = self._call("PUT", f"/v1/metrics/{path_segment(metric)}",
                                         params=params, json={**(settings or {}), **more})
        return got

    def metrics(self, *, space: str = DEFAULT_SPACE) -> list[dict[str, Any]]:
        got: list[dict[str, Any]] = self._call("GET", "/v1/metrics",
                                               params={"space": space})["metrics"]
        return got

    # ---- presence ---------------------------------------------------------------------------
    def presence(self, ops: Iterable[Mapping[str, Any]], *,
                 space: str = DEFAULT_SPACE) -> Accepted:
        got = self._call("POST", "/v1/presence", params={"space": space},
                         json=[dict(op) for op in ops])
        return Accepted(got["accepted"], got["duplicates"])

    def rooms(self, *, space: str = DEFAULT_SPACE) -> list[dict[str, Any]]:
        got: list[dict[str, Any]] = self._call("GET", "/v1/presence/rooms",
                                               params={"space": space})["rooms"]
        return got

    def room(self, room: str, *, space: str = DEFAULT_SPACE) -> dict[str, Any]:
        got: dict[str, Any] = self._call("GET", f"/v1/presence/rooms/{path_segment(room)}",
                                         params={"space": space})
        return got

    def concurrency(self, *, room: str | None = None, step: str = "hour",
                    start: Instant | None = None, end: Instant | None = None,
                    space: str = DEFAULT_SPACE) -> list[Bucket]:
        got = self._call("GET", "/v1/presence/concurrency", params=self._params(
            None, room=room, step=step, start=start, end=end, space=space))
        return [Bucket(**p) for p in got["points"]]

    def overlap(self, room: str, *, start: Instant | None = None, end: Instant | None = None,
                n: int | None = None, space: str = DEFAULT_SPACE) -> dict[str, Any]:
        got: dict[str, Any] = self._call("GET", "/v1/presence/overlap", params=self._params(
            None, room=room, start=start, end=end, n=n, space=space))
        return got

    def migrations(self, *, start: Instant | None = None, end: Instant | None = None,
                   source: str | None = None, target: str | None = None,
                   member: str | None = None, n: int | None = None,
                   viewers: int | None = None,
                   space: str = DEFAULT_SPACE) -> dict[str, Any]:
        got: dict[str, Any] = self._call("GET", "/v1/migrations", params=self._params(
            None, start=start, end=end, space=space, member=member, n=n, viewers=viewers,
            **{"from": source, "to": target}))
        return got
