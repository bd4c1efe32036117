"""Acceptance tests of `tallyboard discord`, written from the issue and the user docs only.

The bot is a black box: a real `python -m tallyboard.cli discord` process, pointed at the
Discord stand-in (`TALLYBOARD_DISCORD__API_URL`), checked only through what a user sees:
Discord messages and interaction answers (as the stand-in recorded them), tallyboard's HTTP
API on the bot's port, `/metrics`, `/v1/bot/errors` and `tallyboard errors`.

One stand-in and one bot process serve the whole module (the bot is restarted, on the same
data directory, by the restart tests at the end); every test builds a guild of its own, so
tests do not see each other's members, channels or countdowns.
"""

from __future__ import annotations

import io
import itertools
import json
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

import discord_support
from support import ServerProcess
from tallyboard.standins.discord_standin import DiscordStandIn

pytestmark = pytest.mark.timeout(120)

T = TypeVar("T")
METRIC = "presence_seconds"
MANAGE_GUILD = 1 << 5  # Discord's "Manage Server" permission bit
SLACK = 2.0  # seconds: presence has a one-second resolution, plus scheduling
_MENTION = re.compile(r"<@!?(\d+)>")
GUILDS: list[str] = []  # every guild the module's tests made, for the bot-wide gauges


# -- the bot as a user runs it --------------------------------------------------------------
class BotProcess(discord_support.BotProcess):
    """`tallyboard discord` with the engine in-process, and what a user asks of it."""

    # -- its HTTP side ------------------------------------------------------------------
    def get(self, path: str, **params: Any) -> Any:
        response = httpx.get(self.url + path, params=params, timeout=5)
        assert response.status_code == 200, (path, params, response.text)
        return response.json()

    def post(self, path: str, body: Any, **params: Any) -> Any:
        response = httpx.post(self.url + path, params=params, json=body, timeout=5)
        assert response.status_code == 200, (path, body, response.text)
        return response.json()

    def metrics(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        text = httpx.get(self.url + "/metrics", timeout=5).text
        return {(s.name, frozenset(s.labels.items())): s.value
                for family in text_string_to_metric_families(text) for s in family.samples}

    def rooms(self, space: str) -> dict[str, int]:
        rooms = self.get("/v1/presence/rooms", space=space)["rooms"]
        return {r["room"]: r["members"] for r in rooms}

    def seconds(self, space: str, member: str, room: str | None = None) -> int:
        params: dict[str, Any] = {"space": space, "metric": METRIC, "member": member}
        if room is not None:
            params["tag.room"] = room
        return int(self.get("/v1/sum", **params)["sum"])

    def credited_since(self, space: str, member: str, since: float) -> None:
        """The member's presence seconds are the time since `since`, give or take SLACK
        (bracketed by the clock around the query)."""
        before = time.time()
        credited = self.seconds(space, member)
        after = time.time()
        assert before - since - SLACK <= credited <= after - since + SLACK, (
            credited, before - since)

    def sessions(self, space: str, member: str) -> list[dict[str, Any]]:
        return list(self.get("/v1/presence/sessions", space=space, member=member)["sessions"])

    def migrations(self, space: str) -> list[dict[str, Any]]:
        return list(self.get("/v1/migrations", space=space)["migrations"])

    def seed(self, space: str, ops: list[dict[str, Any]]) -> None:
        """Presence history written straight to the API (as an import would)."""
        self.post("/v1/presence", ops, space=space)


class ServeProcess(ServerProcess):
    """A plain `tallyboard serve`, for the bot to report to by URL; restartable in place."""

    def rooms(self, space: str) -> dict[str, int]:
        answer = httpx.get(self.url + "/v1/presence/rooms", params={"space": space}, timeout=5)
        return {r["room"]: r["members"] for r in answer.json()["rooms"]}

    def get(self, path: str, **params: Any) -> Any:
        answer = httpx.get(self.url + path, params=params, timeout=5)
        assert answer.status_code == 200, answer.text
        return answer.json()


def metric(snapshot: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str,
           **labels: str) -> float:
    return snapshot.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture(scope="module")
def standin() -> Iterator[DiscordStandIn]:
    with DiscordStandIn() as server:  # Discord's own message rate: 5 per 5 s per channel
        yield server


@pytest.fixture(scope="module")
def bot(standin: DiscordStandIn, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BotProcess]:
    proc = BotProcess(standin, tmp_path_factory.mktemp("bot") / "data")
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


# -- a guild per test -----------------------------------------------------------------------
@dataclass(frozen=True)
class World:
    """A guild: two text channels, voice channels A and B (B in a category), C (another
    category), an AFK channel; alice (Manage Server), bob, carol, dave and a bot user."""

    d: DiscordStandIn
    name: str
    guild: str
    text: str
    text2: str
    voice_a: str
    voice_b: str
    voice_c: str
    category: str
    afk: str
    alice: str
    bob: str
    carol: str
    dave: str
    robot: str


@pytest.fixture
def world(standin: DiscordStandIn, bot: BotProcess, request: pytest.FixtureRequest) -> World:
    d = standin
    name = request.node.name.removeprefix("test_")[:40]
    guild = d.add_guild(name)
    GUILDS.append(guild)
    category = d.add_category(guild, "Study rooms")
    other = d.add_category(guild, "Hangout")
    w = World(
        d, name, guild, d.add_text_channel(guild, "general"),
        d.add_text_channel(guild, "timers"),
        d.add_voice_channel(guild, "A"), d.add_voice_channel(guild, "B", category_id=category),
        d.add_voice_channel(guild, "C", category_id=other), category,
        d.add_voice_channel(guild, "AFK"),
        d.add_user(f"alice-{name}"), d.add_user(f"bob-{name}"), d.add_user(f"carol-{name}"),
        d.add_user(f"dave-{name}"), d.add_user(f"robot-{name}", bot=True),
    )
    admin = d.add_role(guild, "mods", permissions=MANAGE_GUILD)
    d.add_member(guild, w.alice, roles=(admin,))
    for user in (w.bob, w.carol, w.dave, w.robot):
        d.add_member(guild, user)
    return w


# -- reading what the bot said ----------------------------------------------------------------
def wait(predicate: Callable[[], T], timeout: float = 5.0) -> T:
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"not true after {timeout} s")
        time.sleep(0.02)
    return value


def texts(payload: dict[str, Any]) -> str:
    """Everything a user reads in a message: content, embed titles, text, fields, footer."""
    parts = [payload.get("content") or ""]
    for embed in payload.get("embeds") or []:
        parts += [embed.get("title") or "", embed.get("description") or ""]
        for f in embed.get("fields") or []:
            parts += [f["name"], f["value"]]
        parts.append((embed.get("footer") or {}).get("text") or "")
    return "\n".join(p for p in parts if p)


@dataclass(frozen=True)
class Answer:
    payload: dict[str, Any]  # the message's JSON (content, embeds, flags...)
    uploads: tuple[Any, ...]

    @property
    def text(self) -> str:
        return texts(self.payload)

    @property
    def embed(self) -> dict[str, Any]:
        embeds = self.payload.get("embeds") or []
        assert embeds, f"no embed in {self.payload}"
        return dict(embeds[0])


