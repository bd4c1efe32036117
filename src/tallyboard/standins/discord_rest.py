"""Discord's REST API v10 for the stand-in: routes, rate limits, interaction answers, records.

Answers as Discord does where discord.py (or a bot) would notice: the `X-RateLimit-*`
headers on every reply, 429s with `retry_after` (and the `Via` header discord.py insists
on), Unknown interaction after 3 s, message length limits, JSON errors with Discord's
codes. Every request is recorded, accepted or not, with its arrival time, JSON and uploads.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import mimetypes
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from aiohttp import web

from .discord_world import ATTACHMENT_LIMIT, JSON, DiscordWorld, message_errors, now_iso

_log = logging.getLogger(__name__)

API = "/api/v10"
_MESSAGES = "POST /channels/{channel_id}/messages"  # the route rate-limited per channel
_UNLIMITED = (10_000, 1.0)  # routes Discord does not limit in practice; headers stay honest
_ACK_DEADLINE = 3.0  # seconds Discord gives a bot to answer an interaction
_LOADING, _EPHEMERAL = 128, 64  # message flags
_TRUE = ("1", "true", "True")  # how discord.py spells query flags (with_response, wait)


@dataclass(frozen=True)
class Upload:
    """A file a request carried as multipart `files[n]`."""

    field: str
    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class RestCall:
    """One REST request as the stand-in saw it, 429s and errors included."""

    wall: float  # time.time() on arrival
    mono: float  # time.monotonic() on arrival
    method: str
    path: str  # below /api/v10, e.g. /channels/123/messages
    query: dict[str, str]
    json: Any  # the JSON body, or a multipart body's payload_json
    uploads: tuple[Upload, ...]
    status: int
    response: Any  # the JSON answered; None for 204


@dataclass
class SentInteraction:
    """A slash command the stand-in sent, and the bot's answer so far."""

    id: str
    token: str
    name: str
    channel_id: str
    user_id: str
    wall: float  # time.time() when INTERACTION_CREATE was queued to the bot
    mono: float
    response_type: int | None = None  # 4 message, 5 deferred, ...
    original: JSON | None = None  # the message the response made


@dataclass
class _Forced:
    pattern: re.Pattern[str]
    method: str | None
    times: int
    retry_after: float
    status: int = 429


@dataclass
class _Window:
    """A fixed window as Discord's buckets behave: `limit` requests, then wait for the reset."""

    limit: int
    per: float
    count: int = 0
    resets_at: float = 0.0

    def take(self, now: float) -> float | None:
        """Count a request; None if it may go, else the seconds until the window resets."""
        if now >= self.resets_at:
            self.count, self.resets_at = 0, now + self.per
        if self.count >= self.limit:
            return _ceil_ms(self.resets_at - now)
        self.count += 1
        return None

    def headers(self, now: float, bucket: str) -> dict[str, str]:
        after = _ceil_ms(max(self.resets_at - now, 0.0))
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.limit - self.count),
            "X-RateLimit-Reset": f"{time.time() + after:.3f}",
            "X-RateLimit-Reset-After": f"{after:.3f}",
            "X-RateLimit-Bucket": bucket,
        }


@dataclass(frozen=True)
class _Req:
    method: str
    params: dict[str, str]
    query: Mapping[str, str]
    json: Any
    uploads: tuple[Upload, ...]
    mono: float


@dataclass(frozen=True)
class _Reply:
    status: int
    body: Any = None  # None: no content


_Handler = Callable[[_Req], _Reply]
_FORCED_ERRORS = {403: _Reply(403, {"message": "Missing Access", "code": 50001}),
                  404: _Reply(404, {"message": "Unknown Channel", "code": 10003})}


