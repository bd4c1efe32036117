"""Pydantic models for the OpenAPI document (requests are parsed strictly elsewhere), and
what the document says every operation can answer."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from ..core.events import INT64_MAX, INT64_MIN, MAX_NAME, MAX_TAGS
from ..engine import MAX_GROUP
from ..presence.ops import MAX_SNAPSHOT
from ..windows import EPOCH_MIN, ROLLING_SPAN
from .body import MAX_EVENTS, NDJSON_TYPES
from .params import (
    DAY_START_PATTERN,
    EVENT_DATE_TIME,
    NO_NUL,
    TIMEZONE_SCHEMA,
    WeekdayName,
    instant_schema,
)

NameField = Annotated[str, Field(min_length=1, max_length=MAX_NAME, pattern=NO_NUL)]
TagsField = Annotated[dict[str, str] | None, WithJsonSchema({"anyOf": [{
    "type": "object", "maxProperties": MAX_TAGS,
    "propertyNames": {"type": "string", "minLength": 1, "maxLength": 64, "pattern": NO_NUL},
    "additionalProperties": {"type": "string", "minLength": 1, "maxLength": 256,
                             "pattern": NO_NUL}}, {"type": "null"}]})]
TsField = Annotated[float | str | None, WithJsonSchema({"anyOf": [
    *instant_schema(EPOCH_MIN, EVENT_DATE_TIME)["anyOf"], {"type": "null"}]})]
STRICT = ConfigDict(extra="forbid")  # an unknown field is refused, so the schema says so


class EventIn(BaseModel):
    model_config = STRICT
    space: NameField | None = Field(None, description="Namespace; default `?space=`")
    metric: NameField = Field(description="Counter name, created on first use")
    member: NameField = Field(description="Who is ranked")
    value: int = Field(1, ge=INT64_MIN, le=INT64_MAX,
                       description="Signed 64-bit integer added at `ts`")
    ts: TsField = Field(None, description="Unix seconds or RFC 3339, from 2000-01-01 to "
                                          "`skew_seconds` ahead of the server's clock; "
                                          "default now")
    tags: TagsField = Field(None, description="At most 16 string pairs")
    id: NameField | None = Field(None, description="Idempotency key per space")


class _PresenceOp(BaseModel):
    model_config = STRICT
    space: NameField | None = None
    room: NameField
    ts: TsField = None
    id: NameField | None = None


class JoinIn(_PresenceOp):
    type: Literal["join"]
    member: NameField


class LeaveIn(_PresenceOp):
    type: Literal["leave"]
    member: NameField


class SnapshotIn(_PresenceOp):
    type: Literal["snapshot"]
    members: list[NameField] = Field(max_length=MAX_SNAPSHOT,
                                     description="everyone present in the room")


PRESENCE_OPS: dict[str, type[BaseModel]] = {"join": JoinIn, "leave": LeaveIn,
                                             "snapshot": SnapshotIn}


class RoomCount(BaseModel):
    room: str
    members: int


class RoomsOut(BaseModel):
    rooms: list[RoomCount]


class MemberSince(BaseModel):
    member: str
    since: int


class RoomOut(BaseModel):
    room: str
    members: list[MemberSince]


class SessionOut(BaseModel):
    room: str
    start: int
    end: int | None
    seconds: int


class SessionsOut(BaseModel):
    sessions: list[SessionOut]


class BucketOut(BaseModel):
    start: int
    label: str
    peak: int
    avg: float


class ConcurrencyOut(BaseModel):
    points: list[BucketOut]


class MigrationCount(BaseModel):
    model_config = {"populate_by_name": True}
    source: str = Field(alias="from")
    target: str = Field(alias="to")
    count: int


class Move(BaseModel):
    member: str
    source: str = Field(alias="from")
    target: str = Field(alias="to")
    ts: int


class FlowViewer(BaseModel):
    member: str
    left: int | None = Field(description="when the member left `from` (null only for a "
                                         "migration recorded by a version that did not "
                                         "keep it)")
    joined: int = Field(description="when the member joined `to`: the migration's time")


class MigrationsOut(BaseModel):
    migrations: list[MigrationCount]
    moves: list[Move] | None = None
    viewers: list[FlowViewer] | None = Field(None, description="with `viewers`: the "
                                             "members behind the from -> to flow")


class OverlapRoom(BaseModel):
    room: str
    members: int = Field(description="members of the room asked about present here too")
    share: float = Field(description="members / shared: this room's part of all overlap")


class OverlapOut(BaseModel):
    room: str
    start: float | None = Field(description="null: present now")
    end: float | None = Field(description="the span's end, clipped to now")
    audience: int = Field(description="distinct members present in the room in the span")
    shared: int = Field(description="the members counts of every other room, summed")
    overlap: list[OverlapRoom]


class PresenceSettingsOut(BaseModel):
    metric: str
    migration_window: int
    close_on_gap: str


class AcceptedOut(BaseModel):
    accepted: int
    duplicates: int


class SumOut(BaseModel):
    sum: int


class PointOut(BaseModel):
    start: int
    label: str
    value: int


class SeriesOut(BaseModel):
    points: list[PointOut]


class EntryOut(BaseModel):
    rank: int
    member: str
    score: int


class WindowOut(BaseModel):
    start: float | None
    end: float


class LeaderboardOut(BaseModel):
    window: WindowOut
    total: int
    entries: list[EntryOut]


class RankOut(BaseModel):
    rank: int | None
    score: int
    total: int
    around: list[EntryOut]


class RunOut(BaseModel):
    length: int
    first_day: str | None
    last_day: str | None


class StreakOut(BaseModel):
    current: RunOut
    longest: RunOut


class MetricOut(BaseModel):
    metric: str
    space: str
    timezone: str
    day_start: str
    week_start: str
    dimensions: list[str]
    rolling: list[str]
    events: int
    replayed: int | None = None


class MetricsOut(BaseModel):
    metrics: list[MetricOut]


class MetricIn(BaseModel):
    """``PUT /v1/metrics/{metric}``: the settings to change (null or absent: keep)."""

    model_config = STRICT
    timezone: Annotated[str | None, WithJsonSchema({"anyOf": [TIMEZONE_SCHEMA,
                                                              {"type": "null"}]})] = None
    day_start: Annotated[str, Field(pattern=DAY_START_PATTERN)] | None = None
    week_start: WeekdayName | None = None
    dimensions: list[Annotated[str, Field(min_length=1, max_length=64,
                                          pattern=NO_NUL)]] | None = None
    rolling: list[Annotated[str, Field(pattern=f"^{ROLLING_SPAN.pattern}$")]] | None = None


class PresenceConfigIn(BaseModel):
    """``PUT /v1/presence/config``: the presence settings to change (absent: keep)."""

    model_config = STRICT
    metric: NameField | None = Field(None, description="the metric presence credits")
    migration_window: int | None = Field(None, ge=0, le=INT64_MAX, description="seconds")
    close_on_gap: Literal["snapshot", "last_seen"] | None = None


class GroupIn(BaseModel):
    """The body of ``POST /v1/leaderboard``: the group to rank."""

    members: list[str] = Field(max_length=MAX_GROUP,
                               description="member ids; same rules as `members=a,b,c`")


class BotErrorOut(BaseModel):
    id: int
    at: float = Field(description="Unix seconds")
    kind: Literal["command", "general"]
    guild: str | None
    channel: str | None
    command: str | None
    error: str = Field(description="exception type and message")
    traceback: str = Field(description="the last frames, at most 2,000 characters")


class BotErrorsOut(BaseModel):
    errors: list[BotErrorOut]


class IngestErrorOut(BaseModel):
    id: int
    at: float = Field(description="Unix seconds when it was kept")
    source: str = Field(description="the worker's --from URL, password hidden")
    origin: str = Field(description="where the message sat in its broker (unique)")
    reason: str
    body: str = Field(description="the original bytes as UTF-8 (undecodable bytes as U+FFFD)")
    body_base64: str = Field(description="the original bytes, exactly")
    replayed: float | None = Field(description="Unix seconds when it was published again")


class IngestErrorsOut(BaseModel):
    errors: list[IngestErrorOut]


class BotCountdownOut(BaseModel):
    channel: str
    guild: str | None
    target: int
    started: float = Field(description="Unix seconds; tick k is due at started + k")
    sent: int = Field(description="the last tick sent")


class BotCountdownsOut(BaseModel):
    countdowns: list[BotCountdownOut]


class TwitchStreamOut(BaseModel):
    stream: str = Field(description="channel login: the presence room")
    live: bool
    listed: bool = Field(description="explicitly listed (else watched as one of the top N)")
    viewer_count: int | None = Field(description="Helix's own viewer_count while live")
    chatters: int = Field(description="chatters in the last complete poll")
    last_poll: float | None = Field(description="unix time the last complete poll began")
    stale: str | None = Field(description="why the last poll recorded nothing, if it did")
    cycle_s: float | None = Field(description="seconds between the last two complete polls")
    source: str = Field(description="helix, or irc once Helix refused to list the chatters "
                                    "(the token is not the channel's moderator)")


class TwitchStreamsOut(BaseModel):
    space: str
    listed: list[str]
    top: int
    behind: bool = Field(description="the rate budget cannot poll every live stream at "
                                     "the interval: the biggest movers go first")
    streams: list[TwitchStreamOut]


class TwitchRaidOut(BaseModel):
    from_: str = Field(alias="from", description="the raiding channel")
    to: str = Field(description="the raided channel")
    ts: float = Field(description="unix time Twitch sent the raid")
    viewers: int = Field(description="the raid's viewer count, as Twitch announced it")
    moved: int = Field(description="moves from -> to whose join came within the raid "
                                   "window after it (300 s, or two polls if longer; from "
                                   "an interval and 10 s before, as joins carry their "
                                   "poll's start)")


class TwitchRaidsOut(BaseModel):
    space: str
    raids: list[TwitchRaidOut]


class TwitchViewersPointOut(BaseModel):
    start: int = Field(description="the bucket's own start (unix)")
    label: str
    peak: int = Field(description="chatters present in any one second (presence)")
    avg: float = Field(description="chatter-seconds over the bucket's seconds in the span")
    viewer_count: float | None = Field(description="Helix's own viewer_count: the mean of "
                                       "the live checks in the bucket (null: none)")
    checks: int = Field(description="live checks in the bucket that saw the stream live")


class TwitchViewersOut(BaseModel):
    space: str
    stream: str
    points: list[TwitchViewersPointOut]


class TwitchStreamChangeOut(BaseModel):
    stream: str
    changed: bool = Field(description="false: it already was (or was not) listed")


class ErrorBody(BaseModel):
    code: str
    message: str
    index: int | None = None
    field: str | None = None


class ErrorOut(BaseModel):
    error: ErrorBody


# What each status means on any route; a route adds the rules behind a status that no
# schema can state (`beyond_schema`).
MEANINGS = {
    400: "A query parameter or the body breaks the rules this document states",
    401: "Missing or unknown API key (only when keys are configured)",
    403: "The key lacks the scope or the space",
    404: "Unknown metric",
    409: "Conflict with the data held",
    413: "Over 10 MiB, or more items than one request may carry",
    415: "The body is not sent as one of the media types this operation takes",
    421: "The Host header is not one of this server's own names (see docs/api.md, "
         "Security)",
    422: "One item of the body is invalid; `index` and `field` say which",
    429: "Rate limited; retry after `Retry-After` seconds",
    503: "The store is unavailable (`store_unavailable`) or too many writes are waiting "
         "(`busy`); nothing was applied; retry after `Retry-After` seconds",
}
AUTH = (401, 403, 429)  # what a route that checks its caller's key may answer
BEYOND_SCHEMA = "x-beyond-schema"  # per response: the rules behind it no schema can state


def errors(*codes: int, beyond_schema: dict[int, list[str]] | None = None
           ) -> dict[int | str, dict[str, Any]]:
    """The `responses=` entry of a route that authenticates its caller (so it may also
    answer 401, 403 and 429), documenting JSON errors with these statuses too.

    `beyond_schema` lists, per status, the rules behind it that a schema cannot state (a
    relation between two parameters, the server's clock), in its description and as
    ``x-beyond-schema``: tests/test_openapi_fuzz.py lets a schema-valid request be refused
    with that status only where such a rule is listed."""
    beyond = beyond_schema or {}
    statuses = sorted({*codes, *AUTH})
    assert set(beyond) <= set(statuses), "a rule beyond the schema needs its status listed"
    out: dict[int | str, dict[str, Any]] = {}
    for code in statuses:
        out[code] = {"model": ErrorOut, "description": MEANINGS[code]}
        if code in beyond:
            out[code]["description"] += "; also: " + "; ".join(beyond[code])
            out[code][BEYOND_SCHEMA] = beyond[code]
    return out


def json_body(schema: str) -> dict[str, Any]:
    """OpenAPI request body of a route that parses one JSON object `schema` itself."""
    return {"requestBody": {"required": True, "content": {
        "application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}}}


def batch_body(schema: str) -> dict[str, Any]:
    """OpenAPI request body of an ingest route: one `schema` object, an array of them, or
    NDJSON (the route parses the body itself, so FastAPI cannot infer this)."""
    ref = {"$ref": f"#/components/schemas/{schema}"}
    array = {"type": "array", "items": ref, "minItems": 1, "maxItems": MAX_EVENTS}
    # NDJSON: the same items, one JSON text per line (OpenAPI 3.1 has no itemSchema yet)
    ndjson = {"schema": {**array, "description": f"one {schema} per line"}}
    return {"requestBody": {"required": True, "content": {
        "application/json": {"schema": {"oneOf": [ref, array]}},
        **dict.fromkeys(NDJSON_TYPES, ndjson)}}}


def body_models() -> dict[str, dict[str, Any]]:
    """The component schemas of the bodies the routes parse themselves."""
    models: list[type[BaseModel]] = [EventIn, MetricIn, PresenceConfigIn,
                                     *PRESENCE_OPS.values()]
    out = {m.__name__: m.model_json_schema(ref_template="#/components/schemas/{model}")
           for m in models}
    refs = {kind: f"#/components/schemas/{m.__name__}" for kind, m in PRESENCE_OPS.items()}
    out["PresenceIn"] = {"oneOf": [{"$ref": ref} for ref in refs.values()],
                         "discriminator": {"propertyName": "type", "mapping": refs}}
    return out


def finish_openapi(schema: dict[str, Any]) -> dict[str, Any]:
    """Make the generated document say what every operation can answer.

    FastAPI documents a 422 ``HTTPValidationError`` that never happens (a bad parameter
    is a 400 here); every operation with parameters or a body can be a 400, every body a
    413 or a 415, and every request a 421 (the Host check).
    """
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for gone in ("HTTPValidationError", "ValidationError"):
        components.pop(gone, None)
    components.update(body_models())
    error = {"description": "", "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/ErrorOut"}}}}
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            responses = operation["responses"]
            if "HTTPValidationError" in str(responses.get("422", "")):
                del responses["422"]
            implied = [421]
            if operation.get("parameters") or "requestBody" in operation:
                implied.append(400)
            if "requestBody" in operation:
                implied += [413, 415]
            for code in implied:
                responses.setdefault(str(code), {**error, "description": MEANINGS[code]})
            operation["responses"] = dict(sorted(responses.items()))
    return schema
