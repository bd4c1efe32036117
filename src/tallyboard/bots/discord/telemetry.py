"""The Discord bot's Prometheus metrics (docs/grafana/discord-bot.json charts them)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

COUNT_BUCKETS = (1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 9999)
LATENESS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
UPDATE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.1, 1)
OUTCOMES = ("ok", "invalid", "wrong", "denied", "error")


class BotMetrics:
    """Counters, gauges and histograms of one bot, in `registry` (the API's, when the bot
    runs beside the engine, so one /metrics shows both)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry or CollectorRegistry()
        self.commands = Counter(
            "tallyboard_discord_commands", "Commands by name and outcome (ok, invalid, "
            "wrong, denied, error)", ["command", "outcome"], registry=r)
        self.invalid = Counter(
            "tallyboard_discord_invalid_commands", "Commands that could not be understood "
            "(unknown, or a bad argument such as `count to 0`)", registry=r)
        self.wrong = Counter(
            "tallyboard_discord_wrong_commands", "Commands that made no sense at the time "
            "(`stop` with no countdown, `count to` while one runs)", registry=r)
        self.cancelled = Counter(
            "tallyboard_discord_countdowns_cancelled", "Countdowns ended by `stop`",
            registry=r)
        self.requested = Histogram(
            "tallyboard_discord_countdown_target", "The n of each accepted `count to n`",
            buckets=COUNT_BUCKETS, registry=r)
        self.lateness = Histogram(
            "tallyboard_discord_tick_lateness_seconds", "How long after its due time each "
            "countdown tick was handed to Discord", buckets=LATENESS_BUCKETS, registry=r)
        self.voice_update = Histogram(
            "tallyboard_discord_voice_update_seconds", "The bot's own time per voice-state "
            "update: from the gateway event to its presence being durable, less the "
            "durable write itself", buckets=UPDATE_BUCKETS, registry=r)
        self.voice_durable = Histogram(
            "tallyboard_discord_voice_durable_seconds", "From a voice-state update's "
            "gateway event to its presence being durable (the bot's time and the write's)",
            buckets=UPDATE_BUCKETS, registry=r)
        self.reconnects = Counter(
            "tallyboard_discord_gateway_reconnects", "Gateway connections after the first "
            "(resumed or identified again)", registry=r)
        self.errors = Counter("tallyboard_discord_errors", "Errors kept in the bot state, "
                              "by kind (command, general)", ["kind"], registry=r)
        for kind in ("command", "general"):
            self.errors.labels(kind)
        self._sessions = Gauge("tallyboard_discord_voice_sessions_open",
                               "Members the bot counts as present in tracked voice channels",
                               registry=r)
        self._running = Gauge("tallyboard_discord_countdowns_running",
                              "Countdowns running now", registry=r)

    def track(self, sessions: Callable[[], float], running: Callable[[], float]) -> None:
        """Read the two gauges from the bot's own state at scrape time."""
        self._sessions.set_function(sessions)
        self._running.set_function(running)

    def command(self, name: str, outcome: str) -> None:
        self.commands.labels(name, outcome).inc()
        if outcome == "invalid":
            self.invalid.inc()
        elif outcome == "wrong":
            self.wrong.inc()