def slash(w: World, user: str, name: str, options: dict[str, Any] | None = None,
          channel: str | None = None) -> Answer:
    """Run a slash command and return the answer the user finally sees."""
    iid = w.d.run_slash_command(channel or w.text, user, name, options or {})
    first = wait(lambda: w.d.interaction_responses(iid))[0]
    assert first.json["type"] in (4, 5), first.json
    if first.json["type"] == 4:
        return Answer(first.json.get("data") or {}, first.uploads)
    # deferred: the answer is a followup or an edit of @original
    later = wait(lambda: [c for c in w.d.interaction_responses(iid)[1:]
                          if c.method in ("POST", "PATCH") and c.json])
    return Answer(later[-1].json, later[-1].uploads)


def say(w: World, channel: str, user: str, content: str, *, replies: int = 1,
        timeout: float = 5.0) -> list[Answer]:
    """Post a message and return the bot's next `replies` messages in that channel."""
    before = len(w.d.messages(channel))
    w.d.send_message(channel, user, content)
    calls = wait(lambda: (m := w.d.messages(channel)[before:]) and len(m) >= replies and m,
                 timeout)
    return [Answer(c.json, c.uploads) for c in calls[:replies]]


def silent(w: World, channel: str, since: int, seconds: float = 1.0) -> bool:
    time.sleep(seconds)
    return len(w.d.messages(channel)) == since


def ticks(w: World, channel: str) -> list[tuple[int, float]]:
    """The countdown's numbers as Discord accepted them, with their arrival (monotonic)."""
    return [(int(c.json["content"]), c.mono) for c in w.d.messages(channel)
            if (c.json.get("content") or "").isdigit()]


def notes(w: World, channel: str) -> list[tuple[str, float]]:
    """The bot's messages in a channel that are not countdown numbers."""
    return [(texts(c.json), c.mono) for c in w.d.messages(channel)
            if not (c.json.get("content") or "").isdigit()]


def duration(text: str) -> int:
    """'1h 5m', '3m 2s', '4s', '2d 3h' as a user reads them -> seconds."""
    units = {"d": 86400, "h": 3600, "m": 60, "s": 1}
    found = re.findall(r"(\d+)\s*([dhms])\b", text)
    assert found, f"no duration in {text!r}"
    return sum(int(n) * units[u] for n, u in found)


def mentions(text: str) -> list[str]:
    return _MENTION.findall(text)


def phone_friendly(answer: Answer, *, max_line: int = 80) -> None:
    """Short lines, no code-block tables (they wrap badly on a phone), a title."""
    embed = answer.embed
    assert embed.get("title") and len(embed["title"]) <= 60, embed
    body = answer.text
    assert "```" not in body, body
    for line in body.splitlines():
        assert len(_MENTION.sub("@someone", line)) <= max_line, line


# == voice tracking ==========================================================================
def test_voice_time_is_credited_to_the_second_and_bots_do_not_count(
    bot: BotProcess, world: World
) -> None:
    w, g = world, world.guild
    before = bot.metrics()
    joined = time.time()
    w.d.set_voice_state(g, w.alice, w.voice_a)
    w.d.set_voice_state(g, w.robot, w.voice_a)  # a bot user in the same channel
    wait(lambda: bot.rooms(g) == {w.voice_a: 1})
    assert metric(bot.metrics(), "tallyboard_discord_voice_sessions_open") == metric(
        before, "tallyboard_discord_voice_sessions_open") + 1
    time.sleep(1.5)
    # mute, deafen, video and streaming change nothing
    w.d.set_voice_state(g, w.alice, w.voice_a, self_mute=True, self_deaf=True)
    w.d.set_voice_state(g, w.alice, w.voice_a, self_video=True, self_stream=True)
    time.sleep(1.5)
    left = time.time()
    w.d.set_voice_state(g, w.alice, None)
    wait(lambda: bot.rooms(g) == {})

    spent = left - joined
    credited = bot.seconds(g, w.alice)
    assert abs(credited - spent) <= SLACK, (credited, spent)
    assert bot.seconds(g, w.alice, room=w.voice_a) == credited  # dimension room
    (session,) = bot.sessions(g, w.alice)  # one session: flag changes did not split it
    assert session["room"] == w.voice_a and session["end"] is not None
    assert abs(session["start"] - joined) <= SLACK and abs(session["end"] - left) <= SLACK
    assert bot.seconds(g, w.robot) == 0 and bot.sessions(g, w.robot) == []
    assert bot.migrations(g) == []
    time.sleep(1.0)
    assert bot.seconds(g, w.alice) == credited  # closed: nothing more after the leave
    board = bot.get("/v1/leaderboard", space=g, metric=METRIC, window="day")
    assert [e["member"] for e in board["entries"]] == [w.alice]
    assert metric(bot.metrics(), "tallyboard_discord_voice_sessions_open") == metric(
        before, "tallyboard_discord_voice_sessions_open")


def test_a_move_is_a_leave_and_a_join_at_the_same_second_and_a_migration(
    bot: BotProcess, world: World
) -> None:
    w, g = world, world.guild
    joined = time.time()
    w.d.set_voice_state(g, w.bob, w.voice_a)
    wait(lambda: bot.rooms(g) == {w.voice_a: 1})
    time.sleep(2.0)
    moved = time.time()
    w.d.set_voice_state(g, w.bob, w.voice_b)
    wait(lambda: bot.rooms(g) == {w.voice_b: 1})
    assert bot.migrations(g) == [{"from": w.voice_a, "to": w.voice_b, "count": 1}]
    time.sleep(1.5)
    left = time.time()
    w.d.set_voice_state(g, w.bob, None)
    wait(lambda: bot.rooms(g) == {})

    # leaving B within the migration window pairs with nothing: the join to A was made
    # before the session in B began (SPEC §7), so the move counts once, A -> B only
    assert bot.migrations(g) == [{"from": w.voice_a, "to": w.voice_b, "count": 1}]
    in_a, in_b = bot.seconds(g, w.bob, w.voice_a), bot.seconds(g, w.bob, w.voice_b)
    assert abs(in_a - (moved - joined)) <= SLACK and abs(in_b - (left - moved)) <= SLACK
    # no gap and no overlap at the move: the total is the time in voice
    assert abs(bot.seconds(g, w.bob) - (left - joined)) <= SLACK
    first, second = sorted(bot.sessions(g, w.bob), key=lambda s: s["start"])
    assert first["end"] == second["start"]
    moves = bot.get("/v1/migrations", space=g, member=w.bob)["moves"]
    assert any((m["from"], m["to"]) == (w.voice_a, w.voice_b)
               and abs(m["ts"] - moved) <= SLACK for m in moves), moves


