"""The Twitch tracker against the Helix stand-in, with a clock the test moves: every
answer is read back from tallyboard (migrations, sessions, rooms), not from the tracker."""

from __future__ import annotations

import asyncio
import email.utils
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import tallyboard
from support import ServerProcess, free_port
from tallyboard.bots.twitch.helix import Helix, RateBudget
from tallyboard.bots.twitch.irc import Raid, parse
from tallyboard.bots.twitch.raids import RaidLog
from tallyboard.bots.twitch.tracker import StreamList, Tracker
from tallyboard.standins.twitch_helix import HelixStandIn
from tallyboard.standins.twitch_irc import TmiStandIn

T0 = 1_780_000_000  # the first poll's second
SPACE = "twitch"


class Clock:
    def __init__(self, t0: float = T0) -> None:
        self.t = float(t0)

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def helix() -> Iterator[HelixStandIn]:
    with HelixStandIn() as standin:
        yield standin


@pytest.fixture
def tmi() -> Iterator[TmiStandIn]:
    with TmiStandIn(batch_s=0.1) as standin:
        yield standin


class World:
    """A tracker, its engine and the stand-in, driven one step at a time."""

    def __init__(self, standin: HelixStandIn, tmp: Path, *, interval: float = 60,
                 token: str | None = None, refresh: str | None = None,
                 chat: TmiStandIn | None = None, t0: float = T0, app: bool = False) -> None:
        self.standin, self.clock = standin, Clock(t0)
        self.tb = tallyboard.open("memory://", clock=self.clock)
        if token is None and not app:  # app: no token, so client credentials at start
            token, refresh = standin.user_token()
        self.client = Helix(standin.helix_url, standin.auth_url, standin.client_id, token,
                            refresh, standin.client_secret)
        self.streams = StreamList(tmp / "twitch-streams.json")
        self.tracker = Tracker(self.client, self.tb, self.streams, space=SPACE,
                               interval=interval, clock=self.clock,
                               chat_url=None if chat is None else chat.url)

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def __enter__(self) -> World:
        self.loop = asyncio.new_event_loop()
        self.run(self.client.start())
        self.stop = asyncio.Event()
        self.chat = None if self.tracker.chat is None else \
            self.loop.create_task(self.tracker.chat.run(self.stop))
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        if self.chat is not None:
            self.run(self.chat)
        self.run(self.client.close())
        self.loop.close()
        self.tb.close()

    def settle(self, check: Any, timeout: float = 10.0) -> None:
        """Let the loop run (chat reads its lines) until `check()` holds."""
        deadline = time.monotonic() + timeout
        while not check():
            assert time.monotonic() < deadline, "not within the timeout"
            self.run(asyncio.sleep(0.02))

    def step(self, advance: float = 60) -> None:
        """One step of the tracker, then the clock moves on."""
        self.run(self.tracker.step())
        self.clock.t += advance

    def migrations(self, **kw: Any) -> list[tuple[str, str, int]]:
        got = self.tb.migrations(space=SPACE, **kw)["migrations"]
        return [(m["from"], m["to"], m["count"]) for m in got]

    def present(self, room: str) -> set[str]:
        return {m["member"] for m in self.tb.room(room, space=SPACE)["members"]}


def test_viewers_moving_between_streams_are_migrations_at_the_poll_that_saw_them(
        helix: HelixStandIn, tmp_path: Path) -> None:
    helix.go_live("alpha", ["ann", "bob", "cat"])
    helix.go_live("beta", ["dan"])
    with World(helix, tmp_path) as w:
        w.streams.set(["alpha", "beta"])
        w.step()  # T0: first polls
        assert w.present("alpha") == {"ann", "bob", "cat"} and w.present("beta") == {"dan"}
        helix.set_viewers("alpha", ["cat"])
        helix.set_viewers("beta", ["dan", "ann", "bob"])
        w.step()  # T0 + 60
        assert w.migrations() == [("alpha", "beta", 2)]
        moves = w.tb.migrations(space=SPACE, member="ann")["moves"]
        assert [(m["from"], m["to"], m["ts"]) for m in moves] == [("alpha", "beta", T0 + 60)]
        sessions = w.tb.sessions("ann", space=SPACE)
        assert [(s["room"], s["start"], s["end"]) for s in sessions] == [
            ("alpha", T0, T0 + 60), ("beta", T0 + 60, None)]


