"""A metric's settings: its calendar, declared dimensions and which rolling windows stay hot."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import cached_property, lru_cache
from typing import Any

from ..calendar import Calendar, CalendarError
from ..windows import ROLLING_SPAN

CALENDAR_FIELDS = ("timezone", "day_start", "week_start", "dimensions")
FIELDS = (*CALENDAR_FIELDS, "rolling")
# Each hot rolling window is a board over every member, built on PUT and on restart and
# kept in memory: 10,000 of them made a PUT take minutes. Any rolling window is queryable
# anyway (computed per query), so only a few are worth keeping hot.
MAX_ROLLING = 16


class ConfigError(ValueError):
    """A metric setting is invalid; `setting` names it."""

    def __init__(self, message: str, setting: str) -> None:
        super().__init__(message)
        self.setting = setting


@dataclass(frozen=True)
class MetricConfig:
    """Settings of one metric; changing a calendar field or dimensions needs a rebuild."""

    timezone: str = "UTC"
    day_start: str = "00:00"
    week_start: str = "monday"
    dimensions: tuple[str, ...] = ()
    rolling: tuple[str, ...] = ("24h", "7d")

    @cached_property
    def calendar(self) -> Calendar:
        return Calendar(self.timezone, self.day_start, self.week_start)

    def to_dict(self) -> dict[str, Any]:
        return {"timezone": self.timezone, "day_start": self.day_start,
                "week_start": self.week_start, "dimensions": list(self.dimensions),
                "rolling": list(self.rolling)}

    def updated(self, changes: Mapping[str, Any]) -> MetricConfig:
        """A copy with `changes` applied and checked; unknown or invalid fields raise."""
        for key in changes:
            if key not in FIELDS:
                raise ConfigError(f"unknown metric setting {key!r}; settings are "
                                  f"{', '.join(FIELDS)}", key)
        values = {k: v for k, v in changes.items() if v is not None}
        for key in ("timezone", "day_start", "week_start"):
            if key in values and not isinstance(values[key], str):
                raise ConfigError(f"{key} must be a string", key)
        for key in ("dimensions", "rolling"):
            if key in values:
                values[key] = _string_list(values[key], key)
        for dim in values.get("dimensions", ()):
            if not 1 <= len(dim) <= 64 or "\x00" in dim:
                raise ConfigError("dimension names must be 1-64 characters (no U+0000)",
                                  "dimensions")
        for text in values.get("rolling", ()):
            if not ROLLING_SPAN.fullmatch(text):
                raise ConfigError(f"rolling windows look like '24h' or '7d', got {text!r}",
                                  "rolling")
        if len(values.get("rolling", ())) > MAX_ROLLING:
            raise ConfigError(f"at most {MAX_ROLLING} rolling windows are kept hot per metric "
                              f"(got {len(values['rolling'])}); any other rolling window can "
                              "still be queried, it is computed per query", "rolling")
        new = replace(self, **values)
        try:
            new.calendar  # noqa: B018 - validates timezone, day_start, week_start
        except CalendarError as exc:
            raise ConfigError(str(exc), exc.setting) from None
        return new

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MetricConfig:
        return cls().updated(data)

    @classmethod
    def from_stored(cls, data: Mapping[str, Any]) -> MetricConfig:
        """A config as a log holds it (JSON). Equal configs come back as one shared object
        (it is immutable): 50,000 metrics on the default config parse and hold it once. A
        config stored before MAX_ROLLING keeps its first MAX_ROLLING rolling windows hot
        (the others are computed per query, like any rolling window)."""
        rolling = data.get("rolling")
        if isinstance(rolling, list) and len(rolling) > MAX_ROLLING:
            data = {**data, "rolling": list(dict.fromkeys(rolling))[:MAX_ROLLING]}
        return _stored(json.dumps(data, sort_keys=True))

    def calendar_changed(self, other: MetricConfig) -> list[str]:
        """Which calendar or dimension fields differ from `other`."""
        return [k for k in CALENDAR_FIELDS if getattr(self, k) != getattr(other, k)]


@lru_cache(maxsize=1024)
def _stored(text: str) -> MetricConfig:
    return MetricConfig.from_dict(json.loads(text))


def _string_list(value: Any, key: str) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{key} must be a list of strings", key)
    return tuple(dict.fromkeys(value))