def test_a_burst_of_moves_ends_with_the_member_where_discord_has_them(
    bot: BotProcess, world: World
) -> None:
    """Channel hopping faster than the bot's handlers run: the last state wins, nobody is
    left present in a channel they left (discord.py's cached voice states change under a
    handler that reads them late)."""
    w, g, d = world, world.guild, world.d
    hops = {w.alice: (w.voice_a, w.voice_b, None, w.voice_a, w.voice_b),
            w.bob: (w.voice_a, None), w.carol: (w.voice_a, None, w.voice_c),
            w.dave: (w.voice_b, w.voice_a, w.voice_b, w.voice_a)}
    for member, channels in hops.items():
        for channel in channels:
            d.set_voice_state(g, member, channel)
    expected = {w.voice_b: 1, w.voice_c: 1, w.voice_a: 1}
    wait(lambda: bot.rooms(g) == expected)
    time.sleep(1.0)
    assert bot.rooms(g) == expected
    for member, channels in hops.items():
        open_rooms = [s["room"] for s in bot.sessions(g, member) if s["end"] is None]
        assert open_rooms == [c for c in channels[-1:] if c], member
    assert bot.get("/v1/bot/errors", guild=g)["errors"] == []


def test_the_afk_channel_is_not_counted_and_moving_there_is_leaving(
    bot: BotProcess, world: World
) -> None:
    w, g = world, world.guild
    if not hasattr(w.d, "set_afk_channel"):
        pytest.skip("the stand-in cannot set a guild's AFK channel")
    w.d.set_afk_channel(g, w.afk)
    w.d.set_voice_state(g, w.carol, w.afk)
    time.sleep(1.0)
    assert bot.rooms(g) == {}
    start = time.time()
    w.d.set_voice_state(g, w.carol, w.voice_a)  # back from AFK: a join
    wait(lambda: bot.rooms(g) == {w.voice_a: 1})
    time.sleep(2.0)
    end = time.time()
    w.d.set_voice_state(g, w.carol, w.afk)  # idle: moved to AFK, which is leaving
    wait(lambda: bot.rooms(g) == {})
    time.sleep(1.0)
    assert abs(bot.seconds(g, w.carol) - (end - start)) <= SLACK
    assert bot.seconds(g, w.carol, room=w.afk) == 0
    assert bot.migrations(g) == []  # the AFK channel is no room: no moves to or from it


def test_settings_are_for_admins_and_tracked_channels_restrict_counting(
    bot: BotProcess, world: World
) -> None:
    w, g = world, world.guild
    before = bot.metrics()
    refused = slash(w, w.bob, "settings", {"track": w.voice_a})
    assert "Manage Server" in refused.text or "permission" in refused.text.lower()
    refused_text = say(w, w.text, w.bob, f"<@{w.d.bot_user['id']}> settings track_all: true")
    assert "permission" in refused_text[0].text.lower() or "Manage" in refused_text[0].text
    after = bot.metrics()
    assert metric(after, "tallyboard_discord_commands_total", command="settings",
                  outcome="denied") == metric(before, "tallyboard_discord_commands_total",
                                              command="settings", outcome="denied") + 2
    shown = slash(w, w.alice, "settings")  # no option: shows them, unchanged by bob
    assert w.voice_a not in shown.text
    phone_friendly(shown)

    # only A is tracked: carol in C is not counted, dave in A is
    answer = slash(w, w.alice, "settings", {"track": w.voice_a})
    assert f"<#{w.voice_a}>" in answer.text
    w.d.set_voice_state(g, w.carol, w.voice_c)
    w.d.set_voice_state(g, w.dave, w.voice_a)
    wait(lambda: bot.rooms(g) == {w.voice_a: 1})
    time.sleep(0.5)
    assert bot.rooms(g) == {w.voice_a: 1}
    # a category tracks the channels in it
    slash(w, w.alice, "settings", {"track": w.category})
    w.d.set_voice_state(g, w.bob, w.voice_b)
    wait(lambda: bot.rooms(g) == {w.voice_a: 1, w.voice_b: 1})
    time.sleep(0.5)
    assert w.voice_c not in bot.rooms(g)
    # track_all: every voice channel again
    slash(w, w.alice, "settings", {"track_all": True})
    w.d.set_voice_state(g, w.carol, None)
    w.d.set_voice_state(g, w.carol, w.voice_c)
    wait(lambda: bot.rooms(g) == {w.voice_a: 1, w.voice_b: 1, w.voice_c: 1})


def test_untracking_a_channel_stops_counting_the_members_already_in_it(
    bot: BotProcess, world: World
) -> None:
    w, g = world, world.guild
    w.d.set_voice_state(g, w.alice, w.voice_a)
    w.d.set_voice_state(g, w.bob, w.voice_c)
    wait(lambda: bot.rooms(g) == {w.voice_a: 1, w.voice_c: 1})
    slash(w, w.alice, "settings", {"track": w.voice_a})  # C is no longer tracked
    changed = time.time()
    time.sleep(2.0)
    assert bot.rooms(g) == {w.voice_a: 1}
    (session,) = bot.sessions(g, w.bob)
    assert session["end"] is not None and abs(session["end"] - changed) <= SLACK


def test_untracking_a_channel_while_tracking_everything_stops_counting_it(
    bot: BotProcess, world: World
) -> None:
    """The option says 'Stop counting this channel or category'. (Before fc7e8e3 it
    changed nothing and said nothing while every channel was tracked.)"""
    w, g = world, world.guild
    w.d.set_voice_state(g, w.carol, w.voice_c)
    w.d.set_voice_state(g, w.dave, w.voice_a)
    wait(lambda: bot.rooms(g) == {w.voice_a: 1, w.voice_c: 1})
    answer = slash(w, w.alice, "settings", {"untrack": w.voice_c})
    time.sleep(0.5)
    # either C is no longer counted, or the admin is told why not
    assert bot.rooms(g) == {w.voice_a: 1} or f"<#{w.voice_c}>" in answer.text, (
        bot.rooms(g), answer.text)


def test_settings_timezone_and_daily_reset_change_the_metric_calendar(
    bot: BotProcess, world: World
) -> None:
    w, g = world, world.guild
    w.d.set_voice_state(g, w.alice, w.voice_a)  # some data, so the change needs a rebuild
    wait(lambda: bot.rooms(g) == {w.voice_a: 1})
    answer = slash(w, w.alice, "settings", {"timezone": "Mars/Olympus_Mons"})
    assert "Mars/Olympus_Mons" in answer.text  # a friendly refusal naming what was wrong
    assert bot.get(f"/v1/metrics/{METRIC}", space=g)["timezone"] == "UTC"
    answer = slash(w, w.alice, "settings", {"reset": "25:99"})
    assert bot.get(f"/v1/metrics/{METRIC}", space=g)["day_start"] == "00:00"

    answer = slash(w, w.alice, "settings", {"timezone": "Europe/Berlin", "reset": "17:00"})
    assert "17:00" in answer.text and "Europe/Berlin" in answer.text
    config = bot.get(f"/v1/metrics/{METRIC}", space=g)
    assert (config["timezone"], config["day_start"]) == ("Europe/Berlin", "17:00")
    # the same as text after a mention
    mention = f"<@{w.d.bot_user['id']}>"
    say(w, w.text, w.alice, f"{mention} settings timezone: UTC reset: 17:00")
    config = bot.get(f"/v1/metrics/{METRIC}", space=g)
    assert (config["timezone"], config["day_start"]) == ("UTC", "17:00")
    assert bot.rooms(g) == {w.voice_a: 1}  # the rebuild kept the open session
    assert bot.seconds(g, w.alice) >= 1


