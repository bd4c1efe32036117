"""The users, guilds and commands the Discord stand-in serves, as Discord's v10 JSON payloads.

Pure state and payload builders, no I/O: `discord_standin` owns the protocols and calls
in here for what to say. Every payload carries the keys discord.py 2.7 indexes without
`.get()` (a missing one is a KeyError deep inside its parsers, not a clear failure).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import IntFlag
from typing import Any

JSON = dict[str, Any]

DISCORD_EPOCH_MS = 1_420_070_400_000
ATTACHMENT_LIMIT = 10 * 1024 * 1024  # a guild without boosts: bigger uploads get 413


class Intent(IntFlag):
    """The gateway intents whose absence changes what the stand-in sends."""

    GUILDS = 1 << 0
    GUILD_MEMBERS = 1 << 1
    GUILD_VOICE_STATES = 1 << 7
    GUILD_PRESENCES = 1 << 8
    GUILD_MESSAGES = 1 << 9
    GUILD_MESSAGE_REACTIONS = 1 << 10
    DIRECT_MESSAGES = 1 << 12
    MESSAGE_CONTENT = 1 << 15


class Permission(IntFlag):
    """The permission bits guild roles are built from (Discord sends them as int strings)."""

    ADMINISTRATOR = 1 << 3
    MANAGE_GUILD = 1 << 5
    ADD_REACTIONS = 1 << 6
    VIEW_CHANNEL = 1 << 10
    SEND_MESSAGES = 1 << 11
    EMBED_LINKS = 1 << 14
    ATTACH_FILES = 1 << 15
    READ_MESSAGE_HISTORY = 1 << 16
    CONNECT = 1 << 20
    SPEAK = 1 << 21
    USE_APPLICATION_COMMANDS = 1 << 31


EVERYONE = (
    Permission.ADD_REACTIONS | Permission.VIEW_CHANNEL | Permission.SEND_MESSAGES
    | Permission.EMBED_LINKS | Permission.ATTACH_FILES | Permission.READ_MESSAGE_HISTORY
    | Permission.CONNECT | Permission.SPEAK | Permission.USE_APPLICATION_COMMANDS
)
ALL_PERMISSIONS = (1 << 51) - 1  # what Discord reports for owners and administrators

TEXT, DM, VOICE, CATEGORY = 0, 1, 2, 4  # channel types
VOICE_FLAGS = frozenset(
    {"deaf", "mute", "self_deaf", "self_mute", "self_stream", "self_video", "suppress"}
)
_MENTION = re.compile(r"<@!?(\d+)>")
_SCALAR_OPTIONS = {3: str, 4: int, 5: bool, 10: float}  # string, integer, boolean, number
_USER, _CHANNEL, _ROLE = 6, 7, 8


def now_iso() -> str:
    """Discord's ISO 8601 timestamps (with microseconds and +00:00)."""
    return datetime.now(UTC).isoformat()


class Snowflakes:
    """Discord ids: time since 2015 in the high bits, so discord.py's snowflake_time() works."""

    def __init__(self) -> None:
        self._last = 0

    def next(self) -> str:
        """A new id, larger than every id given before."""
        stamp = (int(time.time() * 1000) - DISCORD_EPOCH_MS) << 22
        self._last = max(stamp, self._last + 1)
        return str(self._last)


@dataclass
class Guild:
    """One guild's state; GUILD_CREATE is built from it as it is at that moment."""

    id: str
    name: str
    owner_id: str
    roles: dict[str, JSON] = field(default_factory=dict)
    channels: dict[str, JSON] = field(default_factory=dict)
    members: dict[str, JSON] = field(default_factory=dict)  # by user id, with `user`
    voice_states: dict[str, JSON] = field(default_factory=dict)  # by user id
    afk_channel_id: str | None = None

    def permissions(self, user_id: str) -> int:
        """The member's guild permissions: its roles', or everything for owner and admins."""
        member = self.members.get(user_id)
        if member is None:
            return 0
        bits = int(self.roles[self.id]["permissions"])
        for role_id in member["roles"]:
            bits |= int(self.roles[role_id]["permissions"])
        if user_id == self.owner_id or bits & Permission.ADMINISTRATOR:
            return ALL_PERMISSIONS
        return bits


