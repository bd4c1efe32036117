"""Discord workload: the bot's own time per voice update and /top's answer time, 5,000 in voice.

The real bot (`StatsBot`, unmodified discord.py) runs on an event loop of its own in a
thread, as `tallyboard discord` runs it, over the embedded engine (SQLite, durable) and
against the Discord stand-in on loopback. Everything is timed from outside the bot: its
`voice_update` histogram also keeps each observed value, the engine notes when each
presence write returned, and the stand-in notes when each interaction was sent and when
its answer arrived.
"""

from __future__ import annotations

import asyncio
import functools
import math
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from prometheus_client import Histogram

from ..bots.discord.bot import StatsBot
from ..bots.discord.telemetry import UPDATE_BUCKETS, BotMetrics
from ..bots.state import open_state
from ..calendar import Calendar
from ..core.results import Accepted
from ..engine import Tallyboard
from ..standins.discord_standin import DiscordStandIn, discord_py_pointed_at
from ..stores import log_from_url
from ..windows import Window
from .measure import Progress, latencies

T = TypeVar("T")
METRIC = "presence_seconds"  # the bot's default presence metric
MEMBERS = 5_000
CHANNELS = 50
RATE = 5.0  # voice-state updates per second: the load the target is stated at
STEADY_SECONDS = 60.0  # 300 updates: a p99 that is not just the slowest one or two
BURST_RATE = 200.0
BURST_UPDATES = 1_000
LEAVES = 0.2  # of the updates of members in voice; the rest move to another channel
TOP_CALLS = 50
STATS_CALLS = 20
WAIT = 60.0  # seconds to wait for the bot to catch up before the run counts as failed