# == commands ================================================================================
def _lines(answer: Answer) -> list[str]:
    return [line for line in (answer.embed.get("description") or "").splitlines()
            if mentions(line)]


def test_top_windows_and_n_agree_with_the_api_and_read_well(
    bot: BotProcess, world: World
) -> None:
    w, g = world, world.guild
    now = int(time.time())
    room = w.voice_c
    # history written to the API: carol long ago (all time only), dave 20-21 h ago,
    # bob 26-25 h ago (not in the rolling 24 h), then alice live in voice now
    bot.seed(g, [
        {"type": "join", "room": room, "member": w.carol, "ts": now - 400 * 86400},
        {"type": "leave", "room": room, "member": w.carol, "ts": now - 400 * 86400 + 3 * 3600},
        {"type": "join", "room": room, "member": w.bob, "ts": now - 26 * 3600},
        {"type": "leave", "room": room, "member": w.bob, "ts": now - 25 * 3600},
        {"type": "join", "room": room, "member": w.dave, "ts": now - 21 * 3600},
        {"type": "leave", "room": room, "member": w.dave, "ts": now - 20 * 3600 - 1800},
    ])
    w.d.set_voice_state(g, w.alice, w.voice_a)
    wait(lambda: bot.rooms(g) == {w.voice_a: 1})
    time.sleep(1.2)

    windows = {"day": "day", "week": "week", "month": "month", "all": "all",
               "24h": "rolling:24h"}
    seen = {}
    for option, api_window in windows.items():
        answer = slash(w, w.bob, "top", {"window": option, "n": 25})
        board = bot.get("/v1/leaderboard", space=g, metric=METRIC, window=api_window, n=25)
        expected = [e["member"] for e in board["entries"]]
        assert [mentions(line)[0] for line in _lines(answer)] == expected, option
        seen[option] = expected
        phone_friendly(answer)
    assert seen["all"] == [w.carol, w.bob, w.dave, w.alice]  # 3 h, 1 h, 30 min, live
    assert seen["24h"] == [w.dave, w.alice]
    # the all-time board shows carol's three hours as hours, not as 10800 seconds
    top_all = slash(w, w.bob, "top", {"window": "all"})
    assert duration(_lines(top_all)[0].split(f"<@{w.carol}>")[1]) == 3 * 3600
    assert "10800" not in top_all.text
    # the default window is the day
    default = slash(w, w.bob, "top")
    assert [mentions(line)[0] for line in _lines(default)] == seen["day"]
    # n limits the lines
    for n in (1, 2):
        assert len(_lines(slash(w, w.bob, "top", {"window": "all", "n": n}))) == n
    # the same as text after a mention
    mention = f"<@{w.d.bot_user['id']}>"
    (answer,) = say(w, w.text, w.bob, f"{mention} top all 2")
    assert [mentions(line)[0] for line in _lines(answer)] == seen["all"][:2]
    (answer,) = say(w, w.text, w.bob, f"{mention} top 24h")
    assert [mentions(line)[0] for line in _lines(answer)] == seen["24h"]


def test_top_with_a_bad_window_or_n_gets_a_friendly_answer(
    bot: BotProcess, world: World
) -> None:
    w = world
    empty = slash(w, w.bob, "top")  # nobody has been in voice yet
    assert empty.text.strip() and "Traceback" not in empty.text
    nobody = slash(w, w.bob, "stats", {"member": w.dave})  # no time at all: zeros, a chart
    assert "None" not in nobody.text and nobody.uploads
    mention = f"<@{w.d.bot_user['id']}>"
    before = bot.metrics()
    (bad_window,) = say(w, w.text, w.bob, f"{mention} top fortnight")
    (bad_n,) = say(w, w.text, w.bob, f"{mention} top week 0")
    (unknown,) = say(w, w.text, w.bob, f"{mention} dance")
    for answer in (bad_window, bad_n, unknown):
        assert answer.text.strip(), answer
    assert "fortnight" in bad_window.text or "day" in bad_window.text
    after = bot.metrics()
    name = "tallyboard_discord_invalid_commands_total"
    assert metric(after, name) - metric(before, name) == 3


def test_stats_show_four_periods_with_ranks_streaks_and_a_chart(
    bot: BotProcess, world: World
) -> None:
    w, g = world, world.guild
    now = int(time.time())
    today = now - now % 86400  # a new guild's calendar is UTC, days start at 00:00
    room = w.voice_c
    ops: list[dict[str, Any]] = []
    for back in (3, 2, 1):  # alice: 2 minutes on each of the last three days
        start = today - back * 86400 + 3600
        ops += [{"type": "join", "room": room, "member": w.alice, "ts": start},
                {"type": "leave", "room": room, "member": w.alice, "ts": start + 120}]
    start = today - 86400 + 7200  # bob: 10 minutes yesterday
    ops += [{"type": "join", "room": room, "member": w.bob, "ts": start},
            {"type": "leave", "room": room, "member": w.bob, "ts": start + 600}]
    bot.seed(g, sorted(ops, key=lambda o: o["ts"]))
    w.d.set_voice_state(g, w.alice, w.voice_a)
    wait(lambda: bot.rooms(g) == {w.voice_a: 1})
    time.sleep(1.2)

    answer = slash(w, w.alice, "stats")
    embed = answer.embed
    fields = {f["name"]: f["value"] for f in embed.get("fields") or []}
    periods = {"Today": "day", "This week": "week", "This month": "month", "All time": "all"}
    assert set(periods) <= set(fields), fields
    for name, window in periods.items():
        rank = bot.get("/v1/rank", space=g, metric=METRIC, member=w.alice, window=window)
        found = re.search(r"#(\d+)\D+(\d+)", fields[name])
        assert found, fields[name]
        assert (int(found[1]), int(found[2])) == (rank["rank"], rank["total"]), name
        shown = fields[name].split("#")[0]
        # shown to the second, or to the minute ("6m") once there are minutes
        assert abs(duration(shown) - rank["score"]) <= (SLACK if "s" in shown else 60), name
    streak = bot.get("/v1/streak", space=g, metric=METRIC, member=w.alice, min=60)
    assert (streak["current"]["length"], streak["longest"]["length"]) == (3, 3)
    streak_text = next(v for k, v in fields.items() if "streak" in k.lower())
    assert re.findall(r"(\d+) days?", streak_text)[:2] == ["3", "3"], streak_text
    # a chart of the last 14 days, as a PNG attached to the embed
    (upload,) = answer.uploads
    assert upload.filename.endswith(".png") and upload.data.startswith(b"\x89PNG\r\n\x1a\n")
    assert embed.get("image", {}).get("url") == f"attachment://{upload.filename}"
    with Image.open(io.BytesIO(upload.data)) as image:
        assert image.format == "PNG"
        assert 300 <= image.width <= 2000 and 150 <= image.height <= 1200
    phone_friendly(answer)

    # another member's stats, and the streak command
    other = slash(w, w.alice, "stats", {"member": w.bob})
    assert w.bob in mentions(other.text) and other.uploads
    bob_all = bot.get("/v1/rank", space=g, metric=METRIC, member=w.bob, window="all")
    bob_fields = {f["name"]: f["value"] for f in other.embed.get("fields") or []}
    assert duration(bob_fields["All time"].split("#")[0]) == bob_all["score"] == 600
    streaks = slash(w, w.alice, "streak")
    assert re.search(r"\b3 days\b", streaks.text), streaks.text
    # an admin asks for 3 minutes a day: alice's 2-minute days no longer make a streak
    slash(w, w.alice, "settings", {"streak_minutes": "3"})
    assert "3 min" in slash(w, w.alice, "settings").text
    stricter = slash(w, w.alice, "streak")
    assert re.search(r"\b0 days\b", stricter.text) and "3 min" in stricter.text, stricter.text
    bob_streak = slash(w, w.alice, "streak", {"member": w.bob})
    assert w.bob in mentions(bob_streak.text)


