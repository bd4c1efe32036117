"""The Discord stand-in, driven by the real discord.py client: no mocks, no tallyboard code.

Each test starts its own stand-in (own port) and a plain `commands.Bot` on its own loop in a
thread, as a bot process would run, and closes both.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import threading
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
import pytest

with warnings.catch_warnings():
    # discord.py's voice support imports audioop, deprecated since 3.11; warnings are errors
    warnings.filterwarnings("ignore", "'audioop' is deprecated", DeprecationWarning)
    import discord
from discord import app_commands
from discord.ext import commands

from tallyboard.standins.discord_standin import DiscordStandIn, discord_py_pointed_at

pytestmark = pytest.mark.timeout(30)

T = TypeVar("T")
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(64))


@dataclass(frozen=True)
class Ids:
    """The world every test starts from (ids as the stand-in gives them)."""

    guild: str
    text: str
    voice: str
    voice2: str
    category: str
    alice: str
    bob: str
    helper: str  # another bot, in the guild


class Bot(commands.Bot):
    """A plain discord.py bot that notes what it sees, with three slash commands."""

    def __init__(self, *, message_content: bool = True) -> None:
        intents = discord.Intents.default()
        intents.members = True
        intents.message_content = message_content
        # guild_ready_timeout: discord.py waits this long after the last GUILD_CREATE (2 s)
        super().__init__(command_prefix="!", intents=intents, guild_ready_timeout=0.05)
        self.seen: list[tuple[Any, ...]] = []
        self.answers: list[discord.InteractionCallbackResponse[Bot]] = []
        self.tree.add_command(app_commands.Command(
            name="ping", description="An embed and a file", callback=self._ping))
        self.tree.add_command(app_commands.Command(
            name="later", description="Deferred, then a followup", callback=self._later))
        self.tree.add_command(app_commands.Command(
            name="stats", description="A member option", callback=self._stats))

    async def setup_hook(self) -> None:
        await self.tree.sync()

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        """discord.py sleeps 5 s before every IDENTIFY but the first: nothing to pace here."""

    async def on_ready(self) -> None:
        self.seen.append(("ready",))

    async def on_resumed(self) -> None:
        self.seen.append(("resumed",))

    async def on_message(self, message: discord.Message) -> None:
        self.seen.append(("message", message.author.id, message.content))

    async def on_voice_state_update(
        self, member: discord.Member, before: discord.VoiceState, after: discord.VoiceState
    ) -> None:
        names = [s.channel.name if s.channel else None for s in (before, after)]
        self.seen.append(("voice", member.name, *names))

    async def _ping(self, interaction: discord.Interaction[Bot], n: int) -> None:
        answer = await interaction.response.send_message(
            f"pong {n}", embed=discord.Embed(title="Top", description="alice 3"),
            file=discord.File(io.BytesIO(PNG), "board.png"),
        )
        self.answers.append(answer)

    async def _later(self, interaction: discord.Interaction[Bot]) -> None:
        await interaction.response.defer(thinking=True)
        await interaction.followup.send("done", file=discord.File(io.BytesIO(b"csv"), "a.csv"))
        await interaction.edit_original_response(content="edited")

    async def _stats(self, interaction: discord.Interaction[Bot], who: discord.Member) -> None:
        await interaction.response.send_message(f"{who.name} bot={who.bot}", ephemeral=True)

    def events(self, kind: str) -> list[tuple[Any, ...]]:
        return [e for e in self.seen if e[0] == kind]


class Running:
    """A bot on its own event loop in a thread; `call`/`run` reach into that loop."""

    def __init__(self, bot: Bot, token: str) -> None:
        self.bot = bot
        self._token = token
        self._loop: Future[asyncio.AbstractEventLoop] = Future()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), name="bot")

    async def _main(self) -> None:
        self._loop.set_result(asyncio.get_running_loop())
        async with self.bot:
            await self.bot.start(self._token)

    def start(self) -> None:
        self._thread.start()

    def call(self, fn: Callable[[], T]) -> T:
        """Run `fn` on the bot's loop, where its caches may be read safely."""

        async def wrapped() -> T:
            return fn()

        return self.run(wrapped)

    def run(self, coroutine: Callable[[], Coroutine[Any, Any, T]]) -> T:
        loop = self._loop.result(timeout=5)
        return asyncio.run_coroutine_threadsafe(coroutine(), loop).result(timeout=20)

    def stop(self) -> None:
        if self._thread.is_alive():
            self.run(self.bot.close)
        self._thread.join(timeout=10)
        assert not self._thread.is_alive()