class DiscordRest:
    """The REST side of the stand-in; everything runs on the server's loop."""

    def __init__(self, world: DiscordWorld, token: str, message_rate: tuple[int, float] | None,
                 dispatch: Callable[[str, JSON], None]) -> None:
        """`dispatch` sends a gateway event (the bot's own messages come back as events)."""
        self.origin = ""  # http://127.0.0.1:PORT, once the server listens
        self.calls: list[RestCall] = []
        self.interactions: dict[str, SentInteraction] = {}
        self._world = world
        self._token = token
        self._message_rate = message_rate or _UNLIMITED
        self._dispatch = dispatch
        self._windows: dict[str, _Window] = {}
        self._forced: list[_Forced] = []
        self._files: dict[str, bytes] = {}  # the "CDN": attachment path -> bytes
        self._tokens: dict[str, SentInteraction] = {}  # webhooks name interactions by token
        self._routes = self._route_table()

    def add_routes(self, app: web.Application) -> None:
        """The API under /api/v10, and the attachments it hands out URLs for."""
        app.router.add_route("*", API + "/{tail:.*}", self._handle)
        app.router.add_get("/attachments/{key:.+}", self._cdn)

    def remember(self, sent: SentInteraction) -> None:
        """An interaction the bot may now answer (callback by id, then webhooks by token)."""
        self.interactions[sent.id] = sent
        self._tokens[sent.token] = sent

    def force_429(self, path_regex: str, times: int, retry_after: float,
                  method: str | None) -> None:
        """Answer the next `times` matching requests with a 429, before any other check."""
        self._forced.append(_Forced(re.compile(path_regex), method, times, retry_after))

    def force_error(self, path_regex: str, times: int, status: int,
                    method: str | None) -> None:
        """Answer the next `times` matching requests with `status` (403: Missing Access,
        404: Unknown Channel), as Discord does when a bot lost a channel."""
        self._forced.append(_Forced(re.compile(path_regex), method, times, 0.0, status))

    async def _handle(self, request: web.Request) -> web.Response:
        wall, mono = time.time(), time.monotonic()
        path = "/" + request.match_info["tail"]
        headers: dict[str, str] = {}
        try:
            body, uploads = await _read_body(request)
        except ValueError:
            body, uploads = None, ()
            reply = _Reply(400, {"message": "The request body contains invalid JSON.",
                                 "code": 50109})
        else:
            try:
                reply, headers = self._answer(request, path, body, uploads, mono)
            except Exception:  # a stand-in bug: answered (500) and recorded, for the test to see
                _log.exception("the stand-in failed on %s %s", request.method, path)
                reply = _Reply(500, {"message": "500: Internal Server Error", "code": 0})
        self.calls.append(RestCall(wall, mono, request.method, path, dict(request.query), body,
                                   uploads, reply.status, reply.body))
        return _json(reply.status, reply.body, headers)

    def _answer(self, request: web.Request, path: str, body: Any, uploads: tuple[Upload, ...],
                mono: float) -> tuple[_Reply, dict[str, str]]:
        template, handler, params = self._route(request.method, path)
        unauthenticated = path.startswith(("/webhooks/", "/interactions/"))
        if not unauthenticated and request.headers.get("Authorization") != f"Bot {self._token}":
            return _Reply(401, {"message": "401: Unauthorized", "code": 0}), {}
        major = params.get("channel_id") or params.get("guild_id") or params.get("token", "")
        rate = self._message_rate if template == _MESSAGES else _UNLIMITED
        window = self._windows.setdefault(f"{template} {major}", _Window(*rate))
        bucket = hashlib.sha1(template.encode()).hexdigest()[:32]
        for rule in self._forced:
            if rule.times > 0 and rule.pattern.search(path) and rule.method in (
                None, request.method
            ):
                rule.times -= 1
                if rule.status != 429:
                    return _FORCED_ERRORS[rule.status], window.headers(mono, bucket)
                return _too_many(rule.retry_after, window.headers(mono, bucket))
        wait = window.take(mono)
        if wait is not None:
            return _too_many(wait, window.headers(mono, bucket))
        req = _Req(request.method, params, request.query, body, uploads, mono)
        return handler(req), window.headers(mono, bucket)

    def _route(self, method: str, path: str) -> tuple[str, _Handler, dict[str, str]]:
        for verb, template, pattern, handler in self._routes:
            found = pattern.fullmatch(path)
            if verb == method and found:
                return f"{verb} {template}", handler, found.groupdict()
        return f"{method} {path}", _not_found, {}

    def _route_table(self) -> list[tuple[str, str, re.Pattern[str], _Handler]]:
        world = self._world
        routes: list[tuple[str, str, _Handler]] = [
            ("GET", "/gateway", lambda r: _Reply(200, {"url": self._gateway_url()})),
            ("GET", "/gateway/bot", lambda r: _Reply(200, {
                "url": self._gateway_url(), "shards": 1, "session_start_limit": {
                    "total": 1000, "remaining": 1000,  # not counted down: never runs out
                    "reset_after": 86_400_000, "max_concurrency": 1}})),
            ("GET", "/users/@me", lambda r: _Reply(200, world.bot_user)),
            ("GET", "/oauth2/applications/@me", lambda r: _Reply(200, world.application())),
            ("GET", "/applications/@me", lambda r: _Reply(200, world.application())),
            ("GET", "/applications/{application_id}/commands", self._commands),
            ("PUT", "/applications/{application_id}/commands", self._commands),
            ("GET", "/applications/{application_id}/guilds/{guild_id}/commands", self._commands),
            ("PUT", "/applications/{application_id}/guilds/{guild_id}/commands", self._commands),
            ("POST", "/channels/{channel_id}/messages", self._post_message),
            ("POST", "/channels/{channel_id}/typing", lambda r: _Reply(204)),
            ("PUT", "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}/@me",
             lambda r: _Reply(204)),
            ("POST", "/users/@me/channels", self._open_dm),
            ("POST", "/interactions/{interaction_id}/{token}/callback", self._callback),
            ("GET", "/webhooks/{application_id}/{token}/messages/@original", self._original),
            ("PATCH", "/webhooks/{application_id}/{token}/messages/@original", self._original),
            ("POST", "/webhooks/{application_id}/{token}", self._followup),
        ]
        return [(verb, template, _pattern(template), handler) for verb, template, handler in routes]

    def _gateway_url(self) -> str:
        return self.origin.replace("http://", "ws://", 1) + "/gateway"

    def _open_dm(self, req: _Req) -> _Reply:
        recipient = str((req.json or {}).get("recipient_id"))
        if recipient not in self._world.users:
            return _Reply(400, {"message": "Invalid Recipient(s)", "code": 50033})
        return _Reply(200, self._world.dm_channel(recipient))

    def _commands(self, req: _Req) -> _Reply:
        guild_id = req.params.get("guild_id")
        if req.params["application_id"] != self._world.application_id:
            return _Reply(403, {"message": "Missing Access", "code": 50001})
        if guild_id is not None and guild_id not in self._world.guilds:
            return _Reply(404, {"message": "Unknown Guild", "code": 10004})
        if req.method == "GET":
            return _Reply(200, self._world.commands.get(guild_id, []))
        if not isinstance(req.json, list):
            return _Reply(400, {"message": "Invalid Form Body", "code": 50035})
        return _Reply(200, self._world.sync_commands(guild_id, req.json))

    def _post_message(self, req: _Req) -> _Reply:
        channel_id = req.params["channel_id"]
        if self._world.channel(channel_id) is None:
            return _Reply(404, {"message": "Unknown Channel", "code": 10003})
        payload = req.json or {}
        refused = _refusal(payload, req.uploads)
        if refused is not None:
            return refused
        attachments = self._attachments(channel_id, payload, req.uploads)
        message = self._world.message(channel_id, self._world.bot_user, payload, attachments)
        self._dispatch("MESSAGE_CREATE", self._world.as_event(message))
        return _Reply(200, message)

    def _callback(self, req: _Req) -> _Reply:
        sent = self.interactions.get(req.params["interaction_id"])
        if (sent is None or sent.token != req.params["token"]
                or req.mono - sent.mono > _ACK_DEADLINE):
            return _Reply(404, {"message": "Unknown interaction", "code": 10062})
        if sent.response_type is not None:
            return _Reply(400, {"message": "Interaction has already been acknowledged.",
                                "code": 40060})
        kind = int((req.json or {}).get("type") or 0)
        data = (req.json or {}).get("data") or {}
        if kind == 4:
            refused = _refusal(data, req.uploads)
            if refused is not None:
                return refused
            sent.original = self._interaction_message(sent, data, req.uploads)
        elif kind == 5:
            flags = int(data.get("flags") or 0) | _LOADING
            sent.original = self._interaction_message(sent, {"flags": flags}, ())
        sent.response_type = kind
        if req.query.get("with_response") not in _TRUE:
            return _Reply(204)
        resource: JSON = {"type": kind}
        if sent.original is not None:
            resource["message"] = sent.original
        flags = sent.original["flags"] if sent.original else 0
        return _Reply(200, {"interaction": {
            "id": sent.id, "type": 2,
            "response_message_id": sent.original["id"] if sent.original else None,
            "response_message_loading": bool(flags & _LOADING),
            "response_message_ephemeral": bool(flags & _EPHEMERAL),
        }, "resource": resource})

    def _original(self, req: _Req) -> _Reply:
        sent = self._by_token(req)
        if sent is None:
            return _Reply(404, {"message": "Unknown Webhook", "code": 10015})
        if sent.original is None:
            return _Reply(404, {"message": "Unknown Message", "code": 10008})
        if req.method == "GET":
            return _Reply(200, sent.original)
        payload = req.json or {}
        old = sent.original
        kept = old["attachments"]  # unless the edit lists which to keep, as Discord
        if "attachments" in payload:
            kept_ids = {str(a.get("id")) for a in payload["attachments"] or []}
            kept = [a for a in kept if a["id"] in kept_ids]
        edited = old | {k: payload[k] for k in ("content", "embeds", "components") if k in payload}
        edited |= {"attachments": kept + self._attachments(old["channel_id"], payload, req.uploads),
                   "flags": old["flags"] & ~_LOADING, "edited_timestamp": now_iso()}
        refused = _refusal(edited, ())
        if refused is not None:
            return refused
        sent.original = edited
        if not edited["flags"] & _EPHEMERAL:
            self._dispatch("MESSAGE_UPDATE", self._world.as_event(edited))
        return _Reply(200, edited)

    def _followup(self, req: _Req) -> _Reply:
        sent = self._by_token(req)
        if sent is None or sent.response_type is None:  # no followups before the answer
            return _Reply(404, {"message": "Unknown Webhook", "code": 10015})
        payload = req.json or {}
        refused = _refusal(payload, req.uploads)
        if refused is not None:
            return refused
        message = self._interaction_message(sent, payload, req.uploads)
        waits = req.query.get("wait") in _TRUE
        return _Reply(200, message) if waits else _Reply(204)

    def _by_token(self, req: _Req) -> SentInteraction | None:
        if req.params["application_id"] != self._world.application_id:
            return None
        return self._tokens.get(req.params["token"])

    def _interaction_message(
        self, sent: SentInteraction, payload: JSON, uploads: tuple[Upload, ...]
    ) -> JSON:
        """A message made by an interaction; non-ephemeral ones are also MESSAGE_CREATEd."""
        app_id = self._world.application_id
        message = self._world.message(
            sent.channel_id, self._world.bot_user, payload,
            self._attachments(sent.channel_id, payload, uploads),
            type=20, webhook_id=app_id, application_id=app_id,
            interaction_metadata={"id": sent.id, "type": 2, "name": sent.name,
                                  "user": self._world.users[sent.user_id],
                                  "authorizing_integration_owners": {}},
        )
        if not message["flags"] & _EPHEMERAL:
            self._dispatch("MESSAGE_CREATE", self._world.as_event(message))
        return message

    def _attachments(
        self, channel_id: str, payload: JSON, uploads: tuple[Upload, ...]
    ) -> list[JSON]:
        """Attachment objects for `files[n]`, described by payload["attachments"][id=n]."""
        described = {str(a.get("id")): a for a in payload.get("attachments") or []}
        made = []
        for upload in uploads:
            meta = described.get(upload.field.removeprefix("files[").removesuffix("]"), {})
            attachment_id = self._world.ids.next()
            filename = meta.get("filename") or upload.filename
            key = f"{channel_id}/{attachment_id}/{quote(filename)}"
            self._files[key] = upload.data
            url = f"{self.origin}/attachments/{key}"
            made.append({
                "id": attachment_id, "filename": filename, "size": len(upload.data),
                "url": url, "proxy_url": url, "content_type": upload.content_type,
                "description": meta.get("description"), "flags": 0,
            })
        return made

    async def _cdn(self, request: web.Request) -> web.Response:
        data = self._files.get(quote(request.match_info["key"], safe="/"))
        return web.Response(body=data) if data is not None else web.Response(status=404)