@pytest.mark.parametrize("fault", ["cut", "500", "empty", "timeout_like"])
def test_a_poll_that_did_not_complete_records_no_movement(
        helix: HelixStandIn, tmp_path: Path, fault: str) -> None:
    viewers = [f"v{i}" for i in range(2500)]  # three pages
    helix.go_live("alpha", viewers)
    with World(helix, tmp_path) as w:
        w.streams.set(["alpha"])
        w.step()
        assert len(w.present("alpha")) == 2500
        if fault == "cut":
            helix.cut_after("alpha", 1)
        elif fault == "500":
            helix.fail("/helix/chat/chatters", 500)
        elif fault == "empty":
            helix.set_viewers("alpha", [])
        else:
            helix.fail("/helix/chat/chatters", 503)
        w.step()
        assert len(w.present("alpha")) == 2500, "a failed poll made people leave"
        assert w.tracker.watches["alpha"].stale is not None
        assert w.tb.sessions("v0", space=SPACE)[0]["end"] is None
        if fault == "empty":
            helix.set_viewers("alpha", viewers)
        w.step()  # the next complete poll reconciles, and nobody ever left
        assert w.tracker.watches["alpha"].stale is None
        assert [s["start"] for s in w.tb.sessions("v2499", space=SPACE)] == [T0]


def test_a_stream_going_offline_is_a_real_leave_and_starts_clean_when_back(
        helix: HelixStandIn, tmp_path: Path) -> None:
    helix.go_live("alpha", ["ann", "bob"])
    helix.go_live("beta", ["cat"])
    with World(helix, tmp_path) as w:
        w.streams.set(["alpha", "beta"])
        w.step()
        helix.go_offline("alpha")
        helix.set_viewers("beta", ["cat", "ann"])
        w.step()
        assert w.present("alpha") == set()
        assert [(s["room"], s["end"]) for s in w.tb.sessions("bob", space=SPACE)] == [
            ("alpha", T0 + 60)]
        assert w.migrations() == [("alpha", "beta", 1)]  # the raid-like exodus
        helix.go_live("alpha", ["bob"])
        w.step()
        assert w.present("alpha") == {"bob"}
        assert [s["start"] for s in w.tb.sessions("bob", space=SPACE)] == [T0, T0 + 120]


