"""A local Discord that the real discord.py connects to: REST v10 and gateway v10 on 127.0.0.1.

Tests and the benchmark run an unmodified bot against it (`discord_py_pointed_at`), make
things happen (voice moves, messages, slash commands) and read back every REST call the bot
made, with its time, JSON and uploads. What Discord would enforce is enforced — rate limits
and 429s, the 3 s interaction deadline, message length limits, intents, RESUME replay and
invalid sessions — so a bot's handling of them is tested too. The server runs its own event
loop in a thread; the public methods are synchronous and may be called from any thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
import re
import secrets
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import yarl
from aiohttp import web

from .discord_rest import API, DiscordRest, RestCall, SentInteraction, Upload
from .discord_world import ATTACHMENT_LIMIT, CATEGORY, JSON, TEXT, VOICE, DiscordWorld, Intent
from .threaded import WebStandIn

__all__ = [
    "DiscordStandIn", "GatewayFrame", "RestCall", "SentInteraction", "Upload",
    "discord_py_pointed_at",
]

T = TypeVar("T")
_log = logging.getLogger(__name__)

_REPLAY_LIMIT = 10_000  # dispatches a session keeps for RESUME; older ones cannot resume
_NEEDS: dict[str, Intent] = {  # what a dispatch needs in IDENTIFY's intents to be sent at all
    "GUILD_CREATE": Intent.GUILDS, "CHANNEL_CREATE": Intent.GUILDS,
    "GUILD_ROLE_CREATE": Intent.GUILDS, "GUILD_MEMBER_ADD": Intent.GUILD_MEMBERS,
    "VOICE_STATE_UPDATE": Intent.GUILD_VOICE_STATES,
    "MESSAGE_REACTION_ADD": Intent.GUILD_MESSAGE_REACTIONS,
}


@dataclass(frozen=True)
class GatewayFrame:
    """One payload the client sent over the gateway (heartbeats included)."""

    wall: float
    mono: float
    op: int
    data: Any
    url: str  # path and query: /resume-gateway when it followed READY's resume_gateway_url


class _Connection:
    """One gateway websocket, written by one task in order: zlib-stream or text frames."""

    def __init__(self, ws: web.WebSocketResponse, compressed: bool, url: str) -> None:
        self.ws = ws
        self.url = url
        # one compressor for the connection's life, as Discord: frames only make sense in order
        self.zlib = zlib.compressobj() if compressed else None
        self.outbox: asyncio.Queue[JSON | int | None] = asyncio.Queue()
        self.session: _Session | None = None

    def send(self, payload: JSON) -> None:
        self.outbox.put_nowait(payload)

    def close(self, code: int) -> None:
        self.outbox.put_nowait(code)

    async def write(self) -> None:
        """Send the outbox until a close code (sent as a close frame) or None."""
        while (item := await self.outbox.get()) is not None:
            if isinstance(item, int):
                await self.ws.close(code=item)
                return
            text = json.dumps(item, separators=(",", ":"))
            try:
                if self.zlib is None:
                    await self.ws.send_str(text)
                else:
                    data = self.zlib.compress(text.encode()) + self.zlib.flush(zlib.Z_SYNC_FLUSH)
                    await self.ws.send_bytes(data)
            except ConnectionError:
                return


@dataclass
class _Session:
    id: str
    intents: int
    seq: int = 0
    sent: deque[JSON] = field(default_factory=lambda: deque(maxlen=_REPLAY_LIMIT))
    connection: _Connection | None = None


@contextlib.contextmanager
def discord_py_pointed_at(api_url: str, gateway_url: str) -> Iterator[None]:
    """Point this process's discord.py at a stand-in, and back afterwards.

    Both are needed: `Route.BASE` for REST, and `DEFAULT_GATEWAY` because a plain `Client`
    dials the gateway without asking GET /gateway/bot (only AutoShardedClient asks). They
    are class attributes: one stand-in per process at a time.
    """
    # imported here: the stand-in serves any client, only this helper needs discord.py
    from discord.gateway import DiscordWebSocket
    from discord.http import Route

    saved = Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY
    Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = api_url, yarl.URL(gateway_url)
    try:
        yield
    finally:
        Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = saved


class DiscordStandIn(WebStandIn):
    """Discord's REST and gateway APIs for one bot, with the state and controls tests need."""

    def __init__(
        self,
        *,
        token: str = "standin-token",
        heartbeat_interval_ms: int = 41_250,
        message_rate: tuple[int, float] | None = (5, 5.0),
        bot_name: str = "standin-bot",
        port: int = 0,
    ) -> None:
        """`message_rate`: messages per channel per window of seconds; None: not limited.
        `port`: where `start` listens (0: a free port it picks), known before it starts,
        so a client can be pointed there first."""
        self.token = token
        self._heartbeat_ms = heartbeat_interval_ms
        self._world = DiscordWorld(bot_name)
        self._rest = DiscordRest(self._world, token, message_rate, self._dispatch_all)
        self._frames: list[GatewayFrame] = []
        self._sessions: dict[str, _Session] = {}
        self._connections: set[_Connection] = set()
        self._identifies = self._resumes = 0
        super().__init__(port)

    # -- lifetime -------------------------------------------------------------------------
    thread_name = "discord-standin"
    shutdown_timeout = 2.0

    def _app(self) -> web.Application:
        self._rest.origin = self.origin
        app = web.Application(client_max_size=ATTACHMENT_LIMIT + (1 << 20))
        self._rest.add_routes(app)
        app.router.add_get("/gateway", self._gateway)
        app.router.add_get("/resume-gateway", self._gateway)
        return app

    async def _closing(self) -> None:
        """Every connection is closed (1001, going away) before the server stops."""
        for connection in list(self._connections):
            connection.close(1001)

    def _on_loop(self, fn: Callable[[], T]) -> T:
        """Run `fn` on the server's loop (all state lives there) and return its result."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or threading.get_ident() == thread.ident:
            return fn()  # not serving, or already on the loop: nobody else touches the state
        done: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                done.set_result(fn())
            except BaseException as exc:
                done.set_exception(exc)

        loop.call_soon_threadsafe(run)
        return done.result(timeout=10)

    # -- addresses and identity -------------------------------------------------------------
    @property
    def api_url(self) -> str:
        """The REST base to give discord.py (`Route.BASE`)."""
        return f"http://127.0.0.1:{self._started_port()}{API}"

    @property
    def gateway_url(self) -> str:
        """The gateway discord.py dials first (`DiscordWebSocket.DEFAULT_GATEWAY`)."""
        return f"ws://127.0.0.1:{self._started_port()}/gateway"

    @property
    def bot_user(self) -> JSON:
        """The bot's user object (GET /users/@me)."""
        return dict(self._world.bot_user)

    @property
    def application_id(self) -> str:
        """The bot's application id (equal to its user id, as for apps made since 2021)."""
        return self._world.application_id

    def _started_port(self) -> int:
        if not self._port:
            raise RuntimeError("start() the stand-in first: its port is chosen then")
        return self._port

    # -- the world --------------------------------------------------------------------------
    def add_user(self, name: str, *, bot: bool = False) -> str:
        """A user (not yet in any guild); returns its id."""
        return self._on_loop(lambda: str(self._world.add_user(name, bot=bot)["id"]))

    def add_guild(self, name: str, *, owner_id: str | None = None) -> str:
        """A guild with the bot in it (owned by the bot unless `owner_id`); returns its id."""

        def add() -> str:
            guild = self._world.add_guild(name, owner_id)
            for session in list(self._sessions.values()):
                self._dispatch(session, "GUILD_CREATE",
                               self._world.guild_create(guild, session.intents))
            return guild.id

        return self._on_loop(add)

    def add_role(self, guild_id: str, name: str, *, permissions: int = 0) -> str:
        """A role; returns its id."""

        def add() -> str:
            role = self._world.add_role(guild_id, name, permissions)
            self._dispatch_all("GUILD_ROLE_CREATE", {"guild_id": guild_id, "role": role})
            return str(role["id"])

        return self._on_loop(add)

    def add_member(self, guild_id: str, user_id: str, *, roles: tuple[str, ...] = ()) -> None:
        """Make a user a member of a guild (GUILD_MEMBER_ADD if the bot is connected)."""

        def add() -> None:
            member = self._world.add_member(guild_id, user_id, roles)
            self._dispatch_all("GUILD_MEMBER_ADD", member | {"guild_id": guild_id})

        self._on_loop(add)

    def add_category(self, guild_id: str, name: str) -> str:
        """A category channel; returns its id."""
        return self._add_channel(guild_id, CATEGORY, name, None)

    def add_text_channel(self, guild_id: str, name: str, *, category_id: str | None = None) -> str:
        """A text channel; returns its id."""
        return self._add_channel(guild_id, TEXT, name, category_id)

    def add_voice_channel(self, guild_id: str, name: str, *, category_id: str | None = None) -> str:
        """A voice channel; returns its id."""
        return self._add_channel(guild_id, VOICE, name, category_id)

    def _add_channel(self, guild_id: str, kind: int, name: str, parent: str | None) -> str:
        def add() -> str:
            channel = self._world.add_channel(guild_id, kind, name, parent)
            self._dispatch_all("CHANNEL_CREATE", channel)
            return str(channel["id"])

        return self._on_loop(add)

    def set_afk_channel(self, guild_id: str, channel_id: str | None) -> None:
        """The guild's AFK voice channel (GUILD_UPDATE to a connected bot)."""

        def set_afk() -> None:
            guild = self._world.guilds[guild_id]
            guild.afk_channel_id = channel_id
            update = {k: v for k, v in self._world.guild_create(guild, 0).items()
                      if k not in ("members", "channels", "voice_states", "threads",
                                   "presences", "stage_instances", "guild_scheduled_events",
                                   "soundboard_sounds", "joined_at", "large", "member_count")}
            self._dispatch_all("GUILD_UPDATE", update)

        self._on_loop(set_afk)

    def open_dm(self, user_id: str) -> str:
        """The bot's DM channel with a user; returns its id."""
        return self._on_loop(lambda: str(self._world.dm_channel(user_id)["id"]))

    def set_voice_state(
        self, guild_id: str, user_id: str, channel_id: str | None, **flags: bool
    ) -> None:
        """Join, move (a voice channel id) or leave (None); flags such as self_mute=True.

        The guild state changes now (a later GUILD_CREATE shows it) and VOICE_STATE_UPDATE,
        with the `member` object, goes to the bot — or into the buffer a RESUME replays.
        """
        self._on_loop(lambda: self._dispatch_all(
            "VOICE_STATE_UPDATE", self._world.set_voice_state(guild_id, user_id, channel_id, flags)
        ))

    def send_message(self, channel_id: str, author_id: str, content: str) -> JSON:
        """A user posts in a guild or DM channel: MESSAGE_CREATE; returns the message."""

        def post() -> JSON:
            found = self._world.channel(channel_id)
            if found is None:
                raise LookupError(f"unknown channel {channel_id}")
            guild = found[1]
            if guild is not None and author_id not in guild.members:
                raise LookupError(f"user {author_id} is not a member of guild {guild.id}")
            message = self._world.message(
                channel_id, self._world.users[author_id], {"content": content}, []
            )
            self._dispatch_all("MESSAGE_CREATE", self._world.as_event(message))
            return message

        return self._on_loop(post)

    def run_slash_command(
        self, channel_id: str, user_id: str, name: str, options: Mapping[str, Any] | None = None
    ) -> str:
        """A user runs a synced slash command ("name" or "group sub"); returns the interaction id.

        Options are given by name and typed from the synced definition; user, channel and
        role options take ids and come with `resolved` data, as from Discord.
        """

        def run() -> str:
            interaction_id, token = self._world.ids.next(), secrets.token_urlsafe(48)
            event = self._world.interaction(
                interaction_id, token, channel_id, user_id, name, options or {}
            )
            self._rest.remember(SentInteraction(
                interaction_id, token, name, channel_id, user_id, time.time(), time.monotonic()
            ))
            self._dispatch_all("INTERACTION_CREATE", event)
            return interaction_id

        return self._on_loop(run)

    def dispatch(self, event: str, data: JSON) -> None:
        """Send any dispatch to every live session (buffered for RESUME if disconnected)."""
        self._on_loop(lambda: self._dispatch_all(event, data))

    # -- gateway controls -------------------------------------------------------------------
    def drop(self, code: int = 4000) -> None:
        """Close every gateway connection with `code`; sessions stay, so the bot can RESUME."""

        def drop() -> None:
            for connection in list(self._connections):
                self._detach(connection)
                connection.close(code)

        self._on_loop(drop)

    def invalidate_session(self) -> None:
        """Forget every session: nothing more is sent to it, and its RESUME gets op 9.

        The connection stays open (and deaf) until `drop()`: then the bot re-identifies and
        gets GUILD_CREATE with the guilds as they are by then.
        """
        self._on_loop(self._sessions.clear)

    @property
    def connected(self) -> bool:
        """Whether a connection has an identified or resumed session."""
        return self._on_loop(lambda: any(c.session for c in self._connections))

    @property
    def identifies(self) -> int:
        """Sessions started by IDENTIFY (each followed by READY)."""
        return self._on_loop(lambda: self._identifies)

    @property
    def resumes(self) -> int:
        """Sessions resumed (each followed by the missed dispatches and RESUMED)."""
        return self._on_loop(lambda: self._resumes)

    # -- REST controls and records ----------------------------------------------------------
    def force_429(
        self, path_regex: str, times: int, retry_after: float = 0.5, *, method: str | None = None
    ) -> None:
        """Answer the next `times` requests whose path (below /api/v10) matches with a 429."""
        re.compile(path_regex)  # a bad pattern fails here, in the caller's thread
        self._on_loop(lambda: self._rest.force_429(path_regex, times, retry_after, method))

    def force_error(
        self, path_regex: str, times: int, status: int = 403, *, method: str | None = None
    ) -> None:
        """Answer the next `times` matching requests with 403 Missing Access (or 404
        Unknown Channel): a channel the bot may no longer post in."""
        re.compile(path_regex)
        if status not in (403, 404):
            raise ValueError("force_error answers 403 or 404")
        self._on_loop(lambda: self._rest.force_error(path_regex, times, status, method))

    def calls(self, path_regex: str | None = None, *, method: str | None = None) -> list[RestCall]:
        """Every REST request received so far, in order, 429s included."""
        pattern = re.compile(path_regex) if path_regex is not None else None
        return self._on_loop(lambda: [
            c for c in self._rest.calls
            if (pattern is None or pattern.search(c.path)) and method in (None, c.method)
        ])

    def messages(self, channel_id: str) -> list[RestCall]:
        """The bot's accepted POSTs to a channel's messages, in order."""
        path = f"/channels/{channel_id}/messages"
        return [c for c in self.calls(method="POST") if c.path == path and c.status == 200]

    def interaction_responses(self, interaction_id: str) -> list[RestCall]:
        """The accepted callback, @original and followup calls for one interaction."""
        sent = self.interaction(interaction_id)
        prefixes = (f"/interactions/{interaction_id}/",
                    f"/webhooks/{self.application_id}/{sent.token}")
        return [c for c in self.calls() if c.path.startswith(prefixes) and c.status < 300]

    def interaction(self, interaction_id: str) -> SentInteraction:
        """When an interaction was sent and how the bot has answered it (a copy)."""
        return self._on_loop(lambda: replace(self._rest.interactions[interaction_id]))

    def frames(self, op: int | None = None) -> list[GatewayFrame]:
        """What clients sent over the gateway, in order (op 1 heartbeats, 2 IDENTIFY...)."""
        return self._on_loop(lambda: [f for f in self._frames if op in (None, f.op)])

    def wait_until(self, predicate: Callable[[], T], timeout: float = 5.0) -> T:
        """Poll `predicate` (in the caller's thread) until it is truthy; return that value."""
        deadline = time.monotonic() + timeout
        while not (value := predicate()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"not true after {timeout} s: {predicate!r}")
            time.sleep(0.01)
        return value

    # -- dispatching ------------------------------------------------------------------------
    def _dispatch_all(self, event: str, data: JSON) -> None:
        for session in list(self._sessions.values()):
            self._dispatch(session, event, data)

    def _dispatch(self, session: _Session, event: str, data: JSON) -> None:
        """Number the event in the session, keep it for RESUME, send it if connected."""
        visible = self._visible(event, data, session.intents)
        if visible is None:
            return
        session.seq += 1
        payload = {"op": 0, "t": event, "s": session.seq, "d": visible}
        session.sent.append(payload)
        if session.connection is not None:
            session.connection.send(payload)

    def _visible(self, event: str, data: JSON, intents: int) -> JSON | None:
        """What the intents let through: nothing, or a message emptied of its content."""
        if event in ("MESSAGE_CREATE", "MESSAGE_UPDATE"):
            in_guild = "guild_id" in data
            if not intents & (Intent.GUILD_MESSAGES if in_guild else Intent.DIRECT_MESSAGES):
                return None
            bot_id = self._world.bot_user["id"]
            mentioned = any(u["id"] == bot_id for u in data.get("mentions", []))
            if (in_guild and not intents & Intent.MESSAGE_CONTENT
                    and data["author"]["id"] != bot_id and not mentioned):
                return data | {"content": "", "embeds": [], "attachments": [], "components": []}
            return data
        need = _NEEDS.get(event)
        return None if need is not None and not intents & need else data

    def _attach(self, connection: _Connection, session: _Session) -> None:
        if session.connection is not None and session.connection is not connection:
            old = session.connection
            self._detach(old)
            old.close(4000)
        connection.session, session.connection = session, connection

    @staticmethod
    def _detach(connection: _Connection) -> None:
        if connection.session is not None and connection.session.connection is connection:
            connection.session.connection = None
        connection.session = None

    # -- gateway ----------------------------------------------------------------------------
    async def _gateway(self, request: web.Request) -> web.StreamResponse:
        query = request.query
        compress = query.get("compress")
        if query.get("v") != "10" or query.get("encoding", "json") != "json" or compress not in (
            None, "zlib-stream"
        ):
            why = (f"the stand-in speaks gateway v=10, encoding=json, compress=zlib-stream or "
                   f"none; asked for {dict(query)}")
            _log.error("refused a gateway connection: %s", why)
            return web.json_response({"message": why, "code": 0}, status=400)
        ws = web.WebSocketResponse(compress=False)  # Discord never negotiates permessage-deflate
        await ws.prepare(request)
        connection = _Connection(ws, compress is not None, request.path_qs)
        self._connections.add(connection)
        writer = asyncio.create_task(connection.write())
        connection.send(_op(10, {"heartbeat_interval": self._heartbeat_ms,
                                 "_trace": ["discord-standin"]}))
        try:
            async for message in ws:
                if message.type is not web.WSMsgType.TEXT:
                    connection.close(4002)  # Discord: decode error
                    break
                self._receive(connection, message.data)
        finally:
            self._connections.discard(connection)
            self._detach(connection)
            connection.outbox.put_nowait(None)
            await writer
        return ws

    def _receive(self, connection: _Connection, text: str) -> None:
        try:
            frame = json.loads(text)
            op, data = int(frame["op"]), frame.get("d")
        except (ValueError, KeyError, TypeError):
            connection.close(4002)
            return
        self._frames.append(GatewayFrame(time.time(), time.monotonic(), op, data,
                                         connection.url))
        if op in (2, 6, 8) and not isinstance(data, dict):
            connection.close(4002)
        elif op == 1:
            connection.send(_op(11, None))
        elif op == 2:
            self._identify(connection, data)
        elif op == 6:
            self._resume(connection, data)
        elif connection.session is None:
            connection.close(4003)  # not authenticated
        elif op == 8:
            if str(data.get("guild_id")) in self._world.guilds:  # Discord ignores others
                chunk = self._world.member_chunk(data)
                self._dispatch(connection.session, "GUILD_MEMBERS_CHUNK", chunk)
        elif op not in (3, 4):  # presence and voice state requests are only recorded
            connection.close(4001)  # unknown opcode

    def _identify(self, connection: _Connection, data: JSON) -> None:
        if data.get("token") != self.token:
            connection.close(4004)  # authentication failed
            return
        if connection.session is not None:
            connection.close(4005)  # already authenticated
            return
        session = _Session(id=secrets.token_hex(16), intents=int(data.get("intents") or 0))
        self._sessions[session.id] = session
        self._identifies += 1
        self._attach(connection, session)
        resume_url = f"ws://127.0.0.1:{self._port}/resume-gateway"
        self._dispatch(session, "READY",
                       self._world.ready(session.id, resume_url, data.get("shard")))
        for guild in self._world.guilds.values():
            self._dispatch(session, "GUILD_CREATE",
                           self._world.guild_create(guild, session.intents))

    def _resume(self, connection: _Connection, data: JSON) -> None:
        if data.get("token") != self.token:
            connection.close(4004)
            return
        session = self._sessions.get(str(data.get("session_id")))
        seq = int(data.get("seq") or 0)
        oldest = session.sent[0]["s"] if session and session.sent else 1
        if session is None or not oldest - 1 <= seq <= session.seq:
            connection.send(_op(9, False))  # not resumable: the client must IDENTIFY
            return
        self._resumes += 1
        self._attach(connection, session)
        for payload in session.sent:
            if payload["s"] > seq:
                connection.send(payload)
        self._dispatch(session, "RESUMED", {"_trace": ["discord-standin"]})


def _op(op: int, data: Any) -> JSON:
    return {"op": op, "d": data, "s": None, "t": None}
