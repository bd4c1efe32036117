"""The query and path parameters the routes share, each declared once with the rules the
engine enforces: FastAPI checks them (a 400 naming the parameter) and the OpenAPI document
states them, so a client generated from ``/openapi.json`` sends nothing that is refused
for a reason the document does not give (tests/test_openapi_fuzz.py holds the two together).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from fastapi import Path, Query
from pydantic import WithJsonSchema
from starlette.convertors import Convertor, register_url_convertor

from ..calendar import STEPS, WEEKDAYS, zone_names
from ..core.events import MAX_NAME
from ..engine import MAX_N, MAX_RADIUS
from ..windows import INSTANT_MAX, INSTANT_MIN

# Every name (space, metric, member, room, id) is 1-128 characters without U+0000.
NO_NUL = r"^[^\u0000]*$"
# RFC 3339 date-times whose year keeps them inside the range of query instants (the
# schema cannot state that an offset may still carry a year-1000 instant past the edge).
QUERY_DATE_TIME = r"^[1-8][0-9]{3}-"
EVENT_DATE_TIME = r"^[2-9][0-9]{3}-"
WINDOW_PATTERN = r"^(all|day|week|month|year|range|rolling:[1-9][0-9]{0,8}[smhd])$"
DAY_START_PATTERN = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
# Inline, not a $ref: pydantic resolves references while it generates the schema.
TIMEZONE_SCHEMA = {"type": "string", "enum": sorted(zone_names()),
                   "description": "an IANA zone name (the list the tzdata package ships)"}

class NameConvertor(Convertor[str]):
    """A name as the rest of the path: it may hold ``/`` and, unlike Starlette's ``path``
    convertor (``.*``), a newline; the parameter's own rules then apply (a 400, not a 404)."""

    regex = r"[\s\S]*"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("name", NameConvertor())  # routes say {metric:name}

StepName = Literal["second", "minute", "hour", "day", "week", "month", "year"]
WeekdayName = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday",
                      "sunday"]
assert get_args(StepName) == STEPS and get_args(WeekdayName) == WEEKDAYS


def instant_schema(minimum: float, date_time: str) -> dict[str, Any]:
    """Unix seconds (from `minimum`, before 9000-01-01) or an RFC 3339 date-time."""
    return {"anyOf": [
        {"type": "number", "minimum": minimum, "exclusiveMaximum": INSTANT_MAX},
        {"type": "string", "format": "date-time", "pattern": date_time}]}


def name(what: str, **more: Any) -> Any:
    """A required query name."""
    return Query(description=what, min_length=1, max_length=MAX_NAME, pattern=NO_NUL, **more)


Space = Annotated[str, name("Namespace (guild, app, team)")]
Metric = Annotated[str, name("Metric name")]
Member = Annotated[str, name("Member id")]
OptionalName = Annotated[str | None, Query(min_length=1, max_length=MAX_NAME, pattern=NO_NUL)]
MetricPath = Annotated[str, Path(description="Metric name; percent-encode it as one path "
                                             "segment (`a/b` may also be sent as is)",
                                 min_length=1, max_length=MAX_NAME, pattern=NO_NUL)]
RoomPath = Annotated[str, Path(description="Room name; percent-encode it as one path "
                                           "segment (`voice/general` may also be sent as is)",
                               min_length=1, max_length=MAX_NAME, pattern=NO_NUL)]
Instant = Annotated[str | None, Query(description="Unix seconds or RFC 3339 with an offset, "
                                                  "in [1000-01-01, 9000-01-01)"),
                    WithJsonSchema(instant_schema(INSTANT_MIN, QUERY_DATE_TIME))]
RequiredInstant = Annotated[str, Query(description="Unix seconds or RFC 3339 with an offset, "
                                                   "in [1000-01-01, 9000-01-01)"),
                            WithJsonSchema(instant_schema(INSTANT_MIN, QUERY_DATE_TIME))]
WindowQ = Annotated[str, Query(description="all, day, week, month, year, "
                                           "rolling:<n><s|m|h|d> or range",
                               pattern=WINDOW_PATTERN)]
Step = Annotated[StepName, Query(description="bucket size")]
Count = Annotated[int, Query(ge=1, le=MAX_N, description="entries to return")]
Offset = Annotated[int, Query(ge=0, description="entries to skip")]
Radius = Annotated[int, Query(ge=0, le=MAX_RADIUS, description="neighbours each side")]
MinTotal = Annotated[int, Query(ge=1, description="the least daily total that counts")]
Timezone = Annotated[str | None, Query(description="IANA timezone"),
                     WithJsonSchema(TIMEZONE_SCHEMA)]
DayStart = Annotated[str | None, Query(description="HH:MM", pattern=DAY_START_PATTERN)]