def test_viewers_over_time_put_helix_viewer_count_beside_the_chatters(
        helix: HelixStandIn, tmp_path: Path) -> None:
    """Each live check keeps Helix's viewer_count; a bucket's is the mean of its checks,
    beside the chatters present (peak and average) as presence counts them."""
    helix.go_live("alpha", ["ann", "bob"], viewer_count=10)
    with World(helix, tmp_path) as w:
        w.streams.set(["alpha"])
        w.step()  # T0
        helix.go_live("alpha", ["ann", "bob", "cat"], viewer_count=21)
        w.run(w.tracker.step())  # T0 + 60
        w.tracker._changed = True  # a second check in the same second counts once
        w.run(w.tracker.refresh())
        w.clock.t += 60
        helix.go_offline("alpha")
        w.step()  # T0 + 120: offline, everyone leaves, no check kept
        w.clock.t = T0 + 180

        hour = w.run(w.tracker.viewers("alpha", start=T0, end=T0 + 180, step="hour"))
        assert [(p["peak"], p["viewer_count"], p["checks"]) for p in hour] == [(3, 15.5, 2)]
        assert hour[0]["avg"] == (2 * 60 + 3 * 60) / 180  # chatter-seconds over seconds
        minutes = w.run(w.tracker.viewers("alpha", start=T0, end=T0 + 180, step="minute"))
        seen = [(p["viewer_count"], p["checks"]) for p in minutes if p["checks"]]
        assert seen == [(10, 1), (21, 1)]
        assert all(p["viewer_count"] is None for p in minutes if not p["checks"])
        assert w.run(w.tracker.viewers("beta", start=T0, end=T0 + 60, step="hour"))[0][
            "viewer_count"] is None  # never checked: no samples, not an error
        # the viewer metrics on another calendar than presence's (+5:30: their days start
        # at 18:30 UTC): the counts still follow the presence buckets (UTC days)
        for metric in ("twitch_viewer_count", "twitch_viewer_checks"):
            w.tb.set_metric(metric, {"timezone": "Asia/Kolkata"}, space=SPACE, rebuild=True)
        theirs = w.tb.series("twitch_viewer_count", "alpha", step="day", start=T0,
                             end=T0 + 180, space=SPACE)
        assert theirs[0].start % 86_400 == 66_600  # 18:30 UTC: the fallback is needed
        shifted = w.run(w.tracker.viewers("alpha", start=T0 - 7200, end=T0 + 180,
                                          step="day"))
        assert [p["start"] % 86_400 for p in shifted] == [0] * len(shifted)
        assert [(p["viewer_count"], p["checks"]) for p in shifted if p["checks"]] == [
            (15.5, 2)]


def test_streams_added_and_removed_while_running(helix: HelixStandIn, tmp_path: Path) -> None:
    helix.go_live("alpha", ["ann"])
    helix.go_live("beta", ["bob"])
    with World(helix, tmp_path) as w:
        w.streams.set(["alpha"])
        w.step()
        assert w.run(w.tracker.add("Beta")) is True
        w.step()
        assert w.present("beta") == {"bob"}
        assert w.run(w.tracker.remove("alpha")) is True
        w.step()
        assert w.present("alpha") == set()
        assert "alpha" not in w.tracker.watches
        assert StreamList(tmp_path / "twitch-streams.json").logins == ["beta"]


def test_429_is_waited_out_and_an_expired_token_is_refreshed(
        helix: HelixStandIn, tmp_path: Path) -> None:
    helix.go_live("alpha", ["ann"])
    with World(helix, tmp_path) as w:
        w.streams.set(["alpha"])
        w.step()
        for token in helix.tokens():
            helix.expire(token)
        helix.set_viewers("alpha", ["ann", "bob"])
        w.step()
        assert w.present("alpha") == {"ann", "bob"}
        assert helix.statuses()[401] >= 1
        helix.fail("/helix/chat/chatters", 429)
        helix.set_viewers("alpha", ["bob"])
        w.step()
        assert w.present("alpha") == {"bob"}
        assert w.client.budget.waits >= 1


def _limits(remaining: int, reset: float, date: float | None = None) -> httpx.Headers:
    h = {"Ratelimit-Limit": "800", "Ratelimit-Remaining": str(remaining),
         "Ratelimit-Reset": str(int(reset))}
    if date is not None:
        h["Date"] = email.utils.formatdate(date, usegmt=True)
    return httpx.Headers(h)


def test_an_answer_to_an_earlier_call_never_raises_the_budget() -> None:
    """Two calls in flight; the later one's answer (Remaining 100) arrives first, then the
    earlier one's (Remaining 101): the budget keeps 100, not the stale 101."""
    budget, now = RateBudget(), 1_000.0
    budget.read(_limits(100, now + 60), now)
    budget.read(_limits(101, now + 60), now)
    assert budget.remaining == 100
    budget.read(_limits(99, now + 60), now + 0.5)
    assert budget.remaining == 99  # a fresh, lower answer is taken
    budget.read(_limits(800, now + 120), now + 62)
    assert budget.remaining == 800  # after the reset, a full bucket is believed


