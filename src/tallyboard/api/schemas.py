"""Pydantic models for the OpenAPI document (requests are parsed strictly elsewhere)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class EventIn(BaseModel):
    space: str | None = Field(None, description="Namespace; default `default`")
    metric: str = Field(description="Counter name, created on first use")
    member: str = Field(description="Who is ranked (1-128 chars)")
    value: int = Field(1, description="Signed 64-bit integer added at `ts`")
    ts: float | str | None = Field(None, description="Unix seconds or RFC 3339; default now")
    tags: dict[str, str] | None = Field(None, description="At most 16 string pairs")
    id: str | None = Field(None, description="Idempotency key per space (<= 128 chars)")


class PresenceIn(BaseModel):
    space: str | None = None
    type: str = Field(description="join, leave or snapshot")
    room: str
    member: str | None = Field(None, description="for join and leave")
    members: list[str] | None = Field(None, description="for snapshot: everyone present")
    ts: float | str | None = None
    id: str | None = None


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


class MigrationsOut(BaseModel):
    migrations: list[MigrationCount]
    moves: list[Move] | None = None


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
    timezone: str | None = None
    day_start: str | None = None
    week_start: str | None = None
    dimensions: list[str] | None = None
    rolling: list[str] | None = None


class GroupIn(BaseModel):
    """The body of ``POST /v1/leaderboard``: the group to rank (at most 10,000)."""

    members: list[str] = Field(description="member ids; same rules as `members=a,b,c`")


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


class BotCountdownOut(BaseModel):
    channel: str
    guild: str | None
    target: int
    started: float = Field(description="Unix seconds; tick k is due at started + k")
    sent: int = Field(description="the last tick sent")


class BotCountdownsOut(BaseModel):
    countdowns: list[BotCountdownOut]


class ErrorBody(BaseModel):
    code: str
    message: str
    index: int | None = None
    field: str | None = None


class ErrorOut(BaseModel):
    error: ErrorBody


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The `responses=` entry documenting JSON errors with these statuses."""
    return {code: {"model": ErrorOut} for code in codes}


def batch_body(schema: str) -> dict[str, Any]:
    """OpenAPI request body of an ingest route: one `schema` object, an array of them, or
    NDJSON (the route parses the body itself, so FastAPI cannot infer this)."""
    ref = {"$ref": f"#/components/schemas/{schema}"}
    return {"requestBody": {"required": True, "content": {
        "application/json": {"schema": {"oneOf": [ref, {"type": "array", "items": ref}]}},
        "application/x-ndjson": {"schema": {"type": "string"}}}}}