def test_text_commands_work_after_a_mention_and_in_a_dm(bot: BotProcess, world: World) -> None:
    w, g = world, world.guild
    w.d.set_voice_state(g, w.alice, w.voice_a)
    wait(lambda: bot.rooms(g) == {w.voice_a: 1})
    time.sleep(1.1)
    bot_id = w.d.bot_user["id"]
    (top,) = say(w, w.text, w.bob, f"<@{bot_id}> top week 5")
    assert "week" in top.embed["title"].lower() and mentions(top.text)[0] == w.alice
    (stats,) = say(w, w.text, w.alice, f"<@!{bot_id}> stats")  # the nickname mention form
    assert stats.uploads and stats.uploads[0].data.startswith(b"\x89PNG")
    # no mention, no answer (only countdown words need none)
    count = len(w.d.messages(w.text))
    w.d.send_message(w.text, w.bob, "top week")
    assert silent(w, w.text, count)
    # in a DM: about the guild alice shares with the bot (she is in its voice channel)
    dm = w.d.open_dm(w.alice)
    (top_dm,) = say(w, dm, w.alice, "top")
    assert w.alice in mentions(top_dm.text) and w.name in top_dm.text
    (stats_dm,) = say(w, dm, w.alice, "stats")
    assert stats_dm.uploads and w.alice in mentions(stats_dm.text)
    slash_dm = slash(w, w.alice, "top", {"window": "all"}, channel=dm)  # slash, in the DM
    assert w.alice in mentions(slash_dm.text) and w.name in slash_dm.text
    # dave is in the guild but never in voice: the bot cannot know which server he means
    # (docs: "as far as its cache knows"); it must say so, or answer about his server
    (unknown,) = say(w, w.d.open_dm(w.dave), w.dave, "top")
    assert "server" in unknown.text.lower() or w.name in unknown.text, unknown.text


# == countdowns ===============================================================================
def test_countdowns_tick_on_an_absolute_clock_in_two_channels_at_once(
    bot: BotProcess, world: World
) -> None:
    w = world
    before = bot.metrics()
    started_a = time.monotonic()
    w.d.send_message(w.text, w.bob, "count to 5")
    time.sleep(0.4)
    started_b = time.monotonic()
    w.d.send_message(w.text2, w.carol, "count to 4")
    time.sleep(1.5)
    running = bot.get("/v1/bot/countdowns")["countdowns"]
    mine = {c["channel"]: c["target"] for c in running if c["guild"] == w.guild}
    assert mine == {w.text: 5, w.text2: 4}
    wait(lambda: len(ticks(w, w.text)) == 5 and len(ticks(w, w.text2)) == 4, 8)

    for channel, start, n in ((w.text, started_a, 5), (w.text2, started_b, 4)):
        got = ticks(w, channel)
        assert [k for k, _ in got] == list(range(1, n + 1))
        for k, at in got:  # tick k at start + k s (not start + k·(1 s + send time))
            assert k - 0.05 <= at - start <= k + 0.35, (channel, k, at - start)
        gaps = [b - a for (_, a), (_, b) in itertools.pairwise(got)]
        assert all(0.75 <= gap <= 1.25 for gap in gaps), gaps
        assert abs((got[-1][1] - got[0][1]) - (n - 1)) <= 0.15  # no drift over the count
        assert notes(w, channel) == []  # compatible: the numbers, nothing else
    # the two counts overlapped in time
    assert ticks(w, w.text2)[0][1] < ticks(w, w.text)[-1][1]
    assert silent(w, w.text, 5, 1.2)

    after = bot.metrics()
    assert metric(after, "tallyboard_discord_commands_total", command="count", outcome="ok") - \
        metric(before, "tallyboard_discord_commands_total", command="count", outcome="ok") == 2
    assert metric(after, "tallyboard_discord_countdown_target_count") - \
        metric(before, "tallyboard_discord_countdown_target_count") == 2
    assert metric(after, "tallyboard_discord_countdown_target_sum") - \
        metric(before, "tallyboard_discord_countdown_target_sum") == 9
    assert metric(after, "tallyboard_discord_tick_lateness_seconds_count") - \
        metric(before, "tallyboard_discord_tick_lateness_seconds_count") == 9
    late = metric(after, "tallyboard_discord_tick_lateness_seconds_sum") - \
        metric(before, "tallyboard_discord_tick_lateness_seconds_sum")
    assert 0 <= late <= 9 * 0.3
    assert [c for c in bot.get("/v1/bot/countdowns")["countdowns"] if c["guild"] == w.guild] == []


def test_stop_ends_a_countdown_and_stop_or_count_at_the_wrong_time_is_wrong(
    bot: BotProcess, world: World
) -> None:
    w = world
    before = bot.metrics()
    (nothing,) = say(w, w.text, w.bob, "stop")  # nothing counts anywhere
    assert nothing.text.strip()
    assert ticks(w, w.text) == []

    w.d.send_message(w.text, w.bob, "count to 30")
    wait(lambda: len(ticks(w, w.text)) == 1, 3)
    (elsewhere,) = say(w, w.text2, w.bob, "stop")  # nothing counts in *this* channel
    assert elsewhere.text.strip() and not elsewhere.text.strip().isdigit()
    wait(lambda: len(ticks(w, w.text)) == 2, 3)  # the other channel's count goes on
    (busy,) = say(w, w.text, w.carol, "count to 3")  # one countdown per channel
    assert busy.text.strip() and not busy.text.strip().isdigit()
    running = [c for c in bot.get("/v1/bot/countdowns")["countdowns"] if c["guild"] == w.guild]
    assert [(c["channel"], c["target"]) for c in running] == [(w.text, 30)]
    stopped_at = time.monotonic()
    w.d.send_message(w.text, w.bob, "stop")
    time.sleep(2.0)
    late = [k for k, at in ticks(w, w.text) if at > stopped_at + 0.1]
    assert late == [], late
    assert [k for k, _ in ticks(w, w.text)] == list(range(1, len(ticks(w, w.text)) + 1))
    assert [c for c in bot.get("/v1/bot/countdowns")["countdowns"] if c["guild"] == w.guild] == []
    (again,) = say(w, w.text, w.bob, "stop")  # stopped: a second stop is wrong again
    assert again.text.strip()

    after = bot.metrics()

    def delta(name: str, **labels: str) -> float:
        return metric(after, name, **labels) - metric(before, name, **labels)

    assert delta("tallyboard_discord_wrong_commands_total") == 4
    assert delta("tallyboard_discord_commands_total", command="stop", outcome="wrong") == 3
    assert delta("tallyboard_discord_commands_total", command="count", outcome="wrong") == 1
    assert delta("tallyboard_discord_commands_total", command="stop", outcome="ok") == 1
    assert delta("tallyboard_discord_countdowns_cancelled_total") == 1
    assert delta("tallyboard_discord_invalid_commands_total") == 0


