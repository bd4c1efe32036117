"""API keys (scopes and spaces) and a token-bucket rate limit per client.

The limit applies to every `/v1` request when `rate_limit` is set: a request with a
valid key draws from that key's bucket (wherever it comes from); any other request —
on a server with no keys, or with a missing or unknown key — draws from the bucket of
its client address, before it is told 401, so guessing keys is limited too.
"""

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
# Buckets kept before full ones (those that have refilled, so equal to a new one) are
# dropped: many client addresses cannot grow the table without bound.
MAX_BUCKETS = 10_000


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
    """The configured keys (with none every request has every scope) and the buckets."""

    keys: Sequence[ApiKey]
    rate: float = 0.0
    burst: int = 100
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def authenticate(self, header: str | None, client: str | None = None) -> Principal:
        """The caller behind an ``Authorization: Bearer <key>`` header, sent from the
        address `client`; RateLimited when its bucket is empty."""
        if not self.keys:
            self._take(f"client {client}")
            return OPEN
        found = self._find(header)
        if found is None:
            self._take(f"client {client}")
            if not header or not header.lower().startswith("bearer "):
                raise Unauthorized("send an API key as 'Authorization: Bearer <key>'")
            raise Unauthorized("unknown API key")
        secret = found.key.get_secret_value()
        self._take(f"key {secret}")
        return Principal(secret[:4] + "…", frozenset(found.scopes), frozenset(found.spaces))

    def _find(self, header: str | None) -> ApiKey | None:
        if not header or not header.lower().startswith("bearer "):
            return None
        given = header[7:].strip().encode()
        for k in self.keys:
            if hmac.compare_digest(given, k.key.get_secret_value().encode()):
                return k
        return None

    def _take(self, bucket: str) -> None:
        """One token from `bucket`, or RateLimited saying when the next one is there."""
        if self.rate <= 0:
            return
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(bucket, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens < 1:
                self._buckets[bucket] = (tokens, now)
                raise RateLimited("too many requests from this client; slow down",
                                  retry_after=max(1, math.ceil((1 - tokens) / self.rate)))
            self._buckets[bucket] = (tokens - 1, now)
            if len(self._buckets) > MAX_BUCKETS:
                self._drop_full(now)

    def _drop_full(self, now: float) -> None:
        full = [name for name, (tokens, last) in self._buckets.items()
                if tokens + (now - last) * self.rate >= self.burst]
        for name in full:
            del self._buckets[name]