class RecordingHistogram(Histogram):
    """A voice-update histogram also keeping every value observed (buckets are too coarse
    for a p99 against 2 ms)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"bench_{name}", "a voice-update histogram, recorded",
                         buckets=UPDATE_BUCKETS, registry=None)
        self.values: list[float] = []

    def observe(self, amount: float, exemplar: dict[str, str] | None = None) -> None:
        self.values.append(amount)
        super().observe(amount, exemplar)


class RecordingMetrics(BotMetrics):
    """The bot's metrics, with `voice_update` (its own time) and `voice_durable` (until
    durable) recording each value."""

    def __init__(self) -> None:
        super().__init__()
        self.voice_update = self.updates = RecordingHistogram("voice_update")
        self.voice_durable = self.durables = RecordingHistogram("voice_durable")


@dataclass(frozen=True)
class Write:
    """One presence call the bot made: when it started and returned, and whom it named."""

    started: float
    durable: float
    members: frozenset[str]
    snapshot: bool


class TimedTallyboard(Tallyboard):
    """The embedded engine, noting (monotonic) when each presence write was durable."""

    def __init__(self, path: Path) -> None:
        super().__init__(log_from_url(str(path)))
        self.writes: list[Write] = []

    def presence(self, ops: Iterable[Mapping[str, Any]], *,
                 space: str = "default") -> Accepted:
        listed = list(ops)
        started = time.monotonic()
        accepted = super().presence(listed, space=space)
        durable = time.monotonic()
        members = {op["member"] for op in listed if "member" in op}
        self.writes.append(Write(started, durable, frozenset(members),
                                 any(op["type"] == "snapshot" for op in listed)))
        return accepted


class BenchBot(StatsBot):
    """The bot, noting when discord.py tells it a guild is available (its reconcile starts)."""

    available_at = 0.0

    def dispatch(self, event_name: str, /, *args: Any, **kwargs: Any) -> None:
        if event_name == "guild_available":
            self.available_at = time.monotonic()
        super().dispatch(event_name, *args, **kwargs)


class BotThread:
    """A bot on an event loop of its own in a thread; `run` reaches into that loop."""

    def __init__(self, bot: StatsBot, token: str) -> None:
        self.bot = bot
        self._token = token
        self._loop: Future[asyncio.AbstractEventLoop] = Future()
        self._ended: Future[None] = Future()
        self._thread = threading.Thread(target=self._main, name="discord-bot", daemon=True)

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
            self._ended.set_result(None)
        except BaseException as exc:
            self._ended.set_exception(exc)

    async def _serve(self) -> None:
        self._loop.set_result(asyncio.get_running_loop())
        async with self.bot:
            await self.bot.start(self._token)

    def start(self) -> None:
        self._thread.start()

    def wait_until(self, predicate: Callable[[], T | None], what: str) -> T:
        """Poll `predicate` until truthy; the bot's own error if it stopped meanwhile."""
        deadline = time.monotonic() + WAIT
        while not (value := predicate()):
            if self._ended.done():
                self._ended.result()
                raise RuntimeError(f"the bot stopped before {what}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"not after {WAIT:g} s: {what}")
            time.sleep(0.005)
        return value

    def run(self, coroutine: Callable[[], Coroutine[Any, Any, T]]) -> T:
        loop = self._loop.result(timeout=10)
        return asyncio.run_coroutine_threadsafe(coroutine(), loop).result(timeout=WAIT)

    def stop(self) -> None:
        """Close the bot (it writes what it queued) and join its thread."""
        if self._thread.is_alive() and self._loop.done():
            self.run(self.bot.close)
        self._thread.join(timeout=WAIT)
        self._ended.result(timeout=0)


class BareCommits:
    """The floor under a durable presence write on this machine: one row committed alone
    in SQLite with the engine's settings (WAL, synchronous=FULL), timed."""

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("CREATE TABLE rows (at REAL)")
        self._db.commit()
        self.seconds: list[float] = []

    def commit(self) -> None:
        started = time.perf_counter()
        self._db.execute("INSERT INTO rows VALUES (?)", (started,))
        self._db.commit()
        self.seconds.append(time.perf_counter() - started)

    def close(self) -> None:
        self._db.close()


@dataclass(frozen=True)
class Sent:
    """One voice-state update the stand-in was asked to send."""

    member: str
    channel: str | None
    mono: float


class Guild:
    """The stand-in's guild: members in voice channels, and where each one is now."""

    def __init__(self, standin: DiscordStandIn, members: int, channels: int,
                 progress: Progress) -> None:
        self.standin = standin
        self.progress = progress
        self.id = standin.add_guild("Tally Town")
        self.text = standin.add_text_channel(self.id, "general")
        self.channels = [standin.add_voice_channel(self.id, f"voice {i}")
                         for i in range(channels)]
        self.members: list[str] = []
        self.where: dict[str, str | None] = {}
        for i in range(members):
            user = standin.add_user(f"member{i}")
            standin.add_member(self.id, user)
            channel = self.channels[i % channels]
            standin.set_voice_state(self.id, user, channel)
            self.members.append(user)
            self.where[user] = channel
            if i % 500 == 499 or i == members - 1:
                progress("discord: members in voice", i + 1, members)

    def updates(self, rnd: random.Random, count: int) -> list[tuple[str, str | None]]:
        """`count` updates of distinct members (so none is coalesced with another): a join
        for one out of voice, else a leave or a move to another channel."""
        planned: list[tuple[str, str | None]] = []
        for member in rnd.sample(self.members, count):
            now = self.where[member]
            if now is None:
                planned.append((member, rnd.choice(self.channels)))
            elif rnd.random() < LEAVES:
                planned.append((member, None))
            else:
                planned.append((member, rnd.choice([c for c in self.channels if c != now])))
        return planned

    def send(self, planned: list[tuple[str, str | None]], rate: float,
             between: Callable[[], None] | None = None) -> list[Sent]:
        """Send the updates at `rate` per second on an absolute schedule; `between`, if
        given, runs halfway between one update and the next."""
        sent: list[Sent] = []
        start = time.monotonic()
        what = f"discord: voice updates at {rate:g}/s"
        for i, (member, channel) in enumerate(planned):
            if i % 10 == 0:  # as long after the last update as can be: the bot is idle
                self.progress(what, i, len(planned))
            time.sleep(max(0.0, start + i / rate - time.monotonic()))
            mono = time.monotonic()
            self.standin.set_voice_state(self.id, member, channel)
            self.where[member] = channel
            sent.append(Sent(member, channel, mono))
            if between is not None:
                time.sleep(max(0.0, start + (i + 0.5) / rate - time.monotonic()))
                between()
        self.progress(what, len(planned), len(planned))
        return sent

    def in_voice(self) -> dict[str, set[str]]:
        """Who is in each voice channel now, as the stand-in has it."""
        rooms: dict[str, set[str]] = {c: set() for c in self.channels}
        for member, channel in self.where.items():
            if channel is not None:
                rooms[channel].add(member)
        return rooms


def run_discord(tmp: Path, scale: float, progress: Progress) -> dict[str, Any]:
    """Reconcile of everyone in voice, voice updates at 5/s and in a burst, /top and /stats."""
    rnd = random.Random(13)
    members = max(50, int(MEMBERS * scale))
    channels = max(2, min(CHANNELS, members // 100))
    steady = max(10, int(RATE * STEADY_SECONDS * scale))
    burst = min(members, max(20, int(BURST_UPDATES * scale)))
    out: dict[str, Any] = {"members": members, "channels": channels}
    tb = TimedTallyboard(tmp / "data")
    state = open_state(str(tmp / "data"))
    metrics = RecordingMetrics()
    floor = BareCommits(tmp / "floor.sqlite3")
    try:
        with DiscordStandIn(message_rate=None) as standin, \
                discord_py_pointed_at(standin.api_url, standin.gateway_url):
            guild = Guild(standin, members, channels, progress)
            bot = BenchBot(tb, state, metrics)
            running = BotThread(bot, standin.token)
            running.start()
            try:
                out["reconcile_seconds"] = _reconciled(running, bot, tb, guild)
                progress("discord: reconcile", 1, 1)
                out["steady"] = _voice_run(running, guild, tb, metrics, rnd, steady, RATE,
                                           floor.commit)
                out["steady"]["bare_commit"] = _spread(floor.seconds)
                out["burst"] = _voice_run(running, guild, tb, metrics, rnd, burst, BURST_RATE)
                caller = guild.members[0]
                out["top"] = _commands(running, guild, caller, "top", {"window": "day", "n": 10},
                                       max(5, int(TOP_CALLS * scale)))
                out["stats"] = _commands(running, guild, caller, "stats", {},
                                         max(3, int(STATS_CALLS * scale)))
                progress("discord: commands", 1, 1)
            finally:
                running.stop()
        out["top_query"] = _top_query(tb, guild, max(20, int(200 * scale)))
        progress("discord: /top query against the baseline", 1, 1)
    finally:
        tb.close()
        state.close()
        floor.close()
    return out


def _reconciled(running: BotThread, bot: BenchBot, tb: TimedTallyboard, guild: Guild) -> float:
    """Seconds from the guild becoming available to the bot to its snapshots being durable."""
    write = running.wait_until(lambda: next((w for w in tb.writes if w.snapshot), None),
                               "the bot reconciled the guild")
    expected = guild.in_voice()
    running.wait_until(lambda: _rooms(tb, guild) == expected, "every member counted present")
    return write.durable - bot.available_at


def _rooms(tb: Tallyboard, guild: Guild) -> dict[str, set[str]]:
    return {c: {m["member"] for m in tb.room(c, space=guild.id)["members"]}
            for c in guild.channels}


def _voice_run(running: BotThread, guild: Guild, tb: TimedTallyboard,
               metrics: RecordingMetrics, rnd: random.Random, count: int, rate: float,
               between: Callable[[], None] | None = None) -> dict[str, Any]:
    """`count` updates at `rate`/s; the bot's own time per update and its time until
    durable (its histograms' raw values), the durable writes, and the time from the
    stand-in's send to the presence write returning."""
    seen, written = len(metrics.updates.values), len(tb.writes)
    durable_seen = len(metrics.durables.values)
    started = time.monotonic()
    sent = guild.send(guild.updates(rnd, count), rate, between)
    seconds = time.monotonic() - started
    expected = guild.in_voice()
    running.wait_until(lambda: len(metrics.updates.values) >= seen + count
                       and _rooms(tb, guild) == expected, f"{count} voice updates applied")
    own = metrics.updates.values[seen:seen + count]
    writes = tb.writes[written:]
    return {"rate": rate, "updates": count, "seconds": seconds,
            "own": _spread(own),
            "until_durable": _spread(metrics.durables.values[durable_seen:durable_seen + count]),
            "write": _spread([w.durable - w.started for w in writes]),
            "writes": len(writes),
            "end_to_end": _spread([_durable(writes, s) - s.mono for s in sent])}


def _durable(writes: list[Write], sent: Sent) -> float:
    """When the first write after `sent` that names its member returned."""
    return next(w.durable for w in writes if w.durable >= sent.mono and sent.member in w.members)


def _spread(seconds: list[float]) -> dict[str, float]:
    times = np.array(seconds) * 1e3
    return {"p50_ms": float(np.percentile(times, 50)), "p99_ms": float(np.percentile(times, 99)),
            "max_ms": float(times.max()), "count": len(seconds)}


def _commands(running: BotThread, guild: Guild, caller: str, name: str,
              options: dict[str, Any], count: int) -> dict[str, Any]:
    """`count` slash commands one after another: from the stand-in sending the interaction
    to the bot's answer arriving at the stand-in."""
    standin = guild.standin
    took: list[float] = []
    for _ in range(count):
        interaction = standin.run_slash_command(guild.text, caller, name, options)
        first = running.wait_until(functools.partial(standin.interaction_responses, interaction),
                                   f"/{name} answered")[0]
        if first.json.get("type") != 4 or not first.json["data"].get("embeds"):
            raise RuntimeError(f"/{name} was not answered with an embed: {first.json}")
        took.append(first.mono - standin.interaction(interaction).mono)
    return _spread(took)


def _top_query(tb: Tallyboard, guild: Guild, count: int) -> dict[str, Any]:
    """/top's question in-process (today's top 10 as of now, as the bot asks it), against a
    bot that keeps every member's sessions and scans them all on each /top; both answers
    are checked equal first, as of a fixed instant and as of now."""
    day = Window.parse("day")
    start, _ = day.span(time.time(), Calendar("UTC"))
    assert start is not None
    lo = int(start)
    sessions = {m: [(s["start"], s["end"]) for s in tb.sessions(m, start=lo, space=guild.id)]
                for m in guild.members}

    def ours(at: int | None = None) -> list[tuple[str, int]]:
        board = tb.leaderboard(METRIC, window="day", n=10, at=at, space=guild.id)
        return [(e.member, e.score) for e in board.entries]

    def theirs() -> list[tuple[str, int]]:
        return seed_top(sessions, lo, math.ceil(time.time()), 10)

    at = math.ceil(time.time())
    if ours(at) != seed_top(sessions, lo, at, 10):
        raise AssertionError("/top's board as of a fixed instant disagrees with the baseline")
    while True:  # the hot board, as of now: compare within one second
        second = math.ceil(time.time())
        now, scanned = ours(), seed_top(sessions, lo, second, 10)
        if math.ceil(time.time()) == second:
            break
    if now != scanned:
        raise AssertionError("/top's board disagrees with the baseline's scan")
    return {"ours": latencies(lambda i: ours(), count),
            "baseline": latencies(lambda i: theirs(), max(5, count // 10))}


def seed_top(sessions: Mapping[str, list[tuple[int, int | None]]], start: int, end: int,
             n: int) -> list[tuple[str, int]]:
    """Top `n` by time in voice within [start, end), by scanning every member's sessions
    (open ones count to `end`); ties by member."""
    totals = []
    for member, spans in sessions.items():
        total = 0
        for lo, hi in spans:
            total += max(0, min(end if hi is None else hi, end) - max(lo, start))
        if total:
            totals.append((member, total))
    totals.sort(key=lambda e: (-e[1], e[0]))
    return totals[:n]
