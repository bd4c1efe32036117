"""The presence routes (SPEC §7): joins, leaves and snapshots in; rooms, sessions,
concurrency and migrations out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from .params import (
    Instant,
    Member,
    OptionalName,
    RequiredInstant,
    RoomPath,
    Space,
    Step,
    name,
)
from .routes import (
    FRACTION,
    FUTURE,
    JSON,
    START_AFTER_END,
    TOO_MANY_POINTS,
    Caller,
    Engine,
    ingest,
    read_settings,
)
from .schemas import (
    AcceptedOut,
    ConcurrencyOut,
    MigrationsOut,
    OverlapOut,
    PresenceSettingsOut,
    RoomOut,
    RoomsOut,
    SessionsOut,
    batch_body,
    errors,
    json_body,
)

router = APIRouter(prefix="/v1")
READ_ERRORS = errors(400, 503)
SPAN_ERRORS = errors(400, 503, beyond_schema={400: [START_AFTER_END]})


@router.post("/presence", response_model=AcceptedOut,
             responses=errors(400, 409, 413, 422, 503, beyond_schema={
                 409: ["an operation older than one seen for its member and room "
                       "(out_of_order), or a snapshot older than its room's newest"],
                 422: [FUTURE]}),
             openapi_extra=batch_body("PresenceIn"))
async def post_presence(request: Request, eng: Engine, who: Caller,
                        space: Space = "default") -> JSON:
    """Joins, leaves and snapshots: all or nothing, in time order per member and room
    (an older one is a 409 out_of_order), durable on 200."""
    return await ingest(request, who, space, eng.presence, request.app.state.telemetry.presence)


@router.get("/presence/rooms", response_model=RoomsOut, responses=READ_ERRORS)
def get_rooms(eng: Engine, who: Caller, space: Space = "default") -> JSON:
    """Rooms with members present now, most crowded first."""
    who.require("read", [space])
    return JSON({"rooms": eng.rooms(space=space)})


@router.get("/presence/rooms/{room:name}", response_model=RoomOut, responses=READ_ERRORS)
def get_room(eng: Engine, who: Caller, room: RoomPath, space: Space = "default") -> JSON:
    """Who is in a room now and since when, longest present first."""
    who.require("read", [space])
    return JSON(eng.room(room, space=space))


@router.get("/presence/sessions", response_model=SessionsOut, responses=SPAN_ERRORS)
def get_sessions(eng: Engine, who: Caller, member: Member, start: Instant = None,
                 end: Instant = None, space: Space = "default") -> JSON:
    """A member's sessions overlapping [start, end); an open one has end null."""
    who.require("read", [space])
    return JSON({"sessions": eng.sessions(member, start=start, end=end, space=space)})


@router.get("/presence/concurrency", response_model=ConcurrencyOut,
            responses=errors(400, 503, beyond_schema={400: [
                "start is not before end (given, or defaulted to now)", TOO_MANY_POINTS]}))
def get_concurrency(eng: Engine, who: Caller, start: RequiredInstant, end: Instant = None,
                    step: Step = "hour", room: OptionalName = None,
                    space: Space = "default") -> JSON:
    """Per bucket: the peak present in any one second, and the average (member-seconds
    over the bucket's seconds inside [start, min(end, now)))."""
    who.require("read", [space])
    buckets = eng.concurrency(room=room, step=step, start=start, end=end, space=space)
    return JSON({"points": [{"start": b.start, "label": b.label, "peak": b.peak, "avg": b.avg}
                            for b in buckets]})


@router.get("/migrations", response_model=MigrationsOut, responses=SPAN_ERRORS)
def get_migrations(eng: Engine, who: Caller, start: Instant = None, end: Instant = None,
                   source: Annotated[OptionalName, Query(alias="from")] = None,
                   target: Annotated[OptionalName, Query(alias="to")] = None,
                   member: Annotated[OptionalName, Query(description="also list this "
                                                                     "member's moves")] = None,
                   n: Annotated[int | None, Query(ge=1, description="only the n most "
                                                  "frequent pairs (default: all)")] = None,
                   viewers: Annotated[int | None, Query(
                       ge=1, le=100_000, description="with from and to: also list up to "
                       "this many of the members behind that flow, each with its leave and "
                       "join times, the earliest join first")] = None,
                   space: Space = "default") -> JSON:
    """Moves between rooms (a migration's time is its join's), counted per pair."""
    who.require("read", [space])
    return JSON(eng.migrations(start=start, end=end, source=source, target=target,
                               member=member, n=n, viewers=viewers, space=space))


@router.get("/presence/overlap", response_model=OverlapOut,
            responses=errors(400, 503, beyond_schema={400: [
                START_AFTER_END, "end without start (neither is now; start alone runs to "
                                 "now)"]}))
def get_overlap(eng: Engine, who: Caller,
                room: Annotated[str, name("the room whose audience is compared")],
                start: Instant = None, end: Instant = None,
                n: Annotated[int | None, Query(ge=1, description="only the n rooms "
                                               "sharing most (default: all)")] = None,
                space: Space = "default") -> JSON:
    """Audience overlap: for each other room, how many of the members present in `room`
    (for a second or more of [start, end), or now) were present there too in that span,
    most first, with its share of all the overlap."""
    who.require("read", [space])
    return JSON(eng.overlap(room, start=start, end=end, n=n, space=space))


@router.get("/presence/config", response_model=PresenceSettingsOut, responses=READ_ERRORS)
def get_presence_config(eng: Engine, who: Caller, space: Space = "default") -> JSON:
    """A space's presence settings."""
    who.require("read", [space])
    return JSON(eng.presence_settings(space=space))


@router.put("/presence/config", response_model=PresenceSettingsOut,
            responses=errors(400, 409, 503, beyond_schema={
                400: [FRACTION], 409: ["a metric that already holds events of its own"]}),
            openapi_extra=json_body("PresenceConfigIn"))
async def put_presence_config(request: Request, eng: Engine, who: Caller,
                              space: Space = "default") -> JSON:
    """Change metric, migration_window or close_on_gap (admin); the space's presence
    history is replayed with the new settings."""
    who.require("admin", [space])
    settings = await read_settings(request)
    return JSON(await request.app.state.run(eng.set_presence, settings, space=space))