def test_two_counts_arriving_together_make_one_countdown(
    bot: BotProcess, world: World
) -> None:
    """Two 'count to' in the same instant (two users): one countdown, one busy answer.
    (Before fc7e8e3 both started: Discord got 1, 1, 2, 2.)"""
    w = world
    w.d.send_message(w.text, w.bob, "count to 2")
    w.d.send_message(w.text, w.carol, "count to 2")  # the same instant, another user
    time.sleep(2.7)
    assert [k for k, _ in ticks(w, w.text)] == [1, 2]
    assert len(notes(w, w.text)) == 1  # the second one is told a count runs here


def test_stop_right_after_count_stops_it(bot: BotProcess, world: World) -> None:
    """'stop' in the same instant as the 'count to' before it stops it. (Before fc7e8e3
    it was answered 'Nothing is counting here' and the count ran.)"""
    w = world
    w.d.send_message(w.text, w.bob, "count to 2")
    w.d.send_message(w.text, w.carol, "stop")
    time.sleep(1.5)
    assert ticks(w, w.text) == [], notes(w, w.text)


def test_the_busy_answer_reads_well(bot: BotProcess, world: World) -> None:
    """(Before fc7e8e3 it read 'I am already counting here (1so far)'.)"""
    w = world
    w.d.send_message(w.text, w.bob, "count to 9")
    wait(lambda: ticks(w, w.text), 3)
    (busy,) = say(w, w.text, w.carol, "count to 3")
    w.d.send_message(w.text, w.bob, "stop")
    assert "stop" in busy.text and not re.search(r"\d[^\W\d_]", busy.text), busy.text


def test_counts_out_of_range_or_in_words_get_a_friendly_answer(
    bot: BotProcess, world: World
) -> None:
    w = world
    before = bot.metrics()
    for words, explains in (("count to 0", r"1 to 9,?999"), ("count to 10000", r"9,?999"),
                            ("count to five", r"five.*number|number.*five")):
        (answer,) = say(w, w.text, w.bob, words)
        assert re.search(explains, answer.text), answer.text
        assert "Traceback" not in answer.text and not answer.text.strip().isdigit()
    assert silent(w, w.text, 3, 1.3) and ticks(w, w.text) == []
    # the edges are fine: 1 counts once, 9999 starts (and is stopped)
    w.d.send_message(w.text2, w.bob, "count to 1")
    wait(lambda: ticks(w, w.text2), 3)
    w.d.send_message(w.text, w.bob, "count to 9999")
    wait(lambda: ticks(w, w.text), 3)
    w.d.send_message(w.text, w.bob, "stop")
    time.sleep(0.5)
    assert [k for k, _ in ticks(w, w.text2)] == [1]

    after = bot.metrics()
    assert metric(after, "tallyboard_discord_invalid_commands_total") - \
        metric(before, "tallyboard_discord_invalid_commands_total") == 3
    assert metric(after, "tallyboard_discord_commands_total", command="count",
                  outcome="invalid") - metric(before, "tallyboard_discord_commands_total",
                                              command="count", outcome="invalid") == 3
    assert metric(after, "tallyboard_discord_countdown_target_bucket", le="1.0") - \
        metric(before, "tallyboard_discord_countdown_target_bucket", le="1.0") == 1


def test_rate_limits_delay_ticks_but_never_reorder_or_repeat_them(
    bot: BotProcess, world: World
) -> None:
    w = world
    path = f"/channels/{w.text}/messages"
    w.d.force_429(f"^{re.escape(path)}$", times=3, retry_after=0.7, method="POST")
    started = time.monotonic()
    w.d.send_message(w.text, w.bob, "count to 5")
    wait(lambda: len(ticks(w, w.text)) == 5, 10)
    time.sleep(0.5)
    got = ticks(w, w.text)
    assert [k for k, _ in got] == [1, 2, 3, 4, 5]  # each once, in order
    assert [c.status for c in w.d.calls(f"^{re.escape(path)}$")][:3] == [429, 429, 429]
    # late while Discord said wait, then back on the clock: tick 5 at start + 5 s
    assert got[0][1] - started >= 1 + 3 * 0.7 - 0.1
    assert got[-1][1] - started <= 5 + 0.6, got[-1][1] - started
    assert notes(w, w.text) == []


# == errors =====================================================================================
def test_a_countdown_that_cannot_send_is_kept_as_an_error(
    bot: BotProcess, world: World
) -> None:
    w = world
    before = bot.metrics()
    path = f"/channels/{w.text2}/messages"
    w.d.force_error(f"^{re.escape(path)}$", times=1, status=403, method="POST")
    sent = time.time()
    w.d.send_message(w.text2, w.bob, "count to 3")
    kept = wait(lambda: bot.get("/v1/bot/errors", guild=w.guild)["errors"], 5)
    (error,) = kept
    assert error["kind"] == "general" and error["guild"] == w.guild
    assert error["channel"] == w.text2 and error["command"] == "count"
    assert sent - 1 <= error["at"] <= time.time() + 1
    assert "403" in error["error"] or "Missing Access" in error["error"]
    assert error["traceback"].strip()
    assert bot.get("/v1/bot/errors", guild=w.guild, kind="command")["errors"] == []
    assert bot.get("/v1/bot/errors", limit=1)["errors"] == [error]  # newest first
    after = bot.metrics()
    assert metric(after, "tallyboard_discord_errors_total", kind="general") - \
        metric(before, "tallyboard_discord_errors_total", kind="general") == 1

    cli = [sys.executable, "-m", "tallyboard.cli", "errors", "--data", str(bot.data)]
    listed = subprocess.run([*cli, "--json", "--guild", w.guild], capture_output=True,
                            text=True, timeout=30, check=True)
    (row,) = json.loads(listed.stdout)["errors"]
    assert (row["id"], row["kind"], row["channel"]) == (error["id"], "general", w.text2)
    table = subprocess.run([*cli, "--guild", w.guild], capture_output=True, text=True,
                           timeout=30, check=True)
    assert "count" in table.stdout and "general" in table.stdout
    # the channel works again: a new count counts
    w.d.send_message(w.text2, w.bob, "count to 2")
    wait(lambda: [k for k, _ in ticks(w, w.text2)] == [1, 2], 5)


