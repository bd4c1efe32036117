"""A local Twitch chat (TMI) server speaking IRC the way Twitch does, for tests and benchmarks.

What it does as TMI does: CAP REQ is ACKed, PASS/NICK log in (an anonymous justinfan
needs no PASS), JOIN answers with the JOIN echo and NAMES (353 lines, then 366), listing
only moderators once a room holds more than 1,000 chatters; JOIN/PART of other chatters
are sent in batches (every `batch_s`) and not at all in rooms over 1,000; the joiner is
listed in its own NAMES, as on Twitch; PING expects a
PONG; RECONNECT asks clients to come back; a raid is a USERNOTICE with msg-id=raid.
Plain TCP only (`irc://`): TLS is the client's ssl module, not something to stand in for.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from .threaded import LoopThread, Stop

LIMIT = 1000  # above this many chatters: NAMES lists moderators only, no JOIN/PART
NAMES_PER_LINE = 300


@dataclass
class _Client:
    writer: asyncio.StreamWriter
    nick: str = ""
    channels: set[str] = field(default_factory=set)
    pending: list[str] = field(default_factory=list)  # JOIN/PART lines of the next batch

    def send(self, line: str) -> None:
        self.writer.write((line + "\r\n").encode())


class TmiStandIn(LoopThread):
    """TMI on one port: `url` (irc://127.0.0.1:port) for the client's settings."""

    def __init__(self, *, batch_s: float = 0.2, port: int = 0) -> None:
        self.batch_s, self._port = batch_s, port
        self.rooms: dict[str, set[str]] = {}
        self.moderators: dict[str, set[str]] = {}
        self.received: list[str] = []  # every line clients sent (PASS redacted)
        self._clients: list[_Client] = []
        super().__init__()

    @property
    def url(self) -> str:
        return f"irc://127.0.0.1:{self._port}"

    # -- lifetime -------------------------------------------------------------------------
    thread_name = "tmi-standin"

    async def _serve(self) -> Stop:
        server = await asyncio.start_server(self._session, "127.0.0.1", self._port)
        self._port = server.sockets[0].getsockname()[1]
        flusher = asyncio.create_task(self._flush_batches())

        async def stop() -> None:
            flusher.cancel()
            server.close()
            for c in self._clients:
                c.writer.close()
            await server.wait_closed()
        return stop

    def _call(self, fn: object, *args: object) -> None:
        """Run `fn(*args)` on the server's loop and wait for it."""
        assert self._loop is not None
        done: concurrent.futures.Future[None] = concurrent.futures.Future()

        def run() -> None:
            try:
                fn(*args)  # type: ignore[operator]
                done.set_result(None)
            except Exception as exc:
                done.set_exception(exc)

        self._loop.call_soon_threadsafe(run)
        done.result(timeout=10)

    # -- the world ------------------------------------------------------------------------
    def set_room(self, channel: str, chatters: Iterable[str],
                 moderators: Iterable[str] = ()) -> None:
        """Who is in `channel` now: the differences go to joined clients as JOIN/PART in
        the next batch (none in rooms over 1,000)."""
        self._call(self._set_room, channel, set(chatters), set(moderators))

    def _set_room(self, channel: str, chatters: set[str], moderators: set[str]) -> None:
        before = self.rooms.get(channel, set())
        self.rooms[channel], self.moderators[channel] = chatters, moderators
        if max(len(before), len(chatters)) > LIMIT:
            return
        for c in self._clients:
            if channel in c.channels:
                c.pending += [f":{u}!{u}@{u}.tmi.twitch.tv JOIN #{channel}"
                              for u in sorted(chatters - before)]
                c.pending += [f":{u}!{u}@{u}.tmi.twitch.tv PART #{channel}"
                              for u in sorted(before - chatters)]

    def raid(self, source: str, target: str, viewers: int) -> None:
        self._call(self._broadcast, target,
                   f"@msg-id=raid;msg-param-login={source};msg-param-displayName={source};"
                   f"msg-param-viewerCount={viewers};tmi-sent-ts={int(time.time() * 1000)};"
                   f"system-msg={viewers}\\sraiders\\sfrom\\s{source}\\shave\\sjoined! "
                   f":tmi.twitch.tv USERNOTICE #{target}")

    def reconnect(self) -> None:
        """Ask every client to reconnect (as TMI does before a restart), then hang up."""
        self._call(self._hang_up, "RECONNECT")

    def drop(self) -> None:
        """Hang up on every client without a word."""
        self._call(self._hang_up, None)

    def ping(self) -> None:
        self._call(self._send_all, "PING :tmi.twitch.tv")

    def _send_all(self, line: str) -> None:
        for c in self._clients:
            c.send(line)

    def joined(self, channel: str) -> bool:
        """Some client has joined `channel` (its NAMES sent)."""
        return any(channel in c.channels for c in list(self._clients))

    def _broadcast(self, channel: str, line: str) -> None:
        for c in self._clients:
            if channel in c.channels:
                c.send(line)

    def _hang_up(self, last: str | None) -> None:
        for c in self._clients:
            if last:
                c.send(f":tmi.twitch.tv {last}")
            c.writer.close()
        self._clients.clear()

    # -- the protocol ---------------------------------------------------------------------
    async def _flush_batches(self) -> None:
        while True:
            await asyncio.sleep(self.batch_s)
            for c in self._clients:
                for line in c.pending:
                    c.send(line)
                c.pending.clear()

    async def _session(self, reader: asyncio.StreamReader,
                       writer: asyncio.StreamWriter) -> None:
        client = _Client(writer)
        self._clients.append(client)
        try:
            while raw := await reader.readline():
                line = raw.decode().rstrip("\r\n")
                self.received.append("PASS ***" if line.startswith("PASS ") else line)
                self._answer(client, line)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            if client in self._clients:
                self._clients.remove(client)
            writer.close()

    def _answer(self, c: _Client, line: str) -> None:
        cmd, _, rest = line.partition(" ")
        if cmd == "CAP":
            c.send(f":tmi.twitch.tv CAP * ACK {rest.split(' ', 1)[-1]}")
        elif cmd == "NICK":
            c.nick = rest.strip().lower()
            c.send(f":tmi.twitch.tv 001 {c.nick} :Welcome, GLHF!")
            c.send(f":tmi.twitch.tv 376 {c.nick} :>")
        elif cmd == "JOIN":
            for ch in (x.strip().lstrip("#").lower() for x in rest.split(",")):
                self._join(c, ch)
        elif cmd == "PART":
            c.channels.discard(rest.strip().lstrip("#").lower())

    def _join(self, c: _Client, ch: str) -> None:
        c.channels.add(ch)
        c.send(f":{c.nick}!{c.nick}@{c.nick}.tmi.twitch.tv JOIN #{ch}")
        room = self.rooms.get(ch, set())
        names = sorted((self.moderators.get(ch, set()) if len(room) > LIMIT else room)
                       | {c.nick})  # as TMI does, the joiner is in its own NAMES
        for i in range(0, len(names), NAMES_PER_LINE):
            c.send(f":{c.nick}.tmi.twitch.tv 353 {c.nick} = #{ch} :"
                   + " ".join(names[i:i + NAMES_PER_LINE]))
        c.send(f":{c.nick}.tmi.twitch.tv 366 {c.nick} #{ch} :End of /NAMES list")
