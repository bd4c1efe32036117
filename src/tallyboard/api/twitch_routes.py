"""The /v1/twitch routes of a `tallyboard twitch` process: the watched streams, each with
its poll state, adding or removing a stream while it runs (admin scope), and the raids
heard in chat."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request

from ..bots.twitch.helix import PollFailed
from ..bots.twitch.tracker import Tracker
from ..bounds import span
from ..errors import StoreUnavailable
from .params import Instant, RequiredInstant, Step
from .routes import JSON, Caller
from .schemas import (
    TwitchRaidsOut,
    TwitchStreamChangeOut,
    TwitchStreamsOut,
    TwitchViewersOut,
    errors,
)

router = APIRouter(prefix="/v1/twitch", tags=["twitch"])
Login = Annotated[str, Path(pattern=r"^[A-Za-z0-9_]{1,25}$",
                            description="a channel login (any case; kept lower case)")]


async def tracker(request: Request) -> Tracker:
    return request.app.state.twitch  # type: ignore[no-any-return]


Watching = Annotated[Tracker, Depends(tracker)]


@router.get("/streams", response_model=TwitchStreamsOut, responses=errors())
async def list_streams(tracker: Watching, who: Caller) -> JSON:
    """Every watched stream: listed or from the top N, live or not, its last complete
    poll and chatter count, and why its last poll recorded nothing (`stale`)."""
    who.require("read", [tracker.space])
    return JSON({"space": tracker.space, "listed": tracker.streams.logins,
                 "top": tracker.top_n, "behind": tracker.behind,
                 "streams": tracker.state()})


@router.put("/streams/{login}", response_model=TwitchStreamChangeOut, responses=errors())
async def add_stream(login: Login, tracker: Watching, who: Caller) -> JSON:
    """Watch a stream from now on (kept across restarts); its first poll starts clean."""
    who.require("admin", [tracker.space])
    return _change(login, await tracker.add(login))


@router.delete("/streams/{login}", response_model=TwitchStreamChangeOut, responses=errors())
async def remove_stream(login: Login, tracker: Watching, who: Caller) -> JSON:
    """Stop watching a listed stream: everyone in it leaves now (a top-N stream stays
    while it is in the top N)."""
    who.require("admin", [tracker.space])
    return _change(login, await tracker.remove(login))


@router.get("/raids", response_model=TwitchRaidsOut, responses=errors())
async def list_raids(tracker: Watching, who: Caller, start: Instant = None,
                     end: Instant = None,
                     stream: Annotated[str | None, Query(
                         pattern=r"^[A-Za-z0-9_]{1,25}$",
                         description="only raids from or to this channel")] = None) -> JSON:
    """Raids heard in chat in [start, end), oldest first: who raided whom with how many
    viewers, and how many moves from raider to target (presence migrations) followed
    within the raid window: the moves the raid explains."""
    who.require("read", [tracker.space])
    lo, hi = span(start, end)
    try:
        raids = await tracker.raids_between(lo, hi, None if stream is None else stream.lower())
    except PollFailed as exc:  # tallyboard (a server, with --url) cannot answer now
        raise StoreUnavailable(f"cannot read the migrations the raids explain: {exc}",
                               retry_after=5) from exc
    return JSON({"space": tracker.space, "raids": raids})


@router.get("/viewers", response_model=TwitchViewersOut, responses=errors(400, 503))
async def stream_viewers(tracker: Watching, who: Caller, stream: Annotated[str, Query(
                             pattern=r"^[A-Za-z0-9_]{1,25}$", description="a channel login")],
                         start: RequiredInstant, end: Instant = None,
                         step: Step = "hour") -> JSON:
    """Viewers over time per `step` bucket of [start, end): the chatters present (peak
    and average, as /v1/presence/concurrency counts them) beside Helix's own
    viewer_count (the mean of the live checks in the bucket)."""
    who.require("read", [tracker.space])
    lo, hi = span(start, end)
    assert lo is not None  # a RequiredInstant
    login = stream.lower()
    points = await tracker.viewers(login, start=lo, end=hi, step=step)
    return JSON({"space": tracker.space, "stream": login, "points": points})


def _change(login: str, changed: bool) -> JSON:
    body: dict[str, Any] = {"stream": login.lower(), "changed": changed}
    return JSON(body)