def test_a_command_whose_answer_fails_is_kept_as_a_command_error(
    bot: BotProcess, world: World
) -> None:
    w = world
    w.d.force_error(r"^/interactions/\d+/[^/]+/callback$", times=1, status=404, method="POST")
    w.d.run_slash_command(w.text, w.bob, "top", {"window": "week"})
    (error,) = wait(lambda: bot.get("/v1/bot/errors", guild=w.guild, kind="command")["errors"])
    assert error["command"] == "top" and error["channel"] == w.text
    assert error["traceback"].strip()
    # the next one works
    assert "week" in slash(w, w.bob, "top", {"window": "week"}).embed["title"].lower()
    # a text command whose reply is refused once: kept, and the user is told its number
    w.d.force_error(f"^/channels/{w.text2}/messages$", times=1, status=403, method="POST")
    before = len(w.d.messages(w.text2))
    w.d.send_message(w.text2, w.bob, f"<@{w.d.bot_user['id']}> stats")
    told = wait(lambda: w.d.messages(w.text2)[before:])
    kept = bot.get("/v1/bot/errors", guild=w.guild, kind="command")["errors"]
    assert [e["command"] for e in kept] == ["stats", "top"]  # newest first
    assert f"error #{kept[0]['id']}" in texts(told[0].json), texts(told[0].json)


# == metrics ====================================================================================
def test_metrics_lists_every_documented_bot_metric(bot: BotProcess) -> None:
    text = httpx.get(bot.url + "/metrics", timeout=5).text
    families = {f.name: f.type for f in text_string_to_metric_families(text)}
    documented = {
        "tallyboard_discord_commands": "counter",
        "tallyboard_discord_invalid_commands": "counter",
        "tallyboard_discord_wrong_commands": "counter",
        "tallyboard_discord_countdowns_cancelled": "counter",
        "tallyboard_discord_countdown_target": "histogram",
        "tallyboard_discord_tick_lateness_seconds": "histogram",
        "tallyboard_discord_voice_update_seconds": "histogram",
        "tallyboard_discord_voice_sessions_open": "gauge",
        "tallyboard_discord_countdowns_running": "gauge",
        "tallyboard_discord_gateway_reconnects": "counter",
        "tallyboard_discord_errors": "counter",
        "tallyboard_http_requests": "counter",  # tallyboard's own, beside the bot's
    }
    assert {name: families.get(name) for name in documented} == documented


# == gateway drops and restarts ===================================================================
def test_a_dropped_gateway_resumes_and_an_invalid_session_reconciles(
    bot: BotProcess, world: World
) -> None:
    w, g, d = world, world.guild, world.d
    before = bot.metrics()
    joined = time.time()
    d.set_voice_state(g, w.alice, w.voice_a)
    wait(lambda: bot.rooms(g) == {w.voice_a: 1})
    resumes = d.resumes
    d.drop(4000)
    bob_joined = time.time()
    d.set_voice_state(g, w.bob, w.voice_a)  # while disconnected: replayed on RESUME
    wait(lambda: d.resumes > resumes and d.connected, 10)
    wait(lambda: bot.rooms(g) == {w.voice_a: 2})
    (bob_session,) = bot.sessions(g, w.bob)
    assert abs(bob_session["start"] - bob_joined) <= SLACK

    identifies = d.identifies
    d.invalidate_session()
    bob_left = time.time()
    d.set_voice_state(g, w.bob, None)  # missed for good: the session is gone
    d.set_voice_state(g, w.carol, w.voice_b)
    d.drop(1001)
    wait(lambda: d.identifies > identifies and d.connected, 15)
    back = time.time()
    wait(lambda: bot.rooms(g) == {w.voice_a: 1, w.voice_b: 1}, 5)
    time.sleep(1.0)

    # alice stayed: one session, every second counted once
    (alice_session,) = bot.sessions(g, w.alice)
    assert alice_session["end"] is None
    bot.credited_since(g, w.alice, joined)
    # bob left while the bot was away: counted until it was back (Discord does not say when)
    (bob_session,) = bot.sessions(g, w.bob)
    assert bob_session["end"] is not None
    assert bob_left - SLACK <= bob_session["end"] <= back + SLACK
    # carol arrived while away: joined when the bot saw her
    (carol_session,) = bot.sessions(g, w.carol)
    assert carol_session["end"] is None and carol_session["start"] <= back + SLACK
    assert bot.migrations(g) == []
    _sessions_open_match_presence(bot)
    after = bot.metrics()
    assert metric(after, "tallyboard_discord_gateway_reconnects_total") - \
        metric(before, "tallyboard_discord_gateway_reconnects_total") == 2


def test_a_clean_restart_keeps_voice_sessions_tracking_and_countdowns(
    bot: BotProcess, world: World
) -> None:
    w, g, d = world, world.guild, world.d
    slash(w, w.alice, "settings", {"track": w.voice_a})
    slash(w, w.alice, "settings", {"track": w.category})  # A and B tracked, C not
    joined = time.time()
    d.set_voice_state(g, w.alice, w.voice_a)
    d.set_voice_state(g, w.bob, w.voice_b)
    d.set_voice_state(g, w.carol, w.voice_c)
    wait(lambda: bot.rooms(g) == {w.voice_a: 1, w.voice_b: 1})
    started = time.monotonic()
    d.send_message(w.text, w.dave, "count to 6")
    wait(lambda: len(ticks(w, w.text)) == 2, 4)

    bot.stop()  # SIGTERM
    away = time.time()
    d.set_voice_state(g, w.bob, w.voice_a)  # moved while the bot was away
    d.set_voice_state(g, w.carol, w.voice_b)  # from untracked C to tracked B
    d.set_voice_state(g, w.dave, w.voice_b)  # arrived
    bot.start()
    back = time.time()
    wait(lambda: bot.rooms(g) == {w.voice_a: 2, w.voice_b: 2})
    wait(lambda: ticks(w, w.text) and ticks(w, w.text)[-1][0] == 6, 10)
    time.sleep(0.8)

    (alice_session,) = bot.sessions(g, w.alice)  # no second join, no gap
    assert alice_session["end"] is None
    bot.credited_since(g, w.alice, joined)
    in_b, in_a = sorted(bot.sessions(g, w.bob), key=lambda s: s["start"])
    assert (in_b["room"], in_a["room"], in_a["end"]) == (w.voice_b, w.voice_a, None)
    assert away - SLACK <= in_b["end"] == in_a["start"] <= back + SLACK
    (carol_session,) = bot.sessions(g, w.carol)  # C never counted, B from the reconnect
    assert carol_session["room"] == w.voice_b
    assert away - SLACK <= carol_session["start"] <= back + SLACK
    (dave_session,) = bot.sessions(g, w.dave)
    assert dave_session["end"] is None and away - SLACK <= dave_session["start"] <= back + 1
    assert bot.migrations(g) == [{"from": w.voice_b, "to": w.voice_a, "count": 1}]
    _sessions_open_match_presence(bot)

    _check_resumed_count(w, w.text, started, 6, bot.launched)


def _sessions_open_match_presence(bot: BotProcess) -> None:
    """The voice-sessions gauge counts who the API says is present, over all guilds."""
    present = sum(sum(bot.rooms(guild).values()) for guild in GUILDS)
    assert metric(bot.metrics(), "tallyboard_discord_voice_sessions_open") == present