class DiscordWorld:
    """Users, guilds, DM channels and synced commands, with the payloads Discord makes of them."""

    def __init__(self, bot_name: str) -> None:
        self.ids = Snowflakes()
        self.users: dict[str, JSON] = {}
        self.guilds: dict[str, Guild] = {}
        self.dm_channels: dict[str, JSON] = {}
        self.commands: dict[str | None, list[JSON]] = {}  # by guild id, None for global
        self.bot_user = self.add_user(bot_name, bot=True)
        self.application_id: str = self.bot_user["id"]  # as for every app made since 2021

    # -- building ---------------------------------------------------------------------
    def add_user(self, name: str, *, bot: bool = False) -> JSON:
        """A user object; `bot` is what discord.py's `Member.bot` reads."""
        user: JSON = {
            "id": self.ids.next(), "username": name, "global_name": None,
            "discriminator": "0", "avatar": None, "bot": bot, "public_flags": 0,
        }
        self.users[user["id"]] = user
        return user

    def add_guild(self, name: str, owner_id: str | None) -> Guild:
        """A guild with its @everyone role (id = guild id), the bot and the owner as members."""
        guild = Guild(id=self.ids.next(), name=name, owner_id=owner_id or self.bot_user["id"])
        guild.roles[guild.id] = _role(guild.id, "@everyone", EVERYONE, 0)
        self.guilds[guild.id] = guild
        self.add_member(guild.id, self.bot_user["id"], ())
        self.add_member(guild.id, guild.owner_id, ())
        return guild

    def add_role(self, guild_id: str, name: str, permissions: int) -> JSON:
        """A role under every existing one."""
        guild = self.guilds[guild_id]
        role = _role(self.ids.next(), name, permissions, len(guild.roles))
        guild.roles[role["id"]] = role
        return role

    def add_member(self, guild_id: str, user_id: str, roles: Iterable[str]) -> JSON:
        """A member object (with `user`), joined now."""
        guild = self.guilds[guild_id]
        roles = list(roles)
        if unknown := set(roles) - set(guild.roles):
            raise LookupError(f"guild {guild_id} has no roles {sorted(unknown)}")
        member = {
            "user": self.users[user_id], "roles": roles, "nick": None, "avatar": None,
            "joined_at": now_iso(), "premium_since": None, "deaf": False, "mute": False,
            "flags": 0, "pending": False, "communication_disabled_until": None,
        }
        guild.members[user_id] = member
        return member

    def add_channel(self, guild_id: str, kind: int, name: str, parent_id: str | None) -> JSON:
        """A text, voice or category channel, placed after the guild's others."""
        guild = self.guilds[guild_id]
        channel: JSON = {
            "id": self.ids.next(), "type": kind, "guild_id": guild_id, "name": name,
            "position": len(guild.channels), "parent_id": parent_id,
            "permission_overwrites": [], "nsfw": False, "flags": 0,
        }
        if kind == TEXT:
            channel |= {"topic": None, "last_message_id": None, "rate_limit_per_user": 0}
        elif kind == VOICE:
            channel |= {"bitrate": 64000, "user_limit": 0, "rtc_region": None,
                        "last_message_id": None, "rate_limit_per_user": 0}
        guild.channels[channel["id"]] = channel
        return channel

    def dm_channel(self, user_id: str) -> JSON:
        """The bot's DM channel with a user, made on first use as Discord does."""
        for channel in self.dm_channels.values():
            if channel["recipients"][0]["id"] == user_id:
                return channel
        channel = {"id": self.ids.next(), "type": DM, "last_message_id": None,
                   "recipients": [self.users[user_id]], "flags": 0}
        self.dm_channels[channel["id"]] = channel
        return channel

    def set_voice_state(
        self, guild_id: str, user_id: str, channel_id: str | None, flags: Mapping[str, bool]
    ) -> JSON:
        """Move a member into a voice channel (or out, with None); the VOICE_STATE_UPDATE data."""
        guild = self.guilds[guild_id]
        if user_id not in guild.members:
            raise LookupError(f"user {user_id} is not a member of guild {guild_id}")
        if channel_id is not None and guild.channels[channel_id]["type"] != VOICE:
            raise ValueError(f"channel {channel_id} is not a voice channel")
        if unknown := set(flags) - VOICE_FLAGS:
            raise ValueError(f"unknown voice state flags: {sorted(unknown)}")
        old = guild.voice_states.pop(user_id, None)
        state: JSON = {
            "guild_id": guild_id, "channel_id": channel_id, "user_id": user_id,
            "session_id": old["session_id"] if old else self.ids.next(),
            "deaf": False, "mute": False, "self_deaf": False, "self_mute": False,
            "self_stream": False, "self_video": False, "suppress": False,
            "request_to_speak_timestamp": None,
        } | dict(flags)
        if channel_id is not None:
            guild.voice_states[user_id] = state
        return state | {"member": guild.members[user_id]}

    def sync_commands(self, guild_id: str | None, payload: list[JSON]) -> list[JSON]:
        """Bulk overwrite; a command keeps its id while its name and type stay, as on Discord."""
        old = {(c["name"], c.get("type", 1)): c["id"] for c in self.commands.get(guild_id, [])}
        synced = []
        for command in payload:
            key = (command["name"], command.get("type", 1))
            extra = {"guild_id": guild_id} if guild_id else {}
            synced.append({
                "description": "", "options": [], "default_member_permissions": None,
                "nsfw": False, "type": 1, **command,
                "id": old.get(key) or self.ids.next(), "application_id": self.application_id,
                "version": self.ids.next(), **extra,
            })
        self.commands[guild_id] = synced
        return synced

    # -- reading ----------------------------------------------------------------------
    def channel(self, channel_id: str) -> tuple[JSON, Guild | None] | None:
        """A channel and its guild (None for DMs), or None if Discord would say Unknown Channel."""
        for guild in self.guilds.values():
            if channel_id in guild.channels:
                return guild.channels[channel_id], guild
        if channel_id in self.dm_channels:
            return self.dm_channels[channel_id], None
        return None

    def ready(self, session_id: str, resume_url: str, shard: list[int] | None) -> JSON:
        """READY: the guilds only as unavailable stubs; each GUILD_CREATE follows."""
        ready: JSON = {
            "v": 10, "user": self.bot_user | {"verified": True, "mfa_enabled": False, "flags": 0},
            "guilds": [{"id": g, "unavailable": True} for g in self.guilds],
            "session_id": session_id, "session_type": "normal",
            "resume_gateway_url": resume_url, "private_channels": [], "relationships": [],
            "presences": [], "application": {"id": self.application_id, "flags": 0},
            "_trace": ["discord-standin"],
        }
        if shard is not None:
            ready["shard"] = shard
        return ready

    def guild_create(self, guild: Guild, intents: int) -> JSON:
        """GUILD_CREATE as it is now; without GUILD_PRESENCES (or in a large guild) Discord
        lists only the bot and members in voice: discord.py asks for the rest (op 8)."""
        large = len(guild.members) >= 250
        if intents & Intent.GUILD_PRESENCES and not large:
            members = list(guild.members.values())
        else:
            listed = {self.bot_user["id"], *guild.voice_states}
            members = [m for u, m in guild.members.items() if u in listed]
        return {
            "id": guild.id, "name": guild.name, "owner_id": guild.owner_id, "icon": None,
            "splash": None, "discovery_splash": None, "banner": None, "description": None,
            "features": [], "emojis": [], "stickers": [], "roles": list(guild.roles.values()),
            "channels": list(guild.channels.values()), "threads": [], "members": members,
            "voice_states": [_without(v, "guild_id") for v in guild.voice_states.values()],
            "presences": [], "stage_instances": [], "guild_scheduled_events": [],
            "soundboard_sounds": [], "member_count": len(guild.members),
            "large": large, "unavailable": False,
            "joined_at": guild.members[self.bot_user["id"]]["joined_at"],
            "afk_channel_id": guild.afk_channel_id, "afk_timeout": 300,
            "system_channel_id": None,
            "verification_level": 0, "default_message_notifications": 1,
            "explicit_content_filter": 0, "mfa_level": 0, "nsfw_level": 0, "premium_tier": 0,
            "premium_subscription_count": 0, "preferred_locale": "en-US",
            "application_id": None, "max_members": 500000, "max_video_channel_users": 25,
        }

    def member_chunk(self, request: JSON) -> JSON:
        """GUILD_MEMBERS_CHUNK answering one REQUEST_GUILD_MEMBERS, in a single chunk."""
        guild = self.guilds[str(request["guild_id"])]
        wanted = [str(u) for u in request.get("user_ids") or []]
        if wanted:
            found = [guild.members[u] for u in wanted if u in guild.members]
        else:
            query = (request.get("query") or "").lower()
            found = [m for m in guild.members.values()
                     if m["user"]["username"].lower().startswith(query)]
            found = found[: request.get("limit") or None]
        chunk: JSON = {
            "guild_id": guild.id, "members": found, "chunk_index": 0, "chunk_count": 1,
            "not_found": [u for u in wanted if u not in guild.members],
        }
        if "nonce" in request:
            chunk["nonce"] = request["nonce"]
        return chunk

    def application(self) -> JSON:
        """GET /oauth2/applications/@me, which discord.py's login fetches."""
        return {
            "id": self.application_id, "name": self.bot_user["username"], "icon": None,
            "description": "", "bot_public": True, "bot_require_code_grant": False,
            "owner": self.bot_user, "team": None, "verify_key": "0" * 64, "flags": 0,
            "bot": self.bot_user, "interactions_endpoint_url": None, "redirect_uris": [],
        }

    # -- messages and interactions --------------------------------------------------------
    def message(self, channel_id: str, author: JSON, payload: JSON, attachments: list[JSON],
                **extra: Any) -> JSON:
        """The message object REST answers with, from what the sender posted."""
        content = payload.get("content") or ""
        return {
            "id": self.ids.next(), "channel_id": channel_id, "author": author,
            "content": content, "timestamp": now_iso(), "edited_timestamp": None,
            "tts": bool(payload.get("tts")), "mention_everyone": False,
            "mentions": [self.users[u] for u in _MENTION.findall(content) if u in self.users],
            "mention_roles": [], "attachments": attachments,
            "embeds": [{"type": "rich"} | e for e in payload.get("embeds") or []],
            "components": payload.get("components") or [], "pinned": False, "type": 0,
            "flags": payload.get("flags") or 0, "nonce": payload.get("nonce"),
        } | extra

    def as_event(self, message: JSON) -> JSON:
        """MESSAGE_CREATE data: the message plus guild_id and the author's member (no user)."""
        found = self.channel(message["channel_id"])
        guild = found[1] if found else None
        if guild is None:
            return message
        member = guild.members.get(message["author"]["id"])
        event = message | {"guild_id": guild.id}
        if member is not None:
            event["member"] = _without(member, "user")
        return event

    def interaction(self, interaction_id: str, token: str, channel_id: str, user_id: str,
                    name: str, options: Mapping[str, Any]) -> JSON:
        """INTERACTION_CREATE for a slash command; `name` may be "group sub" for subcommands."""
        found = self.channel(channel_id)
        if found is None:
            raise LookupError(f"unknown channel {channel_id}")
        channel, guild = found
        if guild is not None and user_id not in guild.members:
            raise LookupError(f"user {user_id} is not a member of guild {guild.id}")
        words = name.split()
        command = self._command(words[0], guild)
        data: JSON = {"id": command["id"], "name": words[0], "type": 1}
        if "guild_id" in command:
            data["guild_id"] = command["guild_id"]
        resolved: JSON = {}
        data["options"] = self._options(command, words[1:], options, guild, resolved)
        if resolved:
            data["resolved"] = resolved
        user = self.users[user_id]
        event: JSON = {
            "id": interaction_id, "application_id": self.application_id, "type": 2,
            "token": token, "version": 1, "data": data, "channel_id": channel_id,
            "locale": "en-US", "entitlements": [], "entitlement_sku_ids": [],
            "attachment_size_limit": ATTACHMENT_LIMIT,
        }
        if guild is None:
            return event | {
                "channel": channel | {"permissions": str(ALL_PERMISSIONS)}, "user": user,
                "context": 1, "authorizing_integration_owners": {"1": user_id},
                "app_permissions": str(ALL_PERMISSIONS),
            }
        perms = guild.permissions(user_id)
        return event | {
            "guild_id": guild.id, "guild": {"id": guild.id, "locale": "en-US", "features": []},
            "guild_locale": "en-US", "channel": channel | {"permissions": str(perms)},
            "member": guild.members[user_id] | {"permissions": str(perms)}, "context": 0,
            "authorizing_integration_owners": {"0": guild.id},
            "app_permissions": str(guild.permissions(self.bot_user["id"])),
        }

    def _command(self, name: str, guild: Guild | None) -> JSON:
        scopes = [guild.id, None] if guild else [None]
        for scope in scopes:
            for command in self.commands.get(scope, []):
                if command["name"] == name and command.get("type", 1) == 1:
                    return command
        raise LookupError(f"no slash command {name!r} synced for this channel's guild")

    def _options(self, command: JSON, path: list[str], values: Mapping[str, Any],
                 guild: Guild | None, resolved: JSON) -> list[JSON]:
        """The options as Discord types them, from the synced definition; subcommands nest."""
        defined = {o["name"]: o for o in command.get("options") or []}
        if path:
            sub = defined.get(path[0])
            if sub is None or sub["type"] not in (1, 2):
                raise LookupError(f"{command['name']!r} has no subcommand {path[0]!r}")
            inner = self._options(sub, path[1:], values, guild, resolved)
            return [{"name": sub["name"], "type": sub["type"], "options": inner}]
        missing = {n for n, o in defined.items() if o.get("required")} - set(values)
        if unknown := set(values) - set(defined):
            raise ValueError(f"{command['name']!r} has no options {sorted(unknown)}")
        if missing:
            raise ValueError(f"{command['name']!r} requires options {sorted(missing)}")
        return [self._option(defined[n], v, guild, resolved) for n, v in values.items()]

    def _option(self, option: JSON, value: Any, guild: Guild | None, resolved: JSON) -> JSON:
        kind = option["type"]
        if kind in _SCALAR_OPTIONS:
            return {"name": option["name"], "type": kind, "value": _SCALAR_OPTIONS[kind](value)}
        key = str(value)
        if kind == _USER:
            resolved.setdefault("users", {})[key] = self.users[key]
            if guild is not None and key in guild.members:
                member = _without(guild.members[key], "user")
                member["permissions"] = str(guild.permissions(key))
                resolved.setdefault("members", {})[key] = member
        elif kind == _CHANNEL and guild is not None:
            channel = guild.channels[key]
            resolved.setdefault("channels", {})[key] = channel | {
                "permissions": str(guild.permissions(self.bot_user["id"]))}
        elif kind == _ROLE and guild is not None:
            resolved.setdefault("roles", {})[key] = guild.roles[key]
        else:
            raise ValueError(f"option type {kind} is not supported by the stand-in")
        return {"name": option["name"], "type": kind, "value": key}