@pytest.fixture
def standin() -> Iterator[DiscordStandIn]:
    with DiscordStandIn(message_rate=(5, 1.0)) as server:
        yield server


@pytest.fixture
def ids(standin: DiscordStandIn) -> Ids:
    guild = standin.add_guild("Tally Town")
    category = standin.add_category(guild, "Hangout")
    ids = Ids(
        guild=guild, category=category,
        text=standin.add_text_channel(guild, "general", category_id=category),
        voice=standin.add_voice_channel(guild, "Lounge", category_id=category),
        voice2=standin.add_voice_channel(guild, "Study", category_id=category),
        alice=standin.add_user("alice"), bob=standin.add_user("bob"),
        helper=standin.add_user("helper", bot=True),
    )
    for user in (ids.alice, ids.bob, ids.helper):
        standin.add_member(guild, user)
    standin.set_voice_state(guild, ids.alice, ids.voice, self_mute=True)
    standin.set_voice_state(guild, ids.helper, ids.voice)
    return ids


@contextlib.contextmanager
def running(standin: DiscordStandIn, bot: Bot) -> Iterator[Running]:
    """The bot connected and ready (on_ready seen); closed afterwards."""
    with discord_py_pointed_at(standin.api_url, standin.gateway_url):
        started = Running(bot, standin.token)
        started.start()
        try:
            standin.wait_until(lambda: bot.events("ready"))
            yield started
        finally:
            started.stop()


@pytest.fixture
def bot(standin: DiscordStandIn, ids: Ids) -> Iterator[Running]:
    with running(standin, Bot()) as started:
        yield started


def test_logs_in_and_gets_the_guild_with_channels_members_and_voice(
    standin: DiscordStandIn, ids: Ids, bot: Running
) -> None:
    assert [(c.method, c.path, c.status) for c in standin.calls()][:3] == [
        ("GET", "/users/@me", 200), ("GET", "/oauth2/applications/@me", 200),
        ("PUT", f"/applications/{standin.application_id}/commands", 200),
    ]
    identify = standin.frames(op=2)
    assert len(identify) == 1 and "compress=zlib-stream" in identify[0].url
    assert identify[0].data["intents"] == bot.bot.intents.value
    assert standin.identifies == 1 and standin.connected

    def look() -> dict[str, Any]:
        guild = bot.bot.get_guild(int(ids.guild))
        assert guild is not None
        voice = guild.get_channel(int(ids.voice))
        assert isinstance(voice, discord.VoiceChannel)
        members = {m.name: m for m in guild.members}
        return {
            "channels": sorted((c.name, c.type.name) for c in guild.channels),
            "category": [c.name for c in voice.category.channels] if voice.category else [],
            "in_voice": sorted(m.name for m in voice.members),
            "muted": voice.voice_states[int(ids.alice)].self_mute,
            "bots": sorted(n for n, m in members.items() if m.bot),
            "members": sorted(members), "chunked": guild.chunked, "me": guild.me.bot,
        }

    assert bot.call(look) == {
        "channels": [("Hangout", "category"), ("Lounge", "voice"), ("Study", "voice"),
                     ("general", "text")],
        "category": ["general", "Lounge", "Study"],
        "in_voice": ["alice", "helper"], "muted": True,
        "bots": ["helper", "standin-bot"],
        "members": ["alice", "bob", "helper", "standin-bot"], "chunked": True, "me": True,
    }
    # without the presences intent GUILD_CREATE lists only the bot and voice members, as on
    # Discord: discord.py asked for the rest (REQUEST_GUILD_MEMBERS) and got bob
    assert [f.data["guild_id"] for f in standin.frames(op=8)] == [int(ids.guild)]


