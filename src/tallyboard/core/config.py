"""A metric's settings: its calendar, declared dimensions and which rolling windows stay hot."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

from ..calendar import Calendar, CalendarError

_ROLLING = re.compile(r"^\d{1,9}[smhd]$")
CALENDAR_FIELDS = ("timezone", "day_start", "week_start", "dimensions")
FIELDS = (*CALENDAR_FIELDS, "rolling")


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
            if not _ROLLING.match(text) or int(text[:-1]) == 0:
                raise ConfigError(f"rolling windows look like '24h' or '7d', got {text!r}",
                                  "rolling")
        new = replace(self, **values)
        try:
            new.calendar  # noqa: B018 - validates timezone, day_start, week_start
        except CalendarError as exc:
            raise ConfigError(str(exc), exc.setting) from None
        return new

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MetricConfig:
        return cls().updated(data)

    def calendar_changed(self, other: MetricConfig) -> list[str]:
        """Which calendar or dimension fields differ from `other`."""
        return [k for k in CALENDAR_FIELDS if getattr(self, k) != getattr(other, k)]


def _string_list(value: Any, key: str) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{key} must be a list of strings", key)
    return tuple(dict.fromkeys(value))