def test_a_clock_ahead_of_twitch_moves_the_reset_later() -> None:
    """Our clock is 30 s ahead of Twitch's: its reset comes 30 s later on ours, so the
    bucket is not counted full before Twitch refills it."""
    budget, ours = RateBudget(), 1_000_000.0
    twitch = ours - 30
    budget.read(_limits(0, twitch + 60, date=twitch), ours)
    assert budget.reset == pytest.approx(ours + 60, abs=1)
    assert budget.spendable(ours + 45) < 800  # by Twitch's clock its reset is 15 s away
    assert budget.spendable(ours + 62) == 800


def test_the_rate_budget_is_never_exceeded(tmp_path: Path) -> None:
    with HelixStandIn(rate_limit=30, refill_seconds=6.0) as helix:
        for i in range(12):
            helix.go_live(f"s{i}", [f"u{i}_{j}" for j in range(3000)])  # 3 pages each
        with World(helix, tmp_path, interval=1) as w:
            w.streams.set([f"s{i}" for i in range(12)])
            w.step(advance=1)
            assert all(len(w.present(f"s{i}")) == 3000 for i in range(12))
            # more calls than one bucket holds, so the budget was what paced them (whether a
            # slow machine let it refill on its own or the tracker waited), and Helix refused
            # at most the one call that taught the budget
            assert len(helix.calls_to("/helix/chat/chatters")) > 30
            assert helix.statuses()[429] <= 1


