"""The /v1 routes: each parses its request, checks the caller, and makes one engine call."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from prometheus_client import Counter
from starlette.requests import ClientDisconnect

from ..core.results import Accepted
from ..engine import Tallyboard
from ..errors import BadQuery, BadRequest, TallyboardError, TooLarge
from .auth import Principal
from .body import MAX_BYTES, parse_items
from .params import (
    Count,
    DayStart,
    Instant,
    Member,
    Metric,
    MetricPath,
    MinTotal,
    Offset,
    Radius,
    Space,
    Step,
    Timezone,
    WindowQ,
)
from .schemas import (
    AcceptedOut,
    GroupIn,
    LeaderboardOut,
    MetricOut,
    MetricsOut,
    RankOut,
    SeriesOut,
    StreakOut,
    SumOut,
    batch_body,
    errors,
    json_body,
)

router = APIRouter(prefix="/v1")

# The rules behind a 400 that no schema can state, shared by the queries that have them.
START_AFTER_END = "start is after end"
RANGE = "window=range without both start and end, or with start >= end"
TOO_MANY_POINTS = "more than 10,000 buckets between start and end for this step"
NOT_DECLARED = "a tag.<dimension> filter on a dimension the metric does not declare"
FUTURE = "a ts more than skew_seconds ahead of the server's clock"
# JSON Schema's integer also matches 1.0 and 1e3; tallyboard takes integers as written.
FRACTION = "an integer field written with a fraction or an exponent (1.0, 1e3)"
QUERY_ERRORS = errors(400, 404, 503, beyond_schema={400: [NOT_DECLARED]})
WINDOW_ERRORS = errors(400, 404, 503, beyond_schema={400: [RANGE,
                                                                          NOT_DECLARED]})


class JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        try:
            return orjson.dumps(content)
        except orjson.JSONEncodeError:  # a total beyond 64 bits: exact, via the slow path
            return json.dumps(content, separators=(",", ":")).encode()


# Dependencies are `async def`: they only read the request, and FastAPI would run a
# plain `def` one on a worker thread, a hop that waits for the GIL behind a write.
async def engine(request: Request) -> Tallyboard:
    return request.app.state.engine  # type: ignore[no-any-return]


async def caller(request: Request) -> Principal:
    """Authenticate the request (the key ring answers OPEN when no keys are configured)."""
    principal: Principal = request.app.state.keys.authenticate(
        request.headers.get("authorization"), request.client.host if request.client else None)
    return principal


Engine = Annotated[Tallyboard, Depends(engine)]
Caller = Annotated[Principal, Depends(caller)]


async def tag_filter(request: Request) -> tuple[str, str] | None:
    """The single optional ``tag.<dimension>=<value>`` filter."""
    tags = [(k[4:], v) for k, v in request.query_params.multi_items() if k.startswith("tag.")]
    if len(tags) > 1:
        raise BadQuery("filter on one dimension at a time (one tag.<dimension>=<value>)",
                       tags[1][0] and f"tag.{tags[1][0]}")
    if tags and (not tags[0][0] or not tags[0][1]):
        raise BadQuery("a filter looks like tag.<dimension>=<value>", f"tag.{tags[0][0]}")
    return tags[0] if tags else None


Tag = Annotated[tuple[str, str] | None, Depends(tag_filter)]


@dataclass
class BoardQuery:
    """The query parameters of a leaderboard, shared by its GET and POST forms."""

    metric: Metric
    window: WindowQ = "all"
    n: Count = 10
    offset: Offset = 0
    at: Instant = None
    start: Instant = None
    end: Instant = None
    space: Space = "default"


async def board_query(metric: Metric, window: WindowQ = "all", n: Count = 10,
                      offset: Offset = 0, at: Instant = None, start: Instant = None,
                      end: Instant = None, space: Space = "default") -> BoardQuery:
    """BoardQuery on the event loop (a class as a dependency would cost a thread hop)."""
    return BoardQuery(metric, window, n, offset, at, start, end, space)


Board = Annotated[BoardQuery, Depends(board_query)]


@router.post("/events", response_model=AcceptedOut,
             responses=errors(400, 409, 413, 422, 429, 503,
                              beyond_schema={409: ["an event for a space's presence metric"],
                                             422: [FUTURE, FRACTION]}),
             openapi_extra=batch_body("EventIn"))
async def post_events(request: Request, eng: Engine, who: Caller,
                      space: Space = "default") -> JSON:
    """Record events: one object, a JSON array or NDJSON. All or nothing; durable on 200."""
    return await ingest(request, who, space, eng.record_many,
                        request.app.state.telemetry.events)


async def ingest(request: Request, who: Principal, space: str,
                 record: Callable[..., Accepted], outcomes: Counter) -> JSON:
    """Parse a body of items, check the caller may write every space they name, record
    them (off the event loop) and count the outcome."""
    items = parse_items(await read_body(request), request.headers.get("content-type"))
    who.require("write", {e["space"] if isinstance(e, dict) and isinstance(e.get("space"), str)
                          else space for e in items})
    try:
        with request.app.state.writes.slot():
            result = await request.app.state.run(record, items, space=space)
    except TallyboardError:
        outcomes.labels("rejected").inc(len(items))
        raise
    outcomes.labels("accepted").inc(result.accepted)
    outcomes.labels("duplicate").inc(result.duplicates)
    return JSON(result.to_dict())


async def read_settings(request: Request) -> dict[str, Any]:
    """A JSON object body of settings (``{}`` changes nothing; no body is a 400)."""
    body = await read_body(request)
    if not body.strip():
        raise BadRequest("the body is empty; send a JSON object of settings ({} changes "
                         "nothing)")
    try:
        settings = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from None
    if not isinstance(settings, dict):
        raise BadRequest("the body must be a JSON object of settings")
    return settings


async def read_body(request: Request) -> bytes:
    """The whole body, refusing more than 10 MiB before reading it all."""
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > MAX_BYTES:
        raise TooLarge(f"body is over {MAX_BYTES} bytes; split it into smaller requests")
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BYTES:
                raise TooLarge(f"body is over {MAX_BYTES} bytes; split it into smaller "
                               "requests")
            chunks.append(chunk)
    except ClientDisconnect:  # it left before sending all its Content-Length promised
        raise BadRequest("the connection closed before the whole body arrived") from None
    return b"".join(chunks)


@router.get("/sum", response_model=SumOut,
            responses=errors(400, 404, 503,
                             beyond_schema={400: [START_AFTER_END, NOT_DECLARED]}))
def get_sum(eng: Engine, who: Caller, tag: Tag, metric: Metric, member: Member,
            start: Instant = None, end: Instant = None, space: Space = "default") -> JSON:
    """Total of one member over ``[start, end)``; a missing bound is open."""
    who.require("read", [space])
    return JSON({"sum": eng.sum(metric, member, start=start, end=end, space=space, tag=tag)})


@router.get("/series", response_model=SeriesOut,
            responses=errors(400, 404, 503, beyond_schema={400: [
                "start is not before end (given, or defaulted to now)", TOO_MANY_POINTS,
                NOT_DECLARED]}))
def get_series(eng: Engine, who: Caller, tag: Tag, metric: Metric, member: Member,
               step: Step, start: Instant = None, end: Instant = None,
               space: Space = "default") -> JSON:
    """Per-bucket totals over ``[start, end)``, zero-filled; day and longer follow the
    metric's calendar. `end` defaults to now, `start` to the member's first event."""
    who.require("read", [space])
    points = eng.series(metric, member, step=step, start=start, end=end, space=space, tag=tag)
    return JSON({"points": [{"start": p.start, "label": p.label, "value": p.value}
                            for p in points]})


@router.get("/leaderboard", response_model=LeaderboardOut, responses=WINDOW_ERRORS)
def get_leaderboard(eng: Engine, who: Caller, tag: Tag, q: Board,
                    members: Annotated[str | None, Query(
                        description="a,b,c: rank only this group (at most 10,000)")] = None
                    ) -> JSON:
    """Top members of a window, score descending then member; competition ranks."""
    group = None if members is None else [m for m in members.split(",") if m]
    return _leaderboard(eng, who, tag, q, group)


@router.post("/leaderboard", response_model=LeaderboardOut, responses=WINDOW_ERRORS)
def post_leaderboard(eng: Engine, who: Caller, tag: Tag, q: Board,
                     body: GroupIn) -> JSON:
    """The leaderboard of a group too long for a URL (URLs stop at 64 KiB): the same
    query parameters, and the group as a JSON body ``{"members": [...]}``."""
    return _leaderboard(eng, who, tag, q, body.members)


def _leaderboard(eng: Tallyboard, who: Principal, tag: tuple[str, str] | None, q: BoardQuery,
                 group: list[str] | None) -> JSON:
    who.require("read", [q.space])
    board = eng.leaderboard(q.metric, window=q.window, n=q.n, offset=q.offset, at=q.at,
                            start=q.start, end=q.end, members=group, space=q.space, tag=tag)
    return JSON(board.to_dict())


@router.get("/rank", response_model=RankOut, responses=WINDOW_ERRORS)
def get_rank(eng: Engine, who: Caller, tag: Tag, metric: Metric, member: Member,
             window: WindowQ = "all", radius: Radius = 0,
             at: Instant = None, start: Instant = None, end: Instant = None,
             space: Space = "default") -> JSON:
    """One member's rank and score, with the entries ±radius positions around it."""
    who.require("read", [space])
    return JSON(eng.rank(metric, member, window=window, radius=radius, at=at, start=start,
                         end=end, space=space, tag=tag).to_dict())


