"""The Discord bot as users meet it: a real `tallyboard discord` process (discord.py, the
embedded engine) against the Discord stand-in (gateway websocket and REST on a free port).

Voice time across restarts and gateway drops, moves as migrations, bots and the AFK
channel, /top, /stats, /settings, countdowns (tick times measured where Discord would see
them), stop, two channels, kill -9, invalid and wrong commands, kept errors, metrics.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from discord_support import BotProcess, World, answer, contents, make_world
from tallyboard.standins.discord_standin import DiscordStandIn

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


@pytest.fixture
def world() -> Iterator[World]:
    with DiscordStandIn() as d:
        yield make_world(d)


@pytest.fixture
def bot(world: World, tmp_path: Path) -> Iterator[BotProcess]:
    process = BotProcess(world.d, tmp_path / "data")
    process.start()
    yield process
    process.stop()


def seconds(bot: BotProcess, w: World, member: str, room: str | None = None) -> int:
    params = {"space": w.guild, "metric": "presence_seconds", "member": member}
    if room is not None:
        params["tag.room"] = room
    total: int = bot.get("/v1/sum", **params)["sum"]
    return total


def rooms(bot: BotProcess, w: World) -> dict[str, int]:
    return {r["room"]: r["members"] for r in bot.get("/v1/presence/rooms", space=w.guild)["rooms"]}


def test_study_time_is_credited_across_a_restart(world: World, tmp_path: Path) -> None:
    w, d = world, world.d
    d.set_voice_state(w.guild, w.alice, w.library)  # in voice before the bot starts
    d.set_voice_state(w.guild, w.robot, w.library)  # a bot: never counted
    d.set_voice_state(w.guild, w.carol, w.afk)  # AFK: never counted
    bot = BotProcess(d, tmp_path / "data")
    bot.start()
    try:
        alice_from = time.time()
        d.wait_until(lambda: rooms(bot, w) == {w.library: 1}, timeout=5)
        d.set_voice_state(w.guild, w.bob, w.gym)
        d.wait_until(lambda: rooms(bot, w) == {w.library: 1, w.gym: 1}, timeout=5)
        bob_from = time.time()
        time.sleep(2)
        bot.stop()  # while it is away: bob leaves, carol comes out of AFK, alice stays
        d.set_voice_state(w.guild, w.bob, None)
        d.set_voice_state(w.guild, w.carol, w.library)
        time.sleep(1.5)
        bot.start()
        back = time.time()
        d.wait_until(lambda: rooms(bot, w) == {w.library: 2}, timeout=5)
        time.sleep(1)
        now = time.time()
        # alice: one unbroken session since before the restart, counted once
        assert abs(seconds(bot, w, w.alice) - (now - alice_from)) <= 2
        sessions = bot.get("/v1/presence/sessions", space=w.guild, member=w.alice)
        assert len(sessions["sessions"] if isinstance(sessions, dict) else sessions) == 1
        # bob: Discord does not say when he left, so until the bot was back
        assert abs(seconds(bot, w, w.bob) - (back - bob_from)) <= 2
        assert abs(seconds(bot, w, w.carol) - (now - back)) <= 2  # from the reconcile on
        assert seconds(bot, w, w.robot) == 0
        assert seconds(bot, w, w.alice, w.afk) == 0
        assert bot.metric("tallyboard_discord_voice_sessions_open") == 2
    finally:
        bot.stop()


def test_a_move_is_a_migration_and_a_dropped_gateway_resumes(world: World,
                                                            bot: BotProcess) -> None:
    w, d = world, world.d
    d.set_voice_state(w.guild, w.alice, w.library)
    d.wait_until(lambda: rooms(bot, w) == {w.library: 1}, timeout=5)
    d.set_voice_state(w.guild, w.alice, w.gym)  # a move
    d.wait_until(lambda: rooms(bot, w) == {w.gym: 1}, timeout=5)
    moves = bot.get("/v1/migrations", space=w.guild)["migrations"]
    assert moves == [{"from": w.library, "to": w.gym, "count": 1}]

    d.set_voice_state(w.guild, w.alice, w.gym, self_mute=True)  # not a move
    d.drop(4000)  # the gateway drops; what happens meanwhile is replayed on RESUME
    d.set_voice_state(w.guild, w.bob, w.library)
    d.wait_until(lambda: d.resumes >= 1 and rooms(bot, w) == {w.gym: 1, w.library: 1},
                 timeout=10)
    assert bot.metric("tallyboard_discord_gateway_reconnects_total") == 1
    sessions = bot.get("/v1/presence/sessions", space=w.guild, member=w.alice)
    assert [s["room"] for s in sessions["sessions"]] == [w.library, w.gym]
    assert bot.get("/v1/migrations", space=w.guild)["migrations"] == moves


def test_top_answers_within_200_ms_and_reads_well(world: World, bot: BotProcess) -> None:
    w, d = world, world.d
    d.set_voice_state(w.guild, w.alice, w.library)
    d.wait_until(lambda: rooms(bot, w) == {w.library: 1}, timeout=5)
    time.sleep(1.2)
    d.set_voice_state(w.guild, w.bob, w.gym)
    d.wait_until(lambda: rooms(bot, w) == {w.library: 1, w.gym: 1}, timeout=5)
    time.sleep(1.2)
    latencies = []
    for window in ("day", "week", "month", "all", "24h"):
        iid = d.run_slash_command(w.text, w.carol, "top", {"window": window, "n": 5})
        reply = d.wait_until(lambda iid=iid: d.interaction_responses(iid), timeout=5)[0]
        latencies.append(reply.mono - d.interaction(iid).mono)
        embed = reply.json["data"]["embeds"][0]
        lines = embed["description"].splitlines()
        assert lines[0].startswith("🥇") and f"<@{w.alice}>" in lines[0]
        assert lines[1].startswith("🥈") and f"<@{w.bob}>" in lines[1]
        assert "2 members ranked" in embed["footer"]["text"]
    assert max(latencies) < 0.2, latencies

    d.send_message(w.text, w.carol, f"<@{d.bot_user['id']}> top week 1")  # as text
    text = d.wait_until(lambda: d.messages(w.text), timeout=5)[0].json
    assert text["embeds"][0]["title"] == "Voice time — this week"
    assert len(text["embeds"][0]["description"].splitlines()) == 1
    dm = d.open_dm(w.bob)
    d.send_message(dm, w.bob, "stats")  # in a DM: no mention needed
    stats = d.wait_until(lambda: d.messages(dm), timeout=5)[0]
    fields = {f["name"]: f["value"] for f in stats.json["embeds"][0]["fields"]}
    assert set(fields) == {"Today", "This week", "This month", "All time", "Streak"}
    assert fields["Today"].endswith("#2 of 2")
    assert stats.uploads[0].filename == "last-14-days.png"
    assert stats.uploads[0].data.startswith(b"\x89PNG")
    assert bot.metric("tallyboard_discord_commands_total", command="top", outcome="ok") == 6


def test_settings_are_for_admins_and_limit_tracking(world: World, bot: BotProcess) -> None:
    w, d = world, world.d
    d.set_voice_state(w.guild, w.bob, w.library)
    d.set_voice_state(w.guild, w.carol, w.gym)
    d.wait_until(lambda: rooms(bot, w) == {w.library: 1, w.gym: 1}, timeout=5)
    denied = d.run_slash_command(w.text, w.bob, "settings", {"reset": "17:00"})
    reply = d.wait_until(lambda: d.interaction_responses(denied), timeout=5)[0]
    assert "Manage Server" in reply.json["data"]["embeds"][0]["description"]

    iid = d.run_slash_command(w.text, w.alice, "settings", {
        "timezone": "UTC", "reset": "17:00", "track": w.library, "streak_minutes": 30})
    fields = {f["name"]: f["value"] for f in answer(d, iid)["embeds"][0]["fields"]}
    assert fields == {"Day starts": "17:00 · UTC", "Tracked": f"<#{w.library}>",
                      "Streak": "30 min a day"}
    assert rooms(bot, w) == {w.library: 1}  # the gym is no longer tracked: carol left it
    metric = bot.get("/v1/metrics/presence_seconds", space=w.guild)
    assert (metric["timezone"], metric["day_start"]) == ("UTC", "17:00")
    d.set_voice_state(w.guild, w.carol, w.library)
    d.wait_until(lambda: rooms(bot, w) == {w.library: 2}, timeout=5)
    bad = d.run_slash_command(w.text, w.alice, "settings", {"timezone": "Mars/Olympus"})
    assert "Not changed" in answer(d, bad)["embeds"][0]["description"]
    assert bot.metric("tallyboard_discord_commands_total", command="settings",
                      outcome="denied") == 1


def test_countdown_to_5_keeps_time(world: World, bot: BotProcess) -> None:
    w, d = world, world.d
    asked = time.monotonic()
    d.send_message(w.timers, w.alice, "count to 5")
    ticks = d.wait_until(lambda: len(d.messages(w.timers)) >= 5 and d.messages(w.timers),
                         timeout=10)
    assert contents(d, w.timers) == ["1", "2", "3", "4", "5"]
    times = [t.mono - asked for t in ticks]
    for k, at in enumerate(times, start=1):  # tick k at start + k s
        assert k - 0.01 <= at <= k + 0.15, times
    spacing = [b - a for a, b in itertools.pairwise(times)]
    assert all(abs(s - 1) < 0.1 for s in spacing), spacing
    assert abs((times[-1] - times[0]) - 4) < 0.05, times  # no drift over the count
    time.sleep(1.2)
    assert len(d.messages(w.timers)) == 5
    assert bot.metric("tallyboard_discord_countdown_target_count") == 1
    assert bot.metric("tallyboard_discord_countdown_target_bucket", le="5.0") == 1
    assert bot.metric("tallyboard_discord_tick_lateness_seconds_count") == 5


def test_stop_two_channels_invalid_and_wrong_commands(world: World, bot: BotProcess) -> None:
    w, d = world, world.d
    d.send_message(w.timers, w.alice, "count to 100")
    d.send_message(w.text, w.bob, "count to 3")
    d.wait_until(lambda: len(d.messages(w.timers)) >= 2, timeout=5)
    d.send_message(w.timers, w.alice, "count to 7")  # one countdown per channel
    d.send_message(w.timers, w.alice, "stop")
    d.wait_until(lambda: any(c.startswith("Stopped at") for c in contents(d, w.timers)),
                 timeout=5)
    d.wait_until(lambda: len(d.messages(w.text)) >= 3, timeout=5)
    time.sleep(1.2)
    timers = contents(d, w.timers)
    numbers = [c for c in timers if c.isdigit()]
    assert numbers == [str(k) for k in range(1, len(numbers) + 1)] and len(numbers) <= 3
    assert any("already counting" in c for c in timers)
    assert timers[-1] == f"Stopped at {numbers[-1]}."
    assert contents(d, w.text) == ["1", "2", "3"]  # the other channel counted on, alone
    for text in ("count to 0", "count to 10000", "count to five"):
        d.send_message(w.text, w.bob, text)
    d.send_message(w.text, w.bob, "stop")  # nothing runs here any more
    d.wait_until(lambda: len(d.messages(w.text)) >= 7, timeout=5)
    replies = " | ".join(contents(d, w.text)[3:])  # answered concurrently: in any order
    for words in ("1 to 9,999, not 0", "not 10,000", "not a whole number",
                  "Nothing is counting"):
        assert words in replies
    assert bot.metric("tallyboard_discord_invalid_commands_total") == 3
    assert bot.metric("tallyboard_discord_wrong_commands_total") == 2
    assert bot.metric("tallyboard_discord_countdowns_cancelled_total") == 1
    assert bot.metric("tallyboard_discord_commands_total", command="count",
                      outcome="invalid") == 3
    assert bot.get("/v1/bot/countdowns")["countdowns"] == []


def test_countdown_resumes_after_kill9_skipping_what_passed(world: World,
                                                            tmp_path: Path) -> None:
    w, d = world, world.d
    bot = BotProcess(d, tmp_path / "data")
    bot.start()
    try:
        asked = time.monotonic()
        d.send_message(w.timers, w.alice, "count to 9")
        d.wait_until(lambda: len(d.messages(w.timers)) >= 2, timeout=5)
        bot.kill9()
        time.sleep(3)
        bot.start()
        d.wait_until(lambda: contents(d, w.timers)[-1:] == ["9"], timeout=15)
    finally:
        bot.stop()
    said = contents(d, w.timers)
    notice = [c for c in said if c.startswith("Back after a restart: skipped")]
    numbers = [int(c) for c in said if c.isdigit()]
    assert len(notice) == 1 and numbers == sorted(set(numbers))  # in order, none twice
    first, last = (int(x) for x in notice[0].split("skipped ")[1].split(",")[0].split("–"))
    assert numbers == [k for k in range(1, 10) if not first <= k <= last]
    on_time = [m for m in d.messages(w.timers) if (m.json or {}).get("content", "").isdigit()
               and int(m.json["content"]) > last]
    late = [m.mono - asked - int(m.json["content"]) for m in on_time]
    # Across a restart only the wall clock links the two processes: allow for it being
    # slewed meanwhile (this machine's ran 0.5% fast at times).
    assert -0.06 < late[0] < 1.2  # the first may be up to a second late (the rule)
    assert all(-0.06 < x < 0.15 for x in late[1:]), late  # then on the original schedule


def test_errors_are_kept_and_listed(world: World, bot: BotProcess, tmp_path: Path) -> None:
    w, d = world, world.d
    d.force_error(f"/channels/{w.timers}/messages", times=1, status=403)
    d.send_message(w.timers, w.alice, "count to 3")  # its first tick is refused
    d.wait_until(lambda: bot.get("/v1/bot/errors")["errors"], timeout=5)
    error = bot.get("/v1/bot/errors")["errors"][0]
    assert error["kind"] == "general" and error["command"] == "count"
    assert error["channel"] == w.timers and error["guild"] == w.guild
    assert "Forbidden" in error["error"] and "Traceback" in error["traceback"]
    assert bot.metric("tallyboard_discord_errors_total", kind="general") == 1
    assert bot.get("/v1/bot/countdowns")["countdowns"] == []  # it ended
    listed = subprocess.run([sys.executable, "-m", "tallyboard.cli", "errors", "--data",
                             str(bot.data), "--json"], capture_output=True, text=True,
                            timeout=60)
    assert listed.returncode == 0, listed.stderr
    assert '"command": "count"' in listed.stdout
    assert httpx.get(bot.url + "/v1/bot/errors", params={"kind": "command"}).json() == \
        {"errors": []}


def test_rate_limits_delay_ticks_but_keep_their_order(world: World, bot: BotProcess) -> None:
    w, d = world, world.d
    d.force_429(f"/channels/{w.timers}/messages", times=2, retry_after=1.5)
    d.send_message(w.timers, w.alice, "count to 4")
    d.wait_until(lambda: len(d.messages(w.timers)) >= 4, timeout=10)
    assert contents(d, w.timers) == ["1", "2", "3", "4"]
    refused = [c for c in d.calls(f"/channels/{w.timers}/messages") if c.status == 429]
    assert len(refused) == 2  # discord.py waited as told, then sent again, in order


def test_a_session_that_cannot_resume_is_reconciled(world: World, bot: BotProcess) -> None:
    """Discord forgets the session: the bot identifies again, gets the guild as it is now
    and makes presence agree (what it missed is not replayed in this case)."""
    w, d = world, world.d
    d.set_voice_state(w.guild, w.alice, w.library)
    d.wait_until(lambda: rooms(bot, w) == {w.library: 1}, timeout=5)
    identified = d.identifies
    d.invalidate_session()
    d.set_voice_state(w.guild, w.alice, None)  # never reaches the bot
    d.set_voice_state(w.guild, w.bob, w.gym)
    d.drop(4000)
    d.wait_until(lambda: d.identifies > identified and rooms(bot, w) == {w.gym: 1},
                 timeout=20)  # discord.py waits 5 s before identifying again
    assert bot.metric("tallyboard_discord_gateway_reconnects_total") >= 1
    assert bot.metric("tallyboard_discord_voice_sessions_open") == 1


def test_the_bot_can_report_to_a_server_by_url(world: World, tmp_path: Path) -> None:
    from support import ServerProcess

    w, d = world, world.d
    server = ServerProcess(tmp_path / "server")
    server.start()
    bot = BotProcess(d, tmp_path / "bot", "--url", server.url)
    try:
        d.set_voice_state(w.guild, w.alice, w.library)
        bot.start()
        d.set_voice_state(w.guild, w.bob, w.library)
        d.wait_until(lambda: httpx.get(server.url + "/v1/presence/rooms", params={
            "space": w.guild}).json()["rooms"] == [{"room": w.library, "members": 2}],
            timeout=5)
        iid = d.run_slash_command(w.text, w.carol, "top", {"window": "all"})
        reply = d.wait_until(lambda: d.interaction_responses(iid), timeout=5)[0]
        assert f"<@{w.alice}>" in reply.json["data"]["embeds"][0]["description"]
        assert httpx.get(bot.url + "/v1/bot/errors").json() == {"errors": []}
        assert httpx.get(bot.url + "/v1/leaderboard").status_code == 404  # not a server
        assert (tmp_path / "bot" / "discord.sqlite3").exists()
    finally:
        bot.stop()
        server.stop()


def test_updates_handled_during_a_reconcile_are_not_undone() -> None:
    """A move handled while a reconcile waits on tallyboard must survive the reconcile's
    snapshots (they are built from Discord's voice states after the wait)."""
    import threading

    import tallyboard
    from tallyboard.bench.discord_bot import BotThread
    from tallyboard.bots.discord.bot import StatsBot
    from tallyboard.bots.discord.telemetry import BotMetrics
    from tallyboard.bots.state import open_state
    from tallyboard.standins.discord_standin import discord_py_pointed_at

    class SlowRooms:
        """The engine, with its first `rooms` answer held until a move was sent."""

        def __init__(self, engine: Any) -> None:
            self.engine, self.asked, self.moved = engine, threading.Event(), threading.Event()

        def rooms(self, **kwargs: Any) -> Any:
            if not self.asked.is_set():
                self.asked.set()
                self.moved.wait(10)
                time.sleep(0.3)  # the move's handler runs meanwhile
            return self.engine.rooms(**kwargs)

        def __getattr__(self, name: str) -> Any:
            return getattr(self.engine, name)

    engine = tallyboard.open("memory://")
    state = open_state("memory://")
    slow = SlowRooms(engine)
    with DiscordStandIn() as d, discord_py_pointed_at(d.api_url, d.gateway_url):
        w = make_world(d)
        d.set_voice_state(w.guild, w.alice, w.library)
        running = BotThread(StatsBot(slow, state, BotMetrics()), d.token)  # type: ignore[arg-type]
        running.start()
        try:
            assert slow.asked.wait(20)
            d.set_voice_state(w.guild, w.alice, w.gym)
            slow.moved.set()
            d.wait_until(lambda: engine.rooms(space=w.guild) == [{"room": w.gym, "members": 1}],
                         timeout=10)
            time.sleep(0.5)
            assert engine.rooms(space=w.guild) == [{"room": w.gym, "members": 1}]
        finally:
            running.stop()
            engine.close()
            state.close()


def test_a_count_right_after_a_stop_is_kept(world: World, bot: BotProcess) -> None:
    """`stop` then at once `count to 3`: the stop's cleanup must not forget the new count."""
    w, d = world, world.d
    d.send_message(w.timers, w.alice, "count to 50")
    d.wait_until(lambda: d.messages(w.timers), timeout=5)
    d.send_message(w.timers, w.alice, "stop")
    d.send_message(w.timers, w.bob, "count to 3")
    kept = d.wait_until(lambda: bot.get("/v1/bot/countdowns")["countdowns"], timeout=5)
    assert [c["target"] for c in kept] == [3]
    d.wait_until(lambda: contents(d, w.timers)[-1:] == ["3"], timeout=10)
    d.wait_until(lambda: bot.get("/v1/bot/countdowns")["countdowns"] == [], timeout=5)


def test_a_bot_started_before_its_server_catches_up(world: World, tmp_path: Path) -> None:
    """docker-compose starts the bot first: its reconcile waits for the server."""
    from support import ServerProcess

    w, d = world, world.d
    d.set_voice_state(w.guild, w.alice, w.library)
    server = ServerProcess(tmp_path / "server")
    bot = BotProcess(d, tmp_path / "bot", "--url", server.url)
    try:
        bot.start()  # the server is not there yet
        time.sleep(1)
        server.start()
        d.wait_until(lambda: httpx.get(server.url + "/v1/presence/rooms", params={
            "space": w.guild}).json()["rooms"] == [{"room": w.library, "members": 1}],
            timeout=20)
    finally:
        bot.stop()
        server.stop()


def test_a_bot_started_while_discord_is_unreachable_comes_up_when_it_appears(
        tmp_path: Path) -> None:
    """No traceback and no exit when Discord cannot be reached at start: the login is
    retried with growing waits, each said in the log, until Discord is there."""
    from support import free_port

    d = DiscordStandIn(port=free_port())  # nothing listens there yet
    w = make_world(d)
    d.set_voice_state(w.guild, w.alice, w.library)
    bot = BotProcess(d, tmp_path / "data")
    bot.launch()
    try:
        tried = f"cannot reach Discord at {d.api_url} (attempt 2: Cannot connect to host"
        d.wait_until(lambda: tried in bot.log.read_text(), timeout=20)
        log = bot.log.read_text()
        assert "trying again in 1 second. The bot keeps trying until it is stopped." in log
        assert "trying again in 2 seconds." in log
        assert bot.get("/healthz") == {"status": "ok"}  # its HTTP side serves meanwhile
        d.start()
        bot.wait_up(timeout=30)
        d.wait_until(lambda: rooms(bot, w) == {w.library: 1}, timeout=10)
        log = bot.log.read_text()
        assert f"reached Discord at {d.api_url} on attempt " in log
        assert "Traceback" not in log and "Unclosed" not in log
    finally:
        bot.stop()
        d.stop()
    assert "Traceback" not in bot.log.read_text()
