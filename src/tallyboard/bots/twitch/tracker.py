"""Which streams are watched, and each complete chatter poll as one presence snapshot.

The rules that keep the answers honest:
- Only a complete poll is a snapshot. A poll that failed, timed out, was cut off
  mid-pagination, or came back empty for a stream Helix says is live records nothing:
  the stream is marked stale with the reason and the next complete poll reconciles.
  (Writing it would make everyone leave and invent migrations.)
- A stream that goes offline, or leaves the watched list, is a real leave of everyone in
  its room (an empty snapshot at that moment). A stream added later starts clean.
- The room's occupants are read from tallyboard, not remembered here: after a restart
  the first complete poll continues every session it still lists, so a restart makes
  no phantom leave or join.
- Where Helix will not list a stream's chatters (the token is not its moderator: 403),
  Twitch chat is the source, polled the same way, but only while it knows the room whole
  (see irc.py); chat also brings the raids, kept as explicit edges.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import NotFound, TallyboardError
from .helix import AuthFailed, Helix, LiveStream, PollFailed
from .irc import TRUSTED, ChatMembership, Raid
from .raids import RaidLog
from .telemetry import TwitchMetrics

log = logging.getLogger("tallyboard.twitch")

TOP_REFRESH = 180.0  # seconds between refreshes of the "top N live streams" list
LIVE_REFRESH = 60.0  # seconds between checks of which listed streams are live
CONCURRENT_POLLS = 8  # polls in flight at once (each a chain of pages)
CHAT_SOON = ("irc_joining", "irc_disconnected")  # chat is (re)joining the room
CHAT_RETRY = 5.0  # seconds: the next poll of a room chat is joining
POLL_SLACK = 10.0  # seconds a poll may take between its start and its pages
RAID_WINDOW = 300.0  # seconds after a raid in which moves along it are what it explains
BIG_WRITE = 20_000  # a snapshot this big applies with other polls' pages held back
VIEWER_COUNT = "twitch_viewer_count"  # Helix's viewer_count at each live check, summed
VIEWER_CHECKS = "twitch_viewer_checks"  # live checks that saw the stream live (1 each)


class StreamList:
    """The explicitly listed streams, kept in a JSON file so a restart watches the same."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.logins: list[str] = []
        if path.exists():
            self.logins = list(json.loads(path.read_text(encoding="utf-8"))["streams"])

    def set(self, logins: Iterable[str]) -> None:
        self.logins = sorted({normal_login(x) for x in logins})
        self._save()

    def add(self, login: str) -> bool:
        login = normal_login(login)
        if login in self.logins:
            return False
        self.logins = sorted([*self.logins, login])
        self._save()
        return True

    def remove(self, login: str) -> bool:
        login = normal_login(login)
        if login not in self.logins:
            return False
        self.logins = [x for x in self.logins if x != login]
        self._save()
        return True

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        with tmp.open("w", encoding="utf-8") as f:
            json.dump({"streams": self.logins}, f)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(self.path)


def normal_login(login: str) -> str:
    """Twitch logins are lower case, 1-25 of [a-z0-9_]."""
    login = login.strip().lower()
    if not (1 <= len(login) <= 25 and login.replace("_", "").isascii()
            and login.replace("_", "").isalnum()):
        raise ValueError(f"not a Twitch login: {login!r}")
    return login


@dataclass
class Watch:
    """One watched stream's state, as /v1/twitch/streams shows it."""

    login: str
    user_id: str | None = None
    live: bool = False
    viewer_count: int | None = None
    listed: bool = False  # explicitly listed (else from the top N)
    last_poll: float | None = None  # start of the last complete poll
    due: float = 0.0
    chatters: int = 0
    moved: int = 0  # joins + leaves the last complete poll made
    stale: str | None = None  # why the last poll recorded nothing
    cycle_s: float | None = None  # between the last two complete polls
    source: str = "helix"  # "irc" once Helix refused to list its chatters (403)

    def to_dict(self) -> dict[str, Any]:
        return {"stream": self.login, "live": self.live, "listed": self.listed,
                "viewer_count": self.viewer_count, "chatters": self.chatters,
                "last_poll": self.last_poll, "stale": self.stale, "cycle_s": self.cycle_s,
                "source": self.source}


