"""Twitch chat (TMI) over IRC: the second source of who is in a stream, and its raids.

Written here (a line protocol of a dozen commands) because the Twitch chat libraries hide
what the tracker must see: the NAMES replies and the membership JOIN/PART lines, and when
a channel's view stops being whole (a reconnect, a room past 1,000 chatters).

What TMI tells, and so what a snapshot from it can claim:
- After a JOIN, NAMES (353/366) lists who is in the room, then JOIN/PART lines (batched,
  every ~10 s) say who comes and goes: while connected, the room is known exactly, a few
  seconds late.
- Above 1,000 chatters NAMES lists only moderators and JOIN/PART stop: the room is not
  known, so it yields no snapshot (never a partial list that would make people leave).
  A room is trusted only below TRUSTED, by its own count and by Helix's viewer_count.
- After a disconnect nothing is known until NAMES has come again; a connection silent for
  SILENCE seconds is taken for dead.
- The tracker's own login is in every room it joins: it is never a chatter.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

log = logging.getLogger("tallyboard.twitch")

NAMES_LIMIT = 1000  # above this many chatters TMI lists moderators only, and no JOIN/PART
TRUSTED = 800  # a room is trusted below this: a margin, as chatters and viewers differ
SILENCE = 360.0  # seconds without a line: the connection is dead (TMI PINGs every ~5 min)
JOINS_PER_WINDOW = 20  # TMI's join rate for an unverified account: 20 per 10 s
JOIN_WINDOW = 10.0
JOIN_RETRY = 60.0  # seconds without NAMES after a JOIN: it is sent again
FIRST_WAIT, LONGEST_WAIT = 1.0, 60.0  # reconnect backoff, doubling
CAPS = "twitch.tv/membership twitch.tv/tags twitch.tv/commands"


@dataclass(frozen=True)
class Raid:
    """`source` raided `target` with `viewers` at `ts` (USERNOTICE msg-id=raid)."""

    source: str
    target: str
    viewers: int
    ts: float


@dataclass(frozen=True)
class Line:
    tags: dict[str, str]
    nick: str | None  # the sender's login, from the prefix
    command: str
    params: list[str]


def parse(raw: str) -> Line:
    """One IRC line with IRCv3 tags: ``@k=v;k2=v2 :nick!user@host CMD p1 p2 :trailing``."""
    tags: dict[str, str] = {}
    rest = raw.rstrip("\r\n")
    if rest.startswith("@"):
        head, _, rest = rest.partition(" ")
        for item in head[1:].split(";"):
            k, _, v = item.partition("=")
            tags[k] = _unescape(v)
    nick = None
    if rest.startswith(":"):
        prefix, _, rest = rest.partition(" ")
        nick = prefix[1:].split("!", 1)[0].lower()
    rest, _, trailing = rest.partition(" :")
    parts = rest.split()
    params = parts[1:] + ([trailing] if _ else [])
    return Line(tags, nick, parts[0].upper() if parts else "", params)


def _unescape(value: str) -> str:
    out, i = [], 0
    while i < len(value):
        c = value[i]
        if c == "\\" and i + 1 < len(value):
            nxt = value[i + 1]
            out.append({"s": " ", ":": ";", "\\": "\\", "r": "\r", "n": "\n"}.get(nxt, nxt))
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


@dataclass
class Room:
    members: set[str] = field(default_factory=set)
    listing: set[str] | None = None  # NAMES being received
    known: bool = False  # NAMES complete since we joined on this connection
    asked: float = field(default_factory=time.monotonic)  # when its JOIN was sent
    overfull: bool = False  # reached TRUSTED: TMI may stop telling, so never known again


class ChatMembership:
    """Keeps one TMI connection, joined to the wanted channels, and knows who is in each.

    `token` is a callable so a renewed token is used at the next connect; with none the
    connection is anonymous (justinfan), which reads membership and raids all the same.
    """

    def __init__(self, url: str, *, nick: Callable[[], str | None],
                 token: Callable[[], str | None], on_raid: Callable[[Raid], None],
                 on_state: Callable[[bool], None] = lambda up: None) -> None:
        u = urlsplit(url)
        self.host, self.tls = u.hostname or "localhost", u.scheme == "ircs"
        self.port = u.port or (6697 if self.tls else 6667)
        self._nick, self._token = nick, token
        self._on_raid, self._on_state = on_raid, on_state
        self.wanted: set[str] = set()
        self._wait = FIRST_WAIT  # the next reconnect's backoff
        self.rooms: dict[str, Room] = {}
        self.connected = False
        self._writer: asyncio.StreamWriter | None = None
        self.me = ""
        self._joins: list[float] = []  # when recent JOINs were sent (rate limit)
        self._joining: set[asyncio.Task[None]] = set()  # JOIN batches of this connection

    # -- what the tracker asks ------------------------------------------------------------
    def want(self, channels: Iterable[str]) -> None:
        """Be in exactly these channels (joined or parted now if connected)."""
        wanted = set(channels)
        gone, new = self.wanted - wanted, wanted - self.wanted
        self.wanted = wanted
        for ch in gone:
            self.rooms.pop(ch, None)
            self._send(f"PART #{ch}")
        if new and self.connected:
            self._join_soon(sorted(new))

    def chatters(self, channel: str) -> list[str] | None:
        """Everyone TMI says is in the channel, or None when that is not known whole."""
        room = self.rooms.get(channel)
        if self.connected and room is not None and not room.known \
                and time.monotonic() - room.asked > JOIN_RETRY:  # TMI never answered
            del self.rooms[channel]
            self._join_soon([channel])
        if not self.connected or room is None or not room.known or room.overfull:
            return None
        return sorted(room.members - {self.me})

    def why_unknown(self, channel: str) -> str:
        room = self.rooms.get(channel)
        if not self.connected:
            return "irc_disconnected"
        if room is None or not room.known:
            return "irc_joining"
        return "irc_over_limit"

    # -- the connection -------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Connect, and reconnect with backoff (at once after RECONNECT), until `stop`."""
        self._wait = FIRST_WAIT
        while not stop.is_set():
            try:
                if await self._session(stop):
                    continue  # asked to reconnect: at once
            except (OSError, asyncio.IncompleteReadError, ssl.SSLError) as exc:
                log.warning("Twitch chat at %s:%d is unreachable (%s); trying again in "
                            "%.0f s", self.host, self.port, type(exc).__name__, self._wait)
            except Exception:  # a line too long, a bug: chat must come back all the same
                log.exception("Twitch chat failed; reconnecting in %.0f s", self._wait)
            finally:
                self._down()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._wait)
            self._wait = min(self._wait * 2, LONGEST_WAIT)

    async def _session(self, stop: asyncio.Event) -> bool:
        """One connection until it ends; True if the server asked us to reconnect."""
        ctx = ssl.create_default_context() if self.tls else None
        reader, self._writer = await asyncio.open_connection(self.host, self.port, ssl=ctx)
        token, nick = self._token(), self._nick()
        self.me = nick if token and nick else f"justinfan{int(time.time()) % 100000}"
        self._send(f"CAP REQ :{CAPS}")
        if token and nick:
            self._send(f"PASS oauth:{token}", secret=True)
        self._send(f"NICK {self.me}")
        stopping = asyncio.ensure_future(stop.wait())
        reading: asyncio.Future[bytes] | None = None
        try:
            while True:
                reading = asyncio.ensure_future(reader.readline())
                await asyncio.wait([reading, stopping], timeout=SILENCE,
                                   return_when=asyncio.FIRST_COMPLETED)
                if not reading.done():
                    reading.cancel()
                    if stopping.done():
                        return False
                    raise ConnectionError(f"no line from Twitch chat in {SILENCE:.0f} s")
                raw = reading.result()
                if not raw:
                    raise asyncio.IncompleteReadError(b"", None)
                if self._handle(parse(raw.decode("utf-8", "replace"))):
                    log.info("Twitch chat asked to reconnect")
                    return True
        finally:  # also when this task is cancelled: no read is left pending
            stopping.cancel()
            if reading is not None:
                reading.cancel()

    def _down(self) -> None:
        if self.connected:
            log.warning("Twitch chat connection lost: its rooms are unknown until rejoined")
        self.connected = False
        self.rooms.clear()
        for task in self._joining:
            task.cancel()
        self._joining.clear()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self._on_state(False)

    def _send(self, line: str, *, secret: bool = False) -> None:
        if self._writer is not None:
            self._writer.write((line + "\r\n").encode())
        if not secret:
            log.debug("irc > %s", line)

    def _join_soon(self, channels: list[str]) -> None:
        task = asyncio.get_running_loop().create_task(self._join(channels))
        self._joining.add(task)
        task.add_done_callback(self._joining.discard)

    async def _join(self, channels: list[str]) -> None:
        """JOIN within TMI's rate: at most JOINS_PER_WINDOW in any JOIN_WINDOW seconds
        (shared by every batch of this connection; cancelled with it)."""
        for ch in channels:
            while True:
                now = time.monotonic()
                self._joins = [t for t in self._joins if now - t < JOIN_WINDOW]
                if len(self._joins) < JOINS_PER_WINDOW:
                    break
                await asyncio.sleep(JOIN_WINDOW - (now - self._joins[0]))
            if not self.connected or ch not in self.wanted or ch in self.rooms:
                continue
            self._joins.append(time.monotonic())
            self.rooms[ch] = Room()
            self._send(f"JOIN #{ch}")

    def _handle(self, m: Line) -> bool:
        """Apply one line; True for RECONNECT."""
        cmd, p = m.command, m.params
        channel = p[0][1:].lower() if p and p[0].startswith("#") else None
        if cmd == "PING":
            self._send(f"PONG :{p[-1] if p else 'tmi.twitch.tv'}")
        elif cmd == "RECONNECT":
            return True
        elif cmd == "001":
            self.connected, self._wait = True, FIRST_WAIT
            self._on_state(True)
            log.info("connected to Twitch chat as %s", self.me)
            self._join_soon(sorted(self.wanted))
        elif cmd == "NOTICE" and p and p[-1].lower().startswith("login"):
            log.warning("Twitch chat refused the login: %s", p[-1])
        elif cmd in ("JOIN", "PART") and channel in self.rooms and m.nick:
            if m.nick != self.me:
                room = self.rooms[channel]
                (room.members.add if cmd == "JOIN" else room.members.discard)(m.nick)
                room.overfull |= len(room.members) >= TRUSTED
        elif cmd == "353" and len(p) >= 4:
            named = self.rooms.get(p[2][1:].lower())
            if named is not None:
                named.listing = (named.listing or set()) | set(p[3].lower().split())
        elif cmd == "366" and len(p) >= 2:
            named = self.rooms.get(p[1][1:].lower())
            if named is not None:
                named.members |= named.listing or set()
                named.listing, named.known = None, True
                named.overfull |= len(named.members) >= TRUSTED
        elif cmd == "USERNOTICE" and channel and m.tags.get("msg-id") == "raid":
            self._raid(channel, m.tags)
        return False

    def _raid(self, target: str, tags: dict[str, str]) -> None:
        try:
            raid = Raid(tags["msg-param-login"].lower(), target,
                        int(tags.get("msg-param-viewerCount", "0")),
                        int(tags.get("tmi-sent-ts", time.time() * 1000)) / 1000)
        except (KeyError, ValueError):
            log.warning("a raid USERNOTICE in %s without its raider: ignored", target)
            return
        log.info("%s raided %s with %d viewers", raid.source, target, raid.viewers)
        self._on_raid(raid)