def message_errors(payload: JSON, attachments: int) -> JSON | None:
    """Discord's 400 body for a message it would refuse (empty, or past a length limit)."""
    content = payload.get("content") or ""
    embeds = payload.get("embeds") or []
    if not (content or embeds or attachments or payload.get("components")
            or payload.get("sticker_ids") or payload.get("poll")):
        return {"message": "Cannot send an empty message", "code": 50006}
    errors: JSON = {}
    if len(content) > 2000:
        errors["content"] = _too_long(2000)
    if len(embeds) > 10:
        errors["embeds"] = _too_long(10)
    total = 0
    for i, embed in enumerate(embeds):
        for where, text, limit in _embed_texts(embed):
            total += len(text)
            if len(text) > limit:
                errors[f"embeds.{i}.{where}"] = _too_long(limit)
        if len(embed.get("fields") or []) > 25:
            errors[f"embeds.{i}.fields"] = _too_long(25)
    if total > 6000:
        errors["embeds"] = {"_errors": [{"code": "MAX_EMBED_SIZE_EXCEEDED",
                                         "message": "Embed size exceeds maximum size of 6000"}]}
    if errors:
        return {"message": "Invalid Form Body", "code": 50035, "errors": errors}
    return None


def _embed_texts(embed: JSON) -> list[tuple[str, str, int]]:
    texts = [("title", embed.get("title") or "", 256),
             ("description", embed.get("description") or "", 4096),
             ("footer.text", (embed.get("footer") or {}).get("text") or "", 2048),
             ("author.name", (embed.get("author") or {}).get("name") or "", 256)]
    for i, f in enumerate(embed.get("fields") or []):
        texts += [(f"fields.{i}.name", f.get("name") or "", 256),
                  (f"fields.{i}.value", f.get("value") or "", 1024)]
    return texts


def _too_long(limit: int) -> JSON:
    return {"_errors": [{"code": "BASE_TYPE_MAX_LENGTH",
                         "message": f"Must be {limit} or fewer in length."}]}


def _role(role_id: str, name: str, permissions: int, position: int) -> JSON:
    return {
        "id": role_id, "name": name, "permissions": str(int(permissions)), "position": position,
        "color": 0, "colors": {"primary_color": 0, "secondary_color": None,
                               "tertiary_color": None},
        "hoist": False, "icon": None, "unicode_emoji": None, "managed": False,
        "mentionable": False, "flags": 0,
    }


def _without(payload: JSON, key: str) -> JSON:
    return {k: v for k, v in payload.items() if k != key}