async def _read_body(request: web.Request) -> tuple[Any, tuple[Upload, ...]]:
    """The JSON body, or a multipart one's payload_json and `files[n]`; ValueError if bad."""
    if request.content_type == "multipart/form-data":
        form = await request.post()
        body: Any = None
        uploads = []
        for name, value in form.items():
            if isinstance(value, web.FileField):
                kind = mimetypes.guess_type(value.filename)[0] or "application/octet-stream"
                uploads.append(Upload(name, value.filename, kind, value.file.read()))
            elif name == "payload_json":
                body = json.loads(value)
        return body, tuple(uploads)
    text = await request.text()
    return (json.loads(text) if text else None), ()


def _refusal(payload: JSON, uploads: tuple[Upload, ...]) -> _Reply | None:
    if sum(len(u.data) for u in uploads) > ATTACHMENT_LIMIT:
        return _Reply(413, {"message": "Request entity too large", "code": 40005})
    errors = message_errors(payload, len(uploads) + len(payload.get("attachments") or []))
    return None if errors is None else _Reply(400, errors)


def _too_many(retry_after: float, headers: dict[str, str]) -> tuple[_Reply, dict[str, str]]:
    """Discord's 429; discord.py only honours it with a `Via` header (else: Cloudflare ban)."""
    body = {"message": "You are being rate limited.", "retry_after": retry_after,
            "global": False}
    headers = headers | {"X-RateLimit-Remaining": "0", "Retry-After": str(math.ceil(retry_after)),
                         "X-RateLimit-Scope": "user", "Via": "1.1 google"}
    return _Reply(429, body), headers


def _not_found(req: _Req) -> _Reply:
    return _Reply(404, {"message": "404: Not Found", "code": 0})


def _json(status: int, body: Any, headers: dict[str, str]) -> web.Response:
    """Exactly `application/json`: discord.py reads anything else (even +charset) as text."""
    if body is None:
        return web.Response(status=status, headers=headers)
    return web.Response(status=status, body=json.dumps(body).encode(),
                        content_type="application/json", headers=headers)


def _pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"\{(\w+)\}", template)
    return re.compile("".join(
        f"(?P<{part}>[^/]+)" if i % 2 else re.escape(part) for i, part in enumerate(parts)
    ))


def _ceil_ms(seconds: float) -> float:
    """Round up to the millisecond: a bot that waits what it is told must find the reset."""
    return math.ceil(seconds * 1000) / 1000
