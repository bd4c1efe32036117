"""Guards against web pages writing to, or reading from, a keyless server on loopback.

Any page a browser opens may POST to ``http://127.0.0.1:8080`` without asking first (no
CORS preflight) when the body is ``text/plain``, a form or multipart, or has no type at
all; and by DNS rebinding (its own name re-resolved to 127.0.0.1) it may also read the
answers. So a body is taken only with a media type its operation declares in the OpenAPI
document (JSON, or NDJSON where documented: a browser must preflight those; an untyped body
only without ``Origin``, i.e. not from a page), and a server
on loopback answers only requests whose Host names it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection

from fastapi import Request
from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from ..errors import MisdirectedRequest, UnsupportedMediaType
from ..settings import Settings
from .routes import JSON

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
JSON_TYPE = "application/json"


def is_loopback(host: str) -> bool:
    """Whether `host` (a name or an address to listen on) is this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def allowed_hosts(settings: Settings) -> frozenset[str] | None:
    """The names a request's Host may carry (any port), or None for any name: the
    setting `allowed_hosts` if given (``*`` is any), else on loopback the loopback names
    and the address listened on, else (a server with keys on a network) any."""
    if settings.allowed_hosts is not None:
        names = frozenset(_name(h) for h in settings.allowed_hosts)
        return None if "*" in names else names
    if is_loopback(settings.host):
        return LOOPBACK_NAMES | {_name(settings.host)}
    return None


def _name(host: str) -> str:
    """The name in a Host header without its port, lowercased: ``[::1]:8080`` -> ``::1``."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class HostGuard:
    """ASGI middleware refusing, with a 421, a request whose Host is not in `allowed`
    (a request without Host, which no browser sends, passes)."""

    def __init__(self, app: ASGIApp, allowed: Collection[str]) -> None:
        self.app = app
        self.allowed = allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            host = dict(scope["headers"]).get(b"host")
            if host is not None and _name(host.decode("latin-1")) not in self.allowed:
                exc = MisdirectedRequest(
                    f"this server does not answer to Host {host.decode('latin-1')!r}; "
                    f"use one of {', '.join(sorted(self.allowed))} (setting allowed_hosts)")
                await JSON(exc.to_dict(), status_code=exc.status)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def media_types(route: object) -> frozenset[str]:
    """The media types `route` takes a body in: those its OpenAPI request body declares,
    or JSON for a body FastAPI parses into a model; none if it takes no body."""
    if not isinstance(route, APIRoute):
        return frozenset()
    declared = (route.openapi_extra or {}).get("requestBody", {}).get("content", {})
    if declared:
        return frozenset(declared)
    return frozenset({JSON_TYPE}) if route.body_field is not None else frozenset()


async def declared_media_type(request: Request) -> None:
    """Refuse (415) a request to a route taking a body unless its Content-Type is one the
    route declares (``application/…+json`` counts as JSON). A body with no Content-Type
    is taken as JSON only from a client that is not a web page: browsers send ``Origin``
    with every POST and PUT, scripts (``requests.post(data=…)``) send neither."""
    accepted = media_types(request.scope.get("route"))
    if not accepted:
        return
    given = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    if given in accepted or (given.startswith("application/") and given.endswith("+json")
                             and JSON_TYPE in accepted):
        return
    if not given and "origin" not in request.headers and JSON_TYPE in accepted:
        return
    raise UnsupportedMediaType(
        f"send the body with Content-Type: {' or '.join(sorted(accepted))}"
        f"{'; got ' + repr(given) if given else ' (the request had none)'}",
        accepted=sorted(accepted))
