"""API keys (scopes and spaces) and a per-key token-bucket rate limit."""

from __future__ import annotations

import hmac
import math
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from ..errors import Forbidden, RateLimited, Unauthorized
from ..settings import ApiKey

ALL_SCOPES = frozenset({"read", "write", "admin"})


@dataclass(frozen=True)
class Principal:
    """Who is calling: the scopes they hold and the spaces they may touch."""

    name: str
    scopes: frozenset[str]
    spaces: frozenset[str]

    def require(self, scope: str, spaces: Iterable[str]) -> None:
        """Forbidden unless this caller has `scope` in every one of `spaces`."""
        if scope not in self.scopes:
            raise Forbidden(f"this key lacks the {scope!r} scope", scope=scope)
        if "*" in self.spaces:
            return
        for space in spaces:
            if space not in self.spaces:
                raise Forbidden(f"this key may not use space {space!r}", space=space)


OPEN = Principal("anonymous", ALL_SCOPES, frozenset({"*"}))


@dataclass
class KeyRing:
    """The configured keys; with none configured every request has every scope."""

    keys: Sequence[ApiKey]
    rate: float = 0.0
    burst: int = 100
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def authenticate(self, header: str | None) -> Principal:
        """The caller behind an ``Authorization: Bearer <key>`` header."""
        if not self.keys:
            return OPEN
        if not header or not header.lower().startswith("bearer "):
            raise Unauthorized("send an API key as 'Authorization: Bearer <key>'")
        given = header[7:].strip().encode()
        for k in self.keys:
            secret = k.key.get_secret_value()
            if hmac.compare_digest(given, secret.encode()):
                self._take(secret)
                return Principal(secret[:4] + "…", frozenset(k.scopes), frozenset(k.spaces))
        raise Unauthorized("unknown API key")

    def _take(self, key: str) -> None:
        if self.rate <= 0:
            return
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens < 1:
                self._buckets[key] = (tokens, now)
                raise RateLimited("too many requests for this key; slow down",
                                  retry_after=max(1, math.ceil((1 - tokens) / self.rate)))
            self._buckets[key] = (tokens - 1, now)