def test_voice_state_updates_arrive_as_join_move_leave(
    standin: DiscordStandIn, ids: Ids, bot: Running
) -> None:
    def voice_events(count: int) -> Callable[[], bool]:
        return lambda: len(bot.bot.events("voice")) == count

    moves = [(ids.bob, ids.voice), (ids.bob, ids.voice2), (ids.alice, None)]
    for n, (user, channel) in enumerate(moves, 1):
        # one at a time: discord.py hands handlers its cached VoiceState as `after`, which a
        # burst of updates would change before the handler task runs
        standin.set_voice_state(ids.guild, user, channel)
        standin.wait_until(voice_events(n))
    assert bot.bot.events("voice") == [
        ("voice", "bob", None, "Lounge"), ("voice", "bob", "Lounge", "Study"),
        ("voice", "alice", "Lounge", None),
    ]

    def who() -> list[list[str]]:
        return [[m.name for m in bot.bot.get_channel(int(c)).members]  # type: ignore[union-attr]
                for c in (ids.voice, ids.voice2)]

    assert bot.call(who) == [["helper"], ["bob"]]


def test_messages_both_ways_with_attachments(
    standin: DiscordStandIn, ids: Ids, bot: Running
) -> None:
    hello = f"hello <@{standin.bot_user['id']}>"
    standin.send_message(ids.text, ids.alice, hello)
    standin.wait_until(lambda: bot.bot.events("message"))
    assert bot.bot.events("message") == [("message", int(ids.alice), hello)]

    async def send() -> tuple[str, bytes]:
        channel = bot.bot.get_channel(int(ids.text))
        assert isinstance(channel, discord.TextChannel)
        await channel.send("x")
        sent = await channel.send(file=discord.File(io.BytesIO(PNG), "board.png"),
                                  embed=discord.Embed(title="Leaderboard"))
        return sent.attachments[0].filename, await sent.attachments[0].read()

    assert bot.run(send) == ("board.png", PNG)
    posted = standin.messages(ids.text)
    assert [c.json.get("content") for c in posted] == ["x", None]
    assert posted[1].json["embeds"][0]["title"] == "Leaderboard"
    assert [(u.field, u.filename, u.data) for u in posted[1].uploads] == [
        ("files[0]", "board.png", PNG)]
    # the bot's own messages come back over the gateway, as on Discord
    bot_id = int(standin.bot_user["id"])
    standin.wait_until(lambda: len(bot.bot.events("message")) == 3)
    assert bot.bot.events("message")[1:] == [("message", bot_id, "x"), ("message", bot_id, "")]


def test_direct_messages_and_messages_discord_would_refuse(
    standin: DiscordStandIn, ids: Ids, bot: Running
) -> None:
    dm = standin.open_dm(ids.bob)
    standin.send_message(dm, ids.bob, "psst")
    standin.wait_until(lambda: bot.bot.events("message"))
    assert bot.bot.events("message") == [("message", int(ids.bob), "psst")]

    async def send(content: str) -> int:
        channel = bot.bot.get_channel(int(ids.text))
        assert isinstance(channel, discord.TextChannel)
        try:
            await channel.send(content)
        except discord.HTTPException as error:
            return error.code
        return 0

    assert bot.run(lambda: send("x" * 2001)) == 50035  # Invalid Form Body: content too long
    assert bot.run(lambda: send("")) == 50006  # Cannot send an empty message
    assert [c.status for c in standin.calls(f"/channels/{ids.text}/messages")] == [400, 400]


def test_without_the_message_content_intent_content_is_empty(
    standin: DiscordStandIn, ids: Ids
) -> None:
    blind = Bot(message_content=False)
    with running(standin, blind):
        standin.send_message(ids.text, ids.alice, "secret")
        standin.wait_until(lambda: blind.events("message"))
    assert blind.events("message") == [("message", int(ids.alice), "")]


def test_slash_command_answered_with_embed_and_file(
    standin: DiscordStandIn, ids: Ids, bot: Running
) -> None:
    synced = standin.calls("/commands$", method="PUT")[0].json
    assert sorted(c["name"] for c in synced) == ["later", "ping", "stats"]

    interaction_id = standin.run_slash_command(ids.text, ids.alice, "ping", {"n": 3})
    (answer,) = standin.wait_until(lambda: standin.interaction_responses(interaction_id))
    assert answer.query == {"with_response": "1"}
    assert answer.json["type"] == 4 and answer.json["data"]["content"] == "pong 3"
    assert answer.json["data"]["embeds"][0]["title"] == "Top"
    assert [(u.filename, u.data) for u in answer.uploads] == [("board.png", PNG)]
    sent = standin.interaction(interaction_id)
    assert sent.response_type == 4 and 0 < answer.mono - sent.mono < 3
    assert sent.original is not None and sent.original["attachments"][0]["size"] == len(PNG)
    # discord.py parsed the ?with_response=1 body into the callback response it returned
    standin.wait_until(lambda: bot.bot.answers)
    assert bot.call(lambda: bot.bot.answers[0].message_id) == int(sent.original["id"])