@router.get("/streak", response_model=StreakOut, responses=QUERY_ERRORS)
def get_streak(eng: Engine, who: Caller, tag: Tag, metric: Metric, member: Member,
               min: MinTotal = 1, at: Instant = None, timezone: Timezone = None,
               day_start: DayStart = None, space: Space = "default") -> JSON:
    """Current and longest runs of days whose total is >= min, as of `at`."""
    who.require("read", [space])
    return JSON(eng.streak(metric, member, min=min, at=at, timezone=timezone,
                           day_start=day_start, space=space, tag=tag).to_dict())


@router.get("/metrics", response_model=MetricsOut, responses=errors(400, 503))
def list_metrics(eng: Engine, who: Caller, space: Space = "default") -> JSON:
    """Every metric of a space, with its settings and event count."""
    who.require("read", [space])
    return JSON({"metrics": eng.metrics(space=space)})


@router.get("/metrics/{metric:name}", response_model=MetricOut,
            responses=errors(400, 404, 503))
def get_metric(eng: Engine, who: Caller, metric: MetricPath, space: Space = "default"
               ) -> JSON:
    """One metric's settings and event count."""
    who.require("read", [space])
    return JSON(eng.metric(metric, space=space))


@router.put("/metrics/{metric:name}", response_model=MetricOut,
            responses=errors(400, 409, 503, beyond_schema={409: [
                "a calendar or dimension change on a metric with data, without "
                "rebuild=true"]}),
            openapi_extra=json_body("MetricIn"))
async def put_metric(request: Request, eng: Engine, who: Caller, metric: MetricPath,
                     space: Space = "default",
                     rebuild: Annotated[bool, Query(description="replay the metric from the "
                                                                "log")] = False) -> JSON:
    """Create or change a metric (admin). Calendar or dimension changes on a metric with
    data are a 409 unless ``rebuild=true``."""
    who.require("admin", [space])
    settings = await read_settings(request)
    info = await request.app.state.run(eng.set_metric, metric, settings, space=space,
                                       rebuild=rebuild)
    return JSON(info)