def _check_resumed_count(
    w: World, channel: str, started: float, n: int, launched: float
) -> tuple[int, int]:
    """After a restart (the process launched at `launched`): numbers in order, none twice,
    ending at n; the skipped ones named in one note, and exactly those whose time had passed
    more than a second when the bot was back (between its launch and its first message)."""
    got = ticks(w, channel)
    numbers = [k for k, _ in got]
    assert numbers == sorted(set(numbers)) and numbers[-1] == n, numbers  # in order, once
    after = [(k, at) for k, at in got if at > launched]
    said = [(text, at) for text, at in notes(w, channel) if at > launched]
    assert len(said) <= 1, said
    skipped: set[int] = set()
    first_after = min([at for _, at in after] + [at for _, at in said])
    if said:
        found = re.search(r"skipped (\d+)(?:\s*[–-]\s*(\d+))?", said[0][0])
        assert found, said[0][0]
        skipped = set(range(int(found[1]), int(found[2] or found[1]) + 1))
    assert not skipped & set(numbers)
    missing = set(range(1, n + 1)) - set(numbers) - skipped
    assert len(missing) <= 1, (missing, got, said)  # at most one marked but not delivered
    for k in skipped:  # skipped: due more than a second before the bot was back
        assert started + k <= first_after - 1 + 0.1, (k, first_after - started)
    for k, _ in after:  # sent: not overdue by more than a second when the bot was back
        assert started + k >= launched - 1 - 0.1, (k, launched - started)
    return len(skipped), len(after)


def test_kill_9_loses_no_voice_time_and_resumes_countdowns_by_the_clock(
    bot: BotProcess, world: World
) -> None:
    w, g, d = world, world.guild, world.d
    if hasattr(d, "set_afk_channel"):
        d.set_afk_channel(g, w.afk)
        d.set_voice_state(g, w.dave, w.afk)  # AFK: not counted, live or on reconcile
    joined = time.time()
    d.set_voice_state(g, w.alice, w.voice_a)
    d.set_voice_state(g, w.carol, w.voice_b)
    d.set_voice_state(g, w.robot, w.voice_a)  # a bot: not counted, live or on reconcile
    wait(lambda: bot.rooms(g) == {w.voice_a: 1, w.voice_b: 1})
    started_short = time.monotonic()
    d.send_message(w.text2, w.bob, "count to 4")  # will end while the bot is dead
    time.sleep(0.2)
    started = time.monotonic()
    d.send_message(w.text, w.bob, "count to 9")
    # a third channel whose first tick is stuck in a long 429 when the bot dies: that tick
    # was marked as sent, so it is lost, never sent after the restart
    stuck = d.add_text_channel(g, "stuck")
    stuck_path = f"^/channels/{stuck}/messages$"
    time.sleep(1.2)
    d.force_429(stuck_path, times=1, retry_after=6.0, method="POST")
    started_stuck = time.monotonic()
    d.send_message(stuck, w.bob, "count to 6")
    wait(lambda: d.calls(stuck_path), 3)
    wait(lambda: len(ticks(w, w.text)) == 3, 5)

    bot.kill9()
    carol_left = time.time()
    d.set_voice_state(g, w.carol, None)
    d.set_voice_state(g, w.bob, w.voice_a)
    time.sleep(max(0.0, started + 5.0 - time.monotonic()))  # dead through ticks 4 and 5
    bot.start()
    back = time.time()
    wait(lambda: bot.rooms(g) == {w.voice_a: 2})
    wait(lambda: ticks(w, w.text)[-1][0] == 9, 10)
    time.sleep(0.8)

    skipped, sent_after = _check_resumed_count(w, w.text, started, 9, bot.launched)
    assert skipped >= 1 and sent_after >= 2
    wait(lambda: ticks(w, stuck) and ticks(w, stuck)[-1][0] == 6, 5)
    assert 1 not in [k for k, _ in ticks(w, stuck)], ticks(w, stuck)  # lost, not repeated
    assert d.calls(stuck_path)[0].status == 429
    _check_resumed_count(w, stuck, started_stuck, 6, bot.launched)
    # the short count ended while the bot was away: a note, no late numbers
    assert [k for k, _ in ticks(w, w.text2)] == [1, 2, 3]
    assert any(at >= started_short + 4 for _, at in notes(w, w.text2)), notes(w, w.text2)
    # (a count is listed until discord.py returns from its last send, which waits for the
    # channel's rate-limit window when that send used its last slot)
    wait(lambda: not [c for c in bot.get("/v1/bot/countdowns")["countdowns"]
                      if c["guild"] == g], 4)

    (alice_session,) = bot.sessions(g, w.alice)
    assert alice_session["end"] is None
    bot.credited_since(g, w.alice, joined)
    (carol_session,) = bot.sessions(g, w.carol)  # closed when the bot was back
    assert carol_left - SLACK <= carol_session["end"] <= back + SLACK
    (bob_session,) = bot.sessions(g, w.bob)
    assert bob_session["end"] is None and carol_left - SLACK <= bob_session["start"] <= back + 1
    bot.credited_since(g, w.bob, bob_session["start"])
    assert bot.sessions(g, w.robot) == [] and bot.sessions(g, w.dave) == []
    _sessions_open_match_presence(bot)


# == reporting to a tallyboard server by URL ==============================================
def test_reporting_to_a_server_by_url_waits_out_the_server_being_down(tmp_path: Path) -> None:
    """A bot of its own against a stand-in of its own: `--url` to a `tallyboard serve`,
    which is stopped for a while; voice changes meanwhile arrive late but in order, with
    the times they happened."""
    (tmp_path / "bot").mkdir()
    with DiscordStandIn() as d:
        guild = d.add_guild("By URL")
        voice_a, voice_b = d.add_voice_channel(guild, "A"), d.add_voice_channel(guild, "B")
        alice, bob = d.add_user("alice"), d.add_user("bob")
        for user in (alice, bob):
            d.add_member(guild, user)
        server = ServeProcess(tmp_path / "server")
        bot = BotProcess(d, tmp_path / "bot" / "data", "--url", server.url)
        try:
            server.start()
            bot.start()
            joined = time.time()
            d.set_voice_state(guild, alice, voice_a)
            wait(lambda: server.rooms(guild) == {voice_a: 1})
            time.sleep(1.5)
            server.stop()
            left = time.time()
            d.set_voice_state(guild, alice, None)
            bob_joined = time.time()
            d.set_voice_state(guild, bob, voice_b)
            time.sleep(1.5)
            server.start()  # same port, same data
            wait(lambda: server.rooms(guild) == {voice_b: 1}, 20)
            sum_of = server.get("/v1/sum", space=guild, metric=METRIC, member=alice)["sum"]
            assert abs(sum_of - (left - joined)) <= SLACK, (sum_of, left - joined)
            (alice_session,) = server.get("/v1/presence/sessions", space=guild,
                                          member=alice)["sessions"]
            assert abs(alice_session["end"] - left) <= SLACK  # when it happened, not the retry
            (bob_session,) = server.get("/v1/presence/sessions", space=guild,
                                        member=bob)["sessions"]
            assert abs(bob_session["start"] - bob_joined) <= SLACK
            assert httpx.get(bot.url + "/healthz", timeout=5).status_code == 200
            assert "tallyboard_discord_voice_sessions_open 1.0" in httpx.get(
                bot.url + "/metrics", timeout=5).text
        finally:
            bot.stop()
            server.stop()