def test_slash_command_options_and_answers_are_checked_like_discord(
    standin: DiscordStandIn, ids: Ids, bot: Running
) -> None:
    interaction_id = standin.run_slash_command(ids.text, ids.alice, "stats", {"who": ids.helper})
    (answer,) = standin.wait_until(lambda: standin.interaction_responses(interaction_id))
    assert answer.json["data"] == {"content": "helper bot=True", "flags": 64, "tts": False}
    original = standin.interaction(interaction_id).original
    assert original is not None and original["flags"] == 64  # ephemeral
    # a second answer, and an answer to no interaction: Discord's errors
    callback = answer.path.removeprefix("/")
    assert _request(standin, "POST", f"/{callback}", {"type": 4, "data": {"content": "again"}}) == (
        400, {"message": "Interaction has already been acknowledged.", "code": 40060})
    assert _request(standin, "POST", "/interactions/1/x/callback", {"type": 5})[1]["code"] == 10062
    with pytest.raises(ValueError, match="requires options"):
        standin.run_slash_command(ids.text, ids.alice, "stats")
    with pytest.raises(LookupError, match="no slash command 'nope'"):
        standin.run_slash_command(ids.text, ids.alice, "nope")


def test_deferred_answer_then_followup_and_edit(
    standin: DiscordStandIn, ids: Ids, bot: Running
) -> None:
    interaction_id = standin.run_slash_command(ids.text, ids.bob, "later")
    standin.wait_until(lambda: len(standin.interaction_responses(interaction_id)) == 3)
    calls = standin.interaction_responses(interaction_id)
    token = standin.interaction(interaction_id).token
    assert [(c.method, c.path.replace(token, "TOKEN")) for c in calls] == [
        ("POST", f"/interactions/{interaction_id}/TOKEN/callback"),
        ("POST", f"/webhooks/{standin.application_id}/TOKEN"),
        ("PATCH", f"/webhooks/{standin.application_id}/TOKEN/messages/@original"),
    ]
    assert calls[0].json["type"] == 5
    assert calls[1].json["content"] == "done" and calls[1].uploads[0].data == b"csv"
    assert calls[2].json["content"] == "edited"
    original = standin.interaction(interaction_id).original
    assert original is not None and original["content"] == "edited"


def test_dropped_connection_resumes_and_replays_what_was_missed(
    standin: DiscordStandIn, ids: Ids, bot: Running
) -> None:
    standin.drop(4000)
    standin.set_voice_state(ids.guild, ids.bob, ids.voice)  # sent while the bot is away
    standin.send_message(ids.text, ids.alice, "while away")
    standin.wait_until(lambda: bot.bot.events("resumed"))
    assert standin.resumes == 1 and standin.identifies == 1
    assert bot.bot.seen[-3:] == [
        ("voice", "bob", None, "Lounge"), ("message", int(ids.alice), "while away"),
        ("resumed",),
    ]
    (resume,) = standin.frames(op=6)
    assert resume.url.startswith("/resume-gateway?")  # READY's resume_gateway_url


def test_invalidated_session_reidentifies_and_sees_the_voice_state_of_now(
    standin: DiscordStandIn, ids: Ids, bot: Running
) -> None:
    standin.invalidate_session()
    standin.set_voice_state(ids.guild, ids.alice, None)  # missed: no session gets it
    standin.set_voice_state(ids.guild, ids.bob, ids.voice2)
    standin.drop(1001)
    standin.wait_until(lambda: len(bot.bot.events("ready")) == 2)
    assert standin.identifies == 2 and standin.resumes == 0
    assert [f.op for f in standin.frames() if f.op != 1][-3:] == [6, 2, 8]
    assert bot.bot.events("voice") == []

    def who() -> list[list[str]]:
        return [[m.name for m in bot.bot.get_channel(int(c)).members]  # type: ignore[union-attr]
                for c in (ids.voice, ids.voice2)]

    assert bot.call(who) == [["helper"], ["bob"]]