class Tracker:
    """Polls the watched streams through `helix` (or `chat`, where Helix refuses) and writes
    snapshots to `tally` (the embedded engine or a server: blocking calls, run in
    threads); raids heard in chat go to `raids`."""

    def __init__(self, helix: Helix, tally: Any, streams: StreamList, *, space: str,
                 interval: float, top: int = 0, game_ids: list[str] | None = None,
                 languages: list[str] | None = None, metrics: TwitchMetrics | None = None,
                 clock: Callable[[], float] = time.time, chat_url: str | None = None,
                 raids: RaidLog | None = None) -> None:
        self.helix, self.tally, self.streams = helix, tally, streams
        self.raids = raids or RaidLog(streams.path.with_name("twitch-raids.jsonl"))
        self.chat = None if chat_url is None else ChatMembership(
            chat_url, nick=lambda: helix.login, token=helix.token, on_raid=self._raided,
            on_state=lambda up: self.metrics.chat_up.set(int(up)))
        self.space, self.interval, self.top_n = space, interval, top
        self.game_ids, self.languages = game_ids or [], languages or []
        self.metrics = metrics or TwitchMetrics()
        self.clock = clock
        self.watches: dict[str, Watch] = {}
        self._top: list[str] = []
        self._next_top = self._next_live = 0.0
        self._wake = asyncio.Event()
        self._leaving: dict[str, float] = {}  # unwatched streams not yet emptied: since when
        self._changed = False  # the list changed since the last refresh
        self.behind = False
        self._big_writes = 0  # big snapshots applying now: the pages wait for `_calm`
        self._calm = asyncio.Event()
        self._calm.set()

    # -- the list -------------------------------------------------------------------------
    async def add(self, login: str) -> bool:
        added = self.streams.add(login)
        self._changed = True
        self._wake.set()
        return added

    async def remove(self, login: str) -> bool:
        removed = self.streams.remove(login)
        self._changed = True
        self._wake.set()
        return removed

    def state(self) -> list[dict[str, Any]]:
        return [w.to_dict() for w in sorted(self.watches.values(), key=lambda w: w.login)]

    # -- running --------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """`step` whenever a stream is due (or the list changed) until `stop` is set; chat
        runs beside it (unreachable chat is a warning and a metric, never a stop)."""
        chat = None if self.chat is None else asyncio.create_task(self.chat.run(stop))
        try:
            while not stop.is_set():
                self._wake.clear()  # before the step: a change during it wakes the next
                await self.step()
                await _first(stop, self._wake, self._sleep_s())
        finally:  # stopped, or a step failed: chat ends with the tracker either way
            if chat is not None:
                chat.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await chat

    def _raided(self, raid: Raid) -> None:
        try:
            if self.raids.add(raid):
                self.metrics.raids.inc()
        except OSError as exc:  # the disk, not the chat connection, failed
            log.error("could not keep the raid %s -> %s: %s", raid.source, raid.target, exc)

    async def raids_between(self, start: float | None, end: float | None,
                            stream: str | None = None) -> list[dict[str, Any]]:
        """The raids in ``[start, end)``, each with the moves along it (source to target)
        whose join came within RAID_WINDOW (or two polls, if longer) after it. A join is
        stamped with the start of the poll that saw it (in whole seconds), which may have
        begun up to an interval (and the poll's own time) before the raid, so the count
        starts that much earlier."""
        window = max(RAID_WINDOW, 2 * self.interval)
        out = []
        for r in self.raids.between(start, end, stream):
            moves = await self._ask(self.tally.migrations, source=r.source,
                                    target=r.target,
                                    start=math.floor(r.ts - self.interval - POLL_SLACK),
                                    end=r.ts + window)
            explained = sum(m["count"] for m in moves["migrations"])
            out.append({"from": r.source, "to": r.target, "ts": r.ts,
                        "viewers": r.viewers, "moved": explained})
        return out

    async def step(self) -> None:
        """Refresh the list if due, then poll every due live stream (CONCURRENT_POLLS at a
        time) and wait for them all."""
        try:
            await self.refresh()
        except Exception as exc:
            reason = exc.reason if isinstance(exc, PollFailed) else _reason(exc)
            log.warning("could not refresh the watched streams: %s", exc,
                        exc_info=not isinstance(exc, PollFailed | AuthFailed))
            self.metrics.failures.labels(reason=reason).inc()
            self._next_live = self.clock() + min(LIVE_REFRESH, self.interval)
        slots = asyncio.Semaphore(CONCURRENT_POLLS)

        async def one(w: Watch) -> None:
            async with slots:
                await self._poll(w)

        await asyncio.gather(*(one(w) for w in self._due()))

    def _sleep_s(self) -> float:
        now = self.clock()
        dues = [w.due for w in self.watches.values() if w.live]
        return max(0.05, min([self._next_live, *dues]) - now)

    def _due(self) -> list[Watch]:
        """Live streams due for a poll, the biggest movers first when the budget cannot
        cover them all at the interval (then also said in the log and /metrics)."""
        now = self.clock()
        due = [w for w in self.watches.values()
               if w.live and w.user_id and w.due <= now]
        due.sort(key=lambda w: (-w.moved, w.due))
        cost = sum(max(1, math.ceil(w.chatters / 1000)) for w in self.watches.values()
                   if w.live)
        per_s = self.helix.budget.limit / 60.0
        behind = cost / self.interval > per_s
        if behind != self.behind:
            (log.warning if behind else log.info)(
                "the Helix budget (%d points/min) %s the %d calls a %.0f s cycle of every "
                "stream needs%s", self.helix.budget.limit,
                "cannot cover" if behind else "covers again", cost, self.interval,
                ": polling the biggest movers first" if behind else "")
        self.behind = behind
        self.metrics.behind.set(int(behind))
        return due

    async def refresh(self) -> None:
        """Which streams to watch now, and which of them are live; a stream that went
        offline or left the list is left by everyone in it."""
        now = self.clock()
        if self.top_n and now >= self._next_top:
            top = await self.helix.top(self.top_n, self.game_ids, self.languages)
            self._top = [s.login for s in top]
            self._next_top = now + TOP_REFRESH
        if now < self._next_live and not self._changed:
            return
        self._changed = False  # a change from here on is seen at the next refresh
        wanted = list(dict.fromkeys([*self.streams.logins, *self._top]))
        live = await self.helix.live(wanted) if wanted else {}
        unknown = [x for x in wanted if x not in self.watches or not self.watches[x].user_id]
        ids = await self.helix.users(unknown) if unknown else {}
        for login in wanted:
            w = self.watches.setdefault(login, Watch(login))
            w.listed = login in self.streams.logins
            w.user_id = w.user_id or ids.get(login) or (live[login].user_id
                                                        if login in live else None)
            self._see(w, live.get(login))
        await self._sample(live, now)
        for login in [x for x in self.watches if x not in wanted]:
            del self.watches[login]
            self._leaving.setdefault(login, now)
            self.metrics.forget(login)
        self._next_live = now + min(LIVE_REFRESH, self.interval)
        self.metrics.watched.set(len(self.watches))
        if self.chat is not None:  # every watched stream: raids arrive in its chat
            self.chat.want(self.watches)
        for login, since in list(self._leaving.items()):  # kept until tallyboard took it
            if await self._empty(login, since, "no longer watched"):
                del self._leaving[login]
        for w in [w for w in self.watches.values() if not w.live]:
            await self._empty(w.login, now, "offline")

    def _see(self, w: Watch, stream: LiveStream | None) -> None:
        if stream is None:
            w.live, w.viewer_count = False, None
            return
        if not w.live:
            w.due = 0.0  # went live (or first seen): poll it now
        w.live, w.viewer_count = True, stream.viewer_count
        self.metrics.viewer_count.labels(stream=w.login).set(stream.viewer_count)

    async def _sample(self, live: dict[str, LiveStream], at: float) -> None:
        """Keep each live stream's Helix viewer_count of this check in tallyboard (member:
        the stream) beside a count of checks, so a bucket's mean is the two series' ratio;
        ids name the stream and second, so a retried check counts once. A refusal loses
        this sample only: polls go on."""
        ts = math.floor(at)
        events = [e for login, s in sorted(live.items()) for e in (
            {"metric": VIEWER_COUNT, "member": login, "value": s.viewer_count, "ts": ts,
             "id": f"twitch:viewers:{login}:{ts}"},
            {"metric": VIEWER_CHECKS, "member": login, "value": 1, "ts": ts,
             "id": f"twitch:checks:{login}:{ts}"})]
        if not events:
            return
        try:
            await self._ask(self.tally.record_many, events)
        except Exception as exc:  # the rest of the refresh (leaves of ended streams) goes on
            reason = exc.reason if isinstance(exc, PollFailed) else _reason(exc)
            log.warning("could not keep Helix's viewer counts of %d streams: %s",
                        len(live), exc, exc_info=not isinstance(exc, PollFailed))
            self.metrics.failures.labels(reason=reason).inc()

    async def viewers(self, stream: str, *, start: float, end: float | None,
                      step: str) -> list[dict[str, Any]]:
        """Per `step` bucket of ``[start, end)``: the chatters present (presence
        concurrency: peak in any one second, and the average), and Helix's own
        viewer_count as the mean of the live checks in the bucket (None without one).
        tallyboard's errors (a bad span, a server away) are raised as they come."""
        present = await asyncio.to_thread(self.tally.concurrency, room=stream, step=step,
                                          start=start, end=end, space=self.space)
        counts = await self._series(VIEWER_COUNT, stream, step, start, end)
        checks = await self._series(VIEWER_CHECKS, stream, step, start, end)
        if checks and set(checks) != {b.start for b in present}:
            # the viewer metrics' calendar is not the presence metric's (its timezone or
            # day start was changed): their sums over the presence buckets instead
            stops = [b.start for b in present[1:]] + [self.clock() if end is None else end]
            spans = [(max(start, b.start), stop) for b, stop in zip(present, stops,
                                                                      strict=True)]
            counts = {b.start: await self._sum(VIEWER_COUNT, stream, lo, hi)
                      for b, (lo, hi) in zip(present, spans, strict=True)}
            checks = {b.start: await self._sum(VIEWER_CHECKS, stream, lo, hi)
                      for b, (lo, hi) in zip(present, spans, strict=True)}
        return [{"start": b.start, "label": b.label, "peak": b.peak, "avg": b.avg,
                 "viewer_count": counts.get(b.start, 0) / checks[b.start]
                 if checks.get(b.start) else None, "checks": checks.get(b.start, 0)}
                for b in present]

    async def _series(self, metric: str, stream: str, step: str, start: float,
                      end: float | None) -> dict[int, int]:
        """The stream's series of `metric`, value by bucket start."""
        try:
            got = await asyncio.to_thread(self.tally.series, metric, stream, step=step,
                                          start=start, end=end, space=self.space)
        except NotFound:  # no live check has been kept yet
            return {}
        return {p.start: p.value for p in got}

    async def _sum(self, metric: str, stream: str, lo: float, hi: float) -> int:
        got: int = await asyncio.to_thread(self.tally.sum, metric, stream, start=lo, end=hi,
                                           space=self.space)
        return got

    async def _empty(self, room: str, ts: float, why: str) -> bool:
        """Everyone in `room` leaves at `ts` (the stream ended or is no longer watched);
        False if tallyboard could not take it now (tried again at the next refresh)."""
        try:
            present = await self._ask(self.tally.room, room)
            if present["members"]:
                log.info("%s is %s: %d viewers leave", room, why, len(present["members"]))
                await self._write(room, [], ts)
        except PollFailed as exc:
            log.warning("could not record that %s is %s (%s): tried again soon", room, why,
                        exc)
            self.metrics.failures.labels(reason=exc.reason).inc()
            return False
        return True

    async def _poll(self, w: Watch) -> None:
        started = self.clock()
        w.due = started + self.interval
        try:
            selves = self._selves()
            chatters = [c for c in await self._chatters(w) if c not in selves]
            if not chatters:
                raise PollFailed("empty", "a live stream with no chatters listed")
            before = {m["member"] for m in (await self._ask(
                self.tally.room, w.login))["members"]}
            await self._write(w.login, chatters, started)
        except Exception as exc:
            reason = exc.reason if isinstance(exc, PollFailed) else _reason(exc)
            self.metrics.failures.labels(reason=reason).inc()
            if reason in CHAT_SOON:  # chat will know the room in moments: ask again
                w.due = started + min(self.interval, CHAT_RETRY)
            self.metrics.polls.labels(result="failed").inc()
            if w.stale != reason:  # said once per spell, not at every retry
                log.warning("poll of %s recorded nothing (%s); the next complete poll "
                            "reconciles", w.login, exc,
                            exc_info=not isinstance(exc, PollFailed | AuthFailed))
            w.stale = reason
            return
        now_set = set(chatters)
        w.moved = len(now_set ^ before)
        w.cycle_s = None if w.last_poll is None else started - w.last_poll
        w.last_poll, w.chatters, w.stale = started, len(chatters), None
        self.metrics.polls.labels(result="ok").inc()
        self.metrics.chatters.labels(stream=w.login).set(len(chatters))
        if w.cycle_s is not None:
            self.metrics.cycle.labels(stream=w.login).set(w.cycle_s)

    async def _chatters(self, w: Watch) -> list[str]:
        """The stream's chatters from Helix, or from chat once Helix has refused them."""
        if w.source == "helix":
            assert w.user_id is not None
            try:
                return await self.helix.chatters(w.user_id, pause=self._calm.wait)
            except PollFailed as exc:
                if exc.reason not in ("http_403", "no_moderator") or self.chat is None:
                    raise
                log.info("Helix will not list %s's chatters (the token is not its "
                         "moderator's user token): reading them from chat", w.login)
                w.source = "irc"
        assert self.chat is not None
        got = self.chat.chatters(w.login)
        if got is None or (w.viewer_count or 0) >= TRUSTED:
            raise PollFailed(self.chat.why_unknown(w.login) if got is None
                             else "irc_over_limit")
        return got

    def _selves(self) -> set[str]:
        """The tracker's own logins: it is in every chat it joins, never a viewer."""
        return {x for x in (self.helix.login, self.chat and self.chat.me) if x}

    async def _ask(self, call: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        """A blocking call of tallyboard, in a thread; its refusal (a server away, busy,
        or a snapshot over the limit) is a PollFailed, so the stream goes stale and the
        next poll tries again, instead of the tracker stopping."""
        try:
            return await asyncio.to_thread(call, *args, space=self.space, **kw)
        except TallyboardError as exc:
            raise PollFailed(f"tallyboard_{exc.code}", exc.message) from exc

    async def _write(self, room: str, members: list[str], at: float) -> None:
        """One snapshot, its id naming the room, second and kind: a retried write counts
        once, and a stream ending in the second of its last poll is not taken for it.
        While a big one applies, the other polls fetch no page: their JSON decoding on the
        event loop would hold the GIL the apply needs (the cycle has time to spare)."""
        ts = math.floor(at)
        op = {"type": "snapshot", "room": room, "members": members, "ts": ts,
              "id": f"twitch:{room}:{ts}:{'poll' if members else 'end'}"}
        big = len(members) >= BIG_WRITE
        if big:  # the apply has the GIL to itself, not shared with eight polls' decoding
            self._big_writes += 1
            self._calm.clear()
        try:
            await self._ask(self.tally.presence, [op])
        finally:
            if big:
                self._big_writes -= 1
                if not self._big_writes:
                    self._calm.set()
        self.metrics.snapshots.inc()


def _reason(exc: Exception) -> str:
    """A short metric label for a failure that is not a PollFailed."""
    return "auth_failed" if isinstance(exc, AuthFailed) else "error"


async def _first(stop: asyncio.Event, wake: asyncio.Event, seconds: float) -> None:
    """Wait until `stop` or `wake` is set, or `seconds` pass."""
    waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wake.wait())]
    try:
        await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in waits:
            t.cancel()
