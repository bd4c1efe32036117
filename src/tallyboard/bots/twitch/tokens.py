"""Tokens Twitch renewed, kept in the tracker's data dir so that a restart uses them.

A renewal uses up the refresh token it spends and answers with a new one, so once the
tracker has renewed, the configured pair no longer works: a restart that went back to it
would be refused. The renewed pair is kept in `twitch-tokens.json` (owner-only, fsynced,
replaced whole) with a digest of the configured pair it grew from: a restart with the
same configuration starts from the renewed pair, a changed configuration (new tokens
pasted in) from the configured one."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

log = logging.getLogger("tallyboard.twitch")


class KeptTokens:
    def __init__(self, path: Path, token: str | None, refresh_token: str | None) -> None:
        self.path = path
        self._configured = hashlib.sha256(f"{token}\0{refresh_token}".encode()).hexdigest()

    def load(self) -> tuple[str, str | None] | None:
        """The renewed pair, if it grew from the configured one."""
        try:
            kept = json.loads(self.path.read_text(encoding="utf-8"))
            if kept["configured"] != self._configured:
                log.info("the configured Twitch tokens changed: starting from them")
                return None
            return str(kept["token"]), kept.get("refresh_token")
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("cannot read the renewed Twitch tokens in %s (%s): starting from "
                        "the configured ones", self.path, type(exc).__name__)
            return None

    def save(self, token: str, refresh_token: str | None) -> None:
        """Keep a renewed pair (a failure is logged: the renewal itself worked)."""
        tmp = self.path.with_suffix(".tmp")
        body = json.dumps({"configured": self._configured, "token": token,
                           "refresh_token": refresh_token}).encode()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, body)
                os.fsync(fd)
            finally:
                os.close(fd)
            tmp.replace(self.path)
            folder = os.open(self.path.parent, os.O_RDONLY)
            try:  # the rename itself survives a power cut
                os.fsync(folder)
            finally:
                os.close(folder)
        except OSError as exc:
            log.error("could not keep the renewed Twitch tokens in %s: %s (a restart "
                      "starts from the configured ones, which may be used up)", self.path, exc)
