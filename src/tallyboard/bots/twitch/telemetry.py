"""The Twitch tracker's Prometheus metrics, in the API's registry when it runs beside the
engine (one /metrics shows both)."""

from __future__ import annotations

import contextlib

from prometheus_client import CollectorRegistry, Counter, Gauge


class TwitchMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry or CollectorRegistry()
        self.polls = Counter("tallyboard_twitch_polls", "Chatter polls by result (ok: a "
                             "snapshot was written; failed: nothing was)", ["result"],
                             registry=r)
        self.failures = Counter("tallyboard_twitch_poll_failures", "Polls and list refreshes "
                                "that recorded nothing, by reason (timeout, unreachable, "
                                "http_5xx, empty, no_moderator, irc_*, tallyboard_*, ...)",
                                ["reason"], registry=r)
        self.rate_waits = Counter("tallyboard_twitch_rate_limit_waits", "Times a Helix call "
                                  "waited for the token's rate budget (429 or none left)",
                                  registry=r)
        self.rate_wait_seconds = Counter("tallyboard_twitch_rate_limit_wait_seconds",
                                         "Seconds spent waiting for the rate budget",
                                         registry=r)
        self.cycle = Gauge("tallyboard_twitch_cycle_seconds", "Seconds between a stream's "
                           "last two complete polls", ["stream"], registry=r)
        self.chatters = Gauge("tallyboard_twitch_chatters", "Chatters in a stream's last "
                              "complete poll", ["stream"], registry=r)
        self.viewer_count = Gauge("tallyboard_twitch_viewer_count", "Helix's own "
                                  "viewer_count of a live stream", ["stream"], registry=r)
        self.snapshots = Counter("tallyboard_twitch_snapshots", "Presence snapshots written "
                                 "(complete polls, and empty ones for streams that ended)",
                                 registry=r)
        self.watched = Gauge("tallyboard_twitch_streams", "Streams watched now", registry=r)
        self.chat_up = Gauge("tallyboard_twitch_chat_connected", "1 while connected to "
                             "Twitch chat (IRC)", registry=r)
        self.raids = Counter("tallyboard_twitch_raids", "Raids heard in Twitch chat and kept",
                             registry=r)
        self.behind = Gauge("tallyboard_twitch_behind", "1 while the rate budget cannot "
                            "poll every live stream at the interval", registry=r)

    def forget(self, stream: str) -> None:
        """A stream no longer watched leaves the per-stream gauges (with --top, the
        streams come and go: their last values would otherwise stay forever)."""
        for gauge in (self.cycle, self.chatters, self.viewer_count):
            with contextlib.suppress(KeyError):
                gauge.remove(stream)

    def waited(self, seconds: float) -> None:
        self.rate_waits.inc()
        self.rate_wait_seconds.inc(seconds)