def test_rate_limited_messages_all_arrive_in_order(
    standin: DiscordStandIn, ids: Ids, bot: Running
) -> None:
    async def send(*contents: str) -> None:
        channel = bot.bot.get_channel(int(ids.text))
        assert isinstance(channel, discord.TextChannel)
        for content in contents:
            await channel.send(content)

    bot.run(lambda: send(*"0123456"))
    posted = standin.messages(ids.text)
    assert [c.json["content"] for c in posted] == list("0123456")
    # 5 per second per channel: discord.py read the bucket headers and waited for the reset
    assert posted[5].mono - posted[0].mono >= 0.99
    assert all(c.status == 200 for c in standin.calls(f"/channels/{ids.text}/messages"))


def test_a_full_window_gets_a_429_that_discord_py_waits_out(
    standin: DiscordStandIn, ids: Ids, bot: Running
) -> None:
    path = f"/channels/{ids.text}/messages"
    for n in range(5):  # another client of the same bot fills the channel's window
        assert _request(standin, "POST", path, {"content": f"other {n}"})[0] == 200

    async def send() -> None:
        channel = bot.bot.get_channel(int(ids.text))
        assert isinstance(channel, discord.TextChannel)
        await channel.send("after")

    bot.run(send)
    last = standin.calls(path)[-2:]
    assert [(c.status, c.json["content"]) for c in last] == [(429, "after"), (200, "after")]
    assert last[1].mono - last[0].mono >= last[0].response["retry_after"]


def test_forced_429s_are_survived_in_order(
    standin: DiscordStandIn, ids: Ids, bot: Running
) -> None:
    path = f"/channels/{ids.text}/messages"
    standin.force_429(f"^{path}$", times=2, retry_after=0.2)

    async def send() -> None:
        channel = bot.bot.get_channel(int(ids.text))
        assert isinstance(channel, discord.TextChannel)
        await channel.send("a")
        await channel.send("b")

    bot.run(send)
    assert [(c.status, c.json["content"]) for c in standin.calls(path)] == [
        (429, "a"), (429, "a"), (200, "a"), (200, "b")]
    attempts = standin.calls(path)
    assert attempts[1].mono - attempts[0].mono >= 0.2
    assert attempts[0].response == {
        "message": "You are being rate limited.", "retry_after": 0.2, "global": False}


def test_wrong_token_is_refused_like_discord(standin: DiscordStandIn, ids: Ids) -> None:
    async def log_in() -> None:
        client = discord.Client(intents=discord.Intents.default())
        try:
            await client.login("not-the-token")
        finally:
            await client.close()

    with discord_py_pointed_at(standin.api_url, standin.gateway_url), pytest.raises(
        discord.LoginFailure
    ):
        asyncio.run(log_in())
    assert [(c.path, c.status) for c in standin.calls()] == [("/users/@me", 401)]


def test_unknown_routes_and_unsupported_gateways_are_refused_clearly(
    standin: DiscordStandIn, ids: Ids
) -> None:
    assert _request(standin, "GET", f"/guilds/{ids.guild}/bans") == (
        404, {"message": "404: Not Found", "code": 0})
    assert standin.calls()[-1].path == f"/guilds/{ids.guild}/bans"

    async def dial(query: str) -> int:
        async with aiohttp.ClientSession() as session:
            try:
                async with session.ws_connect(f"{standin.gateway_url}?{query}"):
                    return 101
            except aiohttp.WSServerHandshakeError as error:
                return error.status

    assert asyncio.run(dial("v=10&encoding=json&compress=zstd-stream")) == 400
    assert asyncio.run(dial("v=9&encoding=json")) == 400
    assert asyncio.run(dial("v=10&encoding=json")) == 101


def _request(
    standin: DiscordStandIn, method: str, path: str, body: Any = None
) -> tuple[int, Any]:
    """A request from outside discord.py (another client of the same bot)."""
    request = urllib.request.Request(
        standin.api_url + path, method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bot {standin.token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read())