# ---- a real `tallyboard twitch` process ------------------------------------------------------
def _wait(check: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s")
        time.sleep(0.1)


def _tracker(helix: HelixStandIn, data: Path, *extra: str,
             chat: str | None = None) -> ServerProcess:
    """A `tallyboard twitch` process; with no `chat`, its chat URL is a port nobody
    listens on (chat unreachable: a warning, never a failure)."""
    token, refresh = helix.user_token()
    env = {"TALLYBOARD_TWITCH__CLIENT_ID": helix.client_id,
           "TALLYBOARD_TWITCH__TOKEN": token, "TALLYBOARD_TWITCH__REFRESH_TOKEN": refresh,
           "TALLYBOARD_TWITCH__CLIENT_SECRET": helix.client_secret,
           "TALLYBOARD_TWITCH__HELIX_URL": helix.helix_url,
           "TALLYBOARD_TWITCH__AUTH_URL": helix.auth_url,
           "TALLYBOARD_TWITCH__IRC_URL": chat or f"irc://127.0.0.1:{free_port()}"}
    return ServerProcess(data, "--interval", "1", *extra, command="twitch", env=env,
                         ready="/healthz")


def _present(url: str, room: str) -> set[str]:
    got = httpx.get(f"{url}/v1/presence/rooms/{room}", params={"space": SPACE}).json()
    return {m["member"] for m in got["members"]}


def _migrations(url: str) -> list[tuple[str, str, int]]:
    got = httpx.get(f"{url}/v1/migrations", params={"space": SPACE}).json()["migrations"]
    return [(m["from"], m["to"], m["count"]) for m in got]


@pytest.mark.slow
def test_a_tracker_process_moves_adds_and_survives_kill_9(helix: HelixStandIn,
                                                           tmp_path: Path) -> None:
    helix.go_live("alpha", ["ann", "bob", "cat"])
    helix.go_live("beta", ["dan"])
    helix.go_live("gamma", ["eve"])
    proc = _tracker(helix, tmp_path / "data", "--streams", "alpha,Beta")
    proc.start()
    try:
        _wait(lambda: _present(proc.url, "alpha") == {"ann", "bob", "cat"})
        helix.set_viewers("alpha", ["cat"])
        helix.set_viewers("beta", ["dan", "ann", "bob"])
        _wait(lambda: _migrations(proc.url) == [("alpha", "beta", 2)])
        assert httpx.put(f"{proc.url}/v1/twitch/streams/gamma").json() == {
            "stream": "gamma", "changed": True}
        _wait(lambda: _present(proc.url, "gamma") == {"eve"})
        listed = httpx.get(f"{proc.url}/v1/twitch/streams").json()
        assert listed["listed"] == ["alpha", "beta", "gamma"]
        before = httpx.get(f"{proc.url}/v1/presence/sessions",
                           params={"space": SPACE, "member": "dan"}).json()["sessions"]
        proc.kill9()
        helix.cut_after("beta", 0)  # the first poll after the restart fails: no leaves
        polls = len(helix.calls_to("/helix/chat/chatters"))
        proc.start()
        _wait(lambda: len(helix.calls_to("/helix/chat/chatters")) > polls + 6)
        after = httpx.get(f"{proc.url}/v1/presence/sessions",
                          params={"space": SPACE, "member": "dan"}).json()["sessions"]
        assert [(s["room"], s["start"], s["end"]) for s in after] == [
            (s["room"], s["start"], s["end"]) for s in before], "a phantom leave or join"
        assert _migrations(proc.url) == [("alpha", "beta", 2)]
        assert _present(proc.url, "gamma") == {"eve"}  # still watched after the restart
        assert httpx.delete(f"{proc.url}/v1/twitch/streams/gamma").json()["changed"]
        _wait(lambda: _present(proc.url, "gamma") == set())
        viewers = httpx.get(f"{proc.url}/v1/twitch/viewers", params={
            "stream": "Alpha", "start": int(time.time()) - 3600, "step": "hour"}).json()
        assert viewers["stream"] == "alpha"
        assert sum(p["checks"] for p in viewers["points"]) >= 2
        assert all(1 <= p["viewer_count"] <= 3 for p in viewers["points"] if p["checks"])
        assert max(p["peak"] for p in viewers["points"]) == 3
        bad = httpx.get(f"{proc.url}/v1/twitch/viewers", params={
            "stream": "alpha", "start": int(time.time()) + 60})
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "bad_query"
        metrics = httpx.get(f"{proc.url}/metrics").text
        assert 'tallyboard_twitch_polls_total{result="ok"}' in metrics
        assert 'tallyboard_twitch_poll_failures_total{reason="http_500"}' in metrics
        assert "tallyboard_twitch_chat_connected 0.0" in metrics
    finally:
        proc.stop()
    log = proc.log.read_text()
    assert "Twitch chat at 127.0.0.1" in log and "is unreachable" in log
    assert "Traceback" not in log
    for token in helix.tokens():
        assert token not in log, "a token was logged"


@pytest.mark.slow
def test_a_renewed_token_is_kept_for_the_restart(helix: HelixStandIn, tmp_path: Path) -> None:
    """A renewal spends the refresh token (the stand-in, like Twitch, answers with a new
    one): after a renewal and a kill -9, the configured pair is used up, so the restart
    must start from the renewed pair, kept owner-only in the data dir."""
    helix.go_live("alpha", ["ann"])
    proc = _tracker(helix, tmp_path / "data", "--streams", "alpha")
    proc.start()
    try:
        _wait(lambda: _present(proc.url, "alpha") == {"ann"})
        for token in helix.tokens():
            helix.expire(token)
        helix.set_viewers("alpha", ["ann", "bob"])
        _wait(lambda: _present(proc.url, "alpha") == {"ann", "bob"})  # after a renewal
        assert [c.status for c in helix.calls_to("/oauth2/token")] == [200]
        proc.kill9()
        for token in helix.tokens():  # the renewed access token expires while it is down
            helix.expire(token)
        helix.set_viewers("alpha", ["bob"])
        proc.start()
        _wait(lambda: _present(proc.url, "alpha") == {"bob"})
        assert [c.status for c in helix.calls_to("/oauth2/token")] == [200, 200]
    finally:
        proc.stop()
    kept = tmp_path / "data" / "twitch-tokens.json"
    assert kept.stat().st_mode & 0o777 == 0o600
    log = proc.log.read_text()
    assert "Traceback" not in log
    for token in helix.tokens():
        assert token not in log, "a token was logged"


@pytest.mark.slow
def test_a_tracker_process_writes_to_a_server_with_url(helix: HelixStandIn,
                                                        tmp_path: Path) -> None:
    helix.go_live("alpha", ["ann", "bob"])
    server = ServerProcess(tmp_path / "server")
    server.start()
    proc = _tracker(helix, tmp_path / "tracker", "--streams", "alpha", "--url", server.url)
    try:
        proc.start()
        _wait(lambda: _present(server.url, "alpha") == {"ann", "bob"})
        assert httpx.get(f"{proc.url}/v1/twitch/streams").json()["streams"][0]["chatters"] == 2
        assert not (tmp_path / "tracker" / "events.sqlite3").exists()
        viewers = httpx.get(f"{proc.url}/v1/twitch/viewers", params={  # read of the server
            "stream": "alpha", "start": int(time.time()) - 60, "step": "minute"}).json()
        assert max(p["peak"] for p in viewers["points"]) == 2
        assert {p["viewer_count"] for p in viewers["points"] if p["checks"]} == {2.0}
    finally:
        proc.stop()
        server.stop()


def test_a_stream_removed_in_the_second_of_its_poll_still_empties(
        helix: HelixStandIn, tmp_path: Path) -> None:
    """The end's snapshot has an id of its own: taken for a retry of the poll's (same
    room, same second), it was dropped as a duplicate and everyone stayed."""
    helix.go_live("alpha", ["ann"])
    with World(helix, tmp_path) as w:
        w.streams.set(["alpha"])
        w.step(advance=0.5)
        gauge = w.tracker.metrics.registry.get_sample_value
        assert gauge("tallyboard_twitch_chatters", {"stream": "alpha"}) == 1
        w.run(w.tracker.remove("alpha"))
        w.step()
        assert w.present("alpha") == set()
        assert w.tb.sessions("ann", space=SPACE)[0]["end"] == T0
        assert gauge("tallyboard_twitch_chatters", {"stream": "alpha"}) is None  # forgotten


# ---- Twitch chat: the second source, and raids -------------------------------------------
def _chat_knows(w: World, *rooms: str) -> Any:
    return lambda: all(w.tracker.chat is not None and w.tracker.chat.chatters(r) is not None
                       for r in rooms)


def test_chat_is_the_source_where_helix_will_not_list_chatters(
        helix: HelixStandIn, tmi: TmiStandIn, tmp_path: Path) -> None:
    helix.go_live("alpha", moderated=False)  # Helix answers 403 for its chatters
    helix.go_live("beta", ["dan", "tallybot"])  # the tracker's own login: never a viewer
    tmi.set_room("alpha", ["ann", "bob"])
    with World(helix, tmp_path, chat=tmi) as w:
        w.streams.set(["alpha", "beta"])
        w.step()  # lists the streams, chat joins them (a poll before NAMES records nothing)
        w.settle(_chat_knows(w, "alpha"))
        w.step()
        assert w.present("alpha") == {"ann", "bob"} and w.present("beta") == {"dan"}
        sources = {s["stream"]: s["source"] for s in w.tracker.state()}
        assert sources == {"alpha": "irc", "beta": "helix"}
        tmi.set_room("alpha", ["ann"])  # bob's PART comes in the next batch
        helix.set_viewers("beta", ["dan", "bob"])
        w.settle(lambda: w.tracker.chat.chatters("alpha") == ["ann"])  # type: ignore[union-attr]
        w.step()
        assert w.migrations() == [("alpha", "beta", 1)]
        assert w.tb.migrations(space=SPACE, member="bob")["moves"][0]["ts"] == T0 + 120


def test_chat_over_the_limit_or_disconnected_records_nothing(
        helix: HelixStandIn, tmi: TmiStandIn, tmp_path: Path) -> None:
    helix.go_live("small", moderated=False)
    helix.go_live("big", moderated=False, viewer_count=1500)
    tmi.set_room("small", ["ann", "bob"])
    tmi.set_room("big", [f"u{i}" for i in range(1500)], moderators=["mod"])
    with World(helix, tmp_path, chat=tmi) as w:
        w.streams.set(["small", "big"])
        w.step()
        w.settle(_chat_knows(w, "small"))
        w.step()
        state = {s["stream"]: s for s in w.tracker.state()}
        assert w.present("small") == {"ann", "bob"}
        assert w.present("big") == set() and state["big"]["stale"] == "irc_over_limit"
        tmi.drop()  # the connection is gone: nothing is known, nobody leaves
        w.settle(lambda: not w.tracker.chat.connected)  # type: ignore[union-attr]
        w.step()
        assert w.present("small") == {"ann", "bob"}
        assert {s["stream"]: s["stale"] for s in w.tracker.state()}["small"] in (
            "irc_disconnected", "irc_joining")
        tmi.set_room("small", ["bob"])  # ann left while we were away
        w.settle(_chat_knows(w, "small"), timeout=15)  # reconnected (backoff), NAMES again
        w.step()
        assert w.present("small") == {"bob"}
        assert w.tb.sessions("ann", space=SPACE)[0]["end"] == T0 + 180


def test_a_raid_is_an_edge_with_the_moves_it_explains(
        helix: HelixStandIn, tmi: TmiStandIn, tmp_path: Path) -> None:
    helix.go_live("alpha", ["ann", "bob", "cat"])
    helix.go_live("beta", ["dan"])
    with World(helix, tmp_path, chat=tmi, t0=math.floor(time.time()) - 70) as w:
        w.streams.set(["alpha", "beta"])
        w.step(advance=0)
        w.settle(lambda: tmi.joined("beta"))
        w.step(advance=0)
        tmi.raid("alpha", "beta", 3)
        w.settle(lambda: len(w.tracker.raids.raids) == 1)
        tmi.reconnect()  # TMI may say it again after a reconnect: still one raid
        w.clock.t = math.floor(time.time()) + 1
        helix.go_offline("alpha")
        helix.set_viewers("beta", ["dan", "ann", "bob"])
        w.step()
        got = w.run(w.tracker.raids_between(None, None))
        raid = w.tracker.raids.raids[0]
        assert got == [{"from": "alpha", "to": "beta", "ts": raid.ts, "viewers": 3,
                        "moved": 2}]
        assert w.run(w.tracker.raids_between(None, None, "gamma")) == []
        assert w.run(w.tracker.raids_between(raid.ts + 1, None)) == []
    assert RaidLog(tmp_path / "twitch-raids.jsonl").raids == [raid]  # kept on disk


def test_the_chat_login_pings_and_never_shows_the_token(
        helix: HelixStandIn, tmi: TmiStandIn, tmp_path: Path) -> None:
    helix.go_live("alpha", ["ann"])
    with World(helix, tmp_path, chat=tmi) as w:
        w.streams.set(["alpha"])
        w.step(advance=0)
        w.settle(lambda: tmi.joined("alpha"))
        tmi.ping()
        w.settle(lambda: "PONG :tmi.twitch.tv" in tmi.received)
    sent = tmi.received
    assert "CAP REQ :twitch.tv/membership twitch.tv/tags twitch.tv/commands" in sent
    assert "PASS ***" in sent and "NICK tallybot" in sent and "JOIN #alpha" in sent


def test_irc_lines_parse_as_twitch_sends_them() -> None:
    m = parse("@msg-id=raid;msg-param-login=Alpha;system-msg=3\\sraiders\\sjoined "
              ":tmi.twitch.tv USERNOTICE #beta\r\n")
    assert (m.command, m.params, m.tags["msg-param-login"], m.tags["system-msg"]) == (
        "USERNOTICE", ["#beta"], "Alpha", "3 raiders joined")
    m = parse(":Ann!ann@ann.tmi.twitch.tv JOIN #beta")
    assert (m.nick, m.command, m.params) == ("ann", "JOIN", ["#beta"])
    m = parse(":me.tmi.twitch.tv 353 me = #beta :ann bob")
    assert m.params == ["me", "=", "#beta", "ann bob"]
    assert parse("PING :tmi.twitch.tv").params == ["tmi.twitch.tv"]


def test_the_raid_log_survives_a_cut_line_and_keeps_each_raid_once(tmp_path: Path) -> None:
    path = tmp_path / "twitch-raids.jsonl"
    log = RaidLog(path)
    first = Raid("alpha", "beta", 3, 1_780_000_000.5)
    assert log.add(first) and not log.add(first)
    with path.open("a") as f:
        f.write('{"source": "gam')  # kill -9 in the middle of a write
    again = RaidLog(path)
    assert again.raids == [first]
    second = Raid("beta", "gamma", 1, 1_780_000_100.0)
    assert again.add(second)
    assert RaidLog(path).raids == [first, second]


@pytest.mark.slow
def test_a_tracker_process_keeps_a_raid_across_kill_9(helix: HelixStandIn, tmi: TmiStandIn,
                                                      tmp_path: Path) -> None:
    helix.go_live("alpha", ["ann", "bob"])
    helix.go_live("beta", ["dan"])
    proc = _tracker(helix, tmp_path / "data", "--streams", "alpha,beta", chat=tmi.url)
    proc.start()
    try:
        _wait(lambda: tmi.joined("beta") and _present(proc.url, "alpha") == {"ann", "bob"})
        tmi.raid("alpha", "beta", 2)
        helix.go_offline("alpha")
        helix.set_viewers("beta", ["dan", "ann", "bob"])

        def raids() -> list[dict[str, Any]]:
            got: list[dict[str, Any]] = httpx.get(f"{proc.url}/v1/twitch/raids").json()["raids"]
            return got

        _wait(lambda: raids() and raids()[0]["moved"] == 2)
        proc.kill9()
        proc.start()
        got = raids()
        assert [(r["from"], r["to"], r["viewers"], r["moved"]) for r in got] == [
            ("alpha", "beta", 2, 2)]
        assert httpx.get(f"{proc.url}/v1/twitch/raids", params={"stream": "gamma"}).json()[
            "raids"] == []
        assert httpx.get(f"{proc.url}/v1/twitch/raids",
                         params={"start": "tomorrow"}).status_code == 400
    finally:
        proc.stop()


def test_a_write_tallyboard_refuses_is_a_stale_poll_not_a_stop(
        helix: HelixStandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A snapshot over the engine's limit (or a server away, busy): the stream goes stale
    with tallyboard's reason, the other streams go on, and the next poll tries again."""
    from tallyboard.presence import ops

    helix.go_live("alpha", ["ann", "bob", "cat"])
    helix.go_live("beta", ["dan"])
    monkeypatch.setattr(ops, "MAX_SNAPSHOT", 2)
    with World(helix, tmp_path) as w:
        w.streams.set(["alpha", "beta"])
        w.step()
        stale = {s["stream"]: s["stale"] for s in w.tracker.state()}
        assert stale == {"alpha": "tallyboard_invalid_event", "beta": None}
        assert w.present("alpha") == set() and w.present("beta") == {"dan"}
        monkeypatch.setattr(ops, "MAX_SNAPSHOT", 1_000_000)
        w.step()
        assert w.present("alpha") == {"ann", "bob", "cat"}


def test_an_app_token_reads_chatters_from_chat(helix: HelixStandIn, tmi: TmiStandIn,
                                                tmp_path: Path) -> None:
    """Client credentials list streams but no chatters: chat (anonymous, as justinfan)
    is then the source, and the anonymous login is not a viewer."""
    helix.go_live("alpha", ["ann", "bob"])
    tmi.set_room("alpha", ["ann", "bob"])
    with World(helix, tmp_path, chat=tmi, app=True) as w:
        assert w.client.user_id is None
        w.streams.set(["alpha"])
        w.step()
        w.settle(_chat_knows(w, "alpha"))
        w.step()
        assert w.present("alpha") == {"ann", "bob"}
        assert [s["source"] for s in w.tracker.state()] == ["irc"]
    assert any(line.startswith("NICK justinfan") for line in tmi.received)
