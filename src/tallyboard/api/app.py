"""The ASGI app factory: routes, JSON errors everywhere, health, Prometheus and OpenAPI."""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Callable
from importlib import resources
from typing import Any, TypeVar

import anyio
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from .. import __name__ as package
from ..bots.state import BotState
from ..bots.twitch.tracker import Tracker
from ..engine import KEEP_UP_EVERY, Tallyboard
from ..errors import StoreUnavailable, TallyboardError, Unauthorized
from ..queue.kept import KeptMessages
from ..settings import Settings
from .admission import WriteGate
from .auth import KeyRing
from .bot_routes import router as bot_router
from .guards import HostGuard, allowed_hosts, declared_media_type
from .ingest_routes import router as ingest_router
from .presence_routes import router as presence_router
from .routes import JSON, router
from .schemas import MEANINGS, ErrorOut, finish_openapi
from .telemetry import Telemetry, TelemetryMiddleware
from .twitch_routes import router as twitch_router

log = logging.getLogger("tallyboard.api")
PROBED_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
T = TypeVar("T")

HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
              405: "method_not_allowed", 409: "conflict", 413: "too_large",
              415: "unsupported_media_type", 421: "misdirected_request",
              422: "invalid_event", 429: "rate_limited",
              503: "store_unavailable"}


def create_app(engine: Tallyboard, settings: Settings | None = None) -> FastAPI:
    """An app serving `engine`; the caller owns the engine's lifetime."""
    settings = settings or Settings()
    app = FastAPI(title="tallyboard", version="1", docs_url="/docs", redoc_url=None,
                  description="Exact, real-time counters, leaderboards, streaks and presence.",
                  dependencies=[Depends(declared_media_type)],
                  lifespan=functools.partial(_keeping_up, engine))
    app.state.engine = engine
    app.state.checks = []
    app.state.keys = KeyRing(settings.keys, settings.rate_limit, settings.rate_burst)
    app.state.telemetry = telemetry = Telemetry(engine)
    app.state.run = _in_thread
    app.state.writes = WriteGate(settings.max_pending_writes)
    app.include_router(router)
    app.include_router(presence_router)
    _guard_hosts(app, settings)
    app.add_middleware(TelemetryMiddleware, telemetry=telemetry)
    _add_error_handlers(app)
    _add_operations(app, telemetry)
    app.openapi = functools.partial(_openapi, app)  # type: ignore[method-assign]
    return app


def create_bot_app(state: BotState | None, settings: Settings | None = None) -> FastAPI:
    """The HTTP side of a bot whose tallyboard is a server elsewhere: health, /metrics
    (`app.state.registry`) and, given its state, the bot's errors and countdowns."""
    settings = settings or Settings()
    app = FastAPI(title="tallyboard bot", version="1", docs_url="/docs", redoc_url=None,
                  dependencies=[Depends(declared_media_type)])
    app.state.keys = KeyRing(settings.keys, settings.rate_limit, settings.rate_burst)
    app.state.registry = registry = CollectorRegistry()
    app.state.checks = []
    if state is not None:
        add_bot_routes(app, state)
    _guard_hosts(app, settings)
    _add_error_handlers(app)
    app.openapi = functools.partial(_openapi, app)  # type: ignore[method-assign]

    @app.get("/healthz", tags=["operations"])
    def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"], responses={503: {
        "model": ErrorOut, "description": MEANINGS[503]}})
    def readyz(request: Request) -> Response:
        """Readiness: what runs in this process (a queue worker's brokers) is connected."""
        return _not_ready(request) or JSON({"status": "ready"})

    @app.get("/metrics", tags=["operations"], response_class=PlainTextResponse)
    def prometheus() -> Response:
        """Prometheus text format: the bot's metrics."""
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app


def add_bot_routes(app: FastAPI, state: BotState) -> None:
    """Serve a bot's state (``/v1/bot/errors``, ``/v1/bot/countdowns``) from `app`."""
    app.state.bot_state = state
    app.include_router(bot_router)
    app.openapi_schema = None


def add_ingest_routes(app: FastAPI, kept: KeptMessages,
                      problems: Callable[[], list[str]]) -> None:
    """Serve a queue worker's kept messages (``/v1/ingest/errors``) from `app`, and make
    /readyz answer 503 while `problems` names any (a broker that is down)."""
    app.state.kept = kept
    app.state.checks.append(problems)
    app.include_router(ingest_router)
    app.openapi_schema = None


def _not_ready(request: Request) -> Response | None:
    """The 503 of /readyz when a check of the app names a problem."""
    found = [p for check in request.app.state.checks for p in check()]
    if not found:
        return None
    return _error(503, {"error": {"code": "not_ready", "message": "; ".join(found)}},
                  retry_after=1)


def add_twitch_routes(app: FastAPI, tracker: Tracker) -> None:
    """Serve a Twitch tracker's streams (``/v1/twitch/streams``) from `app`."""
    app.state.twitch = tracker
    app.include_router(twitch_router)
    app.openapi_schema = None


@contextlib.asynccontextmanager
async def _keeping_up(engine: Tallyboard, app: FastAPI) -> AsyncIterator[None]:
    """While the app serves: the engine's keep_up step every KEEP_UP_EVERY seconds, off
    the event loop, so reads find their boards current (see Tallyboard.keep_up)."""
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(_keep_up, engine)
        yield
        tasks.cancel_scope.cancel()


async def _keep_up(engine: Tallyboard) -> None:
    failing = False
    while True:
        await anyio.sleep(KEEP_UP_EVERY)
        try:
            await _in_thread(engine.keep_up)
        except Exception:  # tried again next time; logged once per run of failures
            if not failing:
                log.exception("keeping the hot boards up failed; retrying every %.2fs "
                              "(reads still catch up by themselves)", KEEP_UP_EVERY)
            failing = True
        else:
            if failing:
                log.info("keeping the hot boards up works again")
            failing = False


def _guard_hosts(app: FastAPI, settings: Settings) -> None:
    """Answer only requests naming this server in Host (DNS rebinding; api/guards.py)."""
    allowed = allowed_hosts(settings)
    if allowed is not None:
        app.add_middleware(HostGuard, allowed=allowed)


async def _in_thread(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a blocking engine call (fsync, big scans) off the event loop."""
    return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs))


def _error(status: int, body: dict[str, Any], retry_after: int | None = None) -> JSON:
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return JSON(body, status_code=status, headers=headers)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(TallyboardError)
    async def tallyboard_error(request: Request, exc: TallyboardError) -> Response:
        response = _error(exc.status, exc.to_dict(), getattr(exc, "retry_after", None))
        if isinstance(exc, Unauthorized):
            response.headers["WWW-Authenticate"] = 'Bearer realm="tallyboard"'
        return response

    @app.exception_handler(RequestValidationError)
    async def bad_query(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {}
        loc = [str(p) for p in first.get("loc", ()) if p not in ("query", "path", "body")]
        param = ".".join(loc) or None
        message = f"{param}: {first.get('msg', 'invalid')}" if param else "invalid request"
        return _error(400, {"error": {"code": "bad_query", "message": message,
                                      "param": param}})

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        code = HTTP_CODES.get(exc.status_code, "http_error")
        message = {404: f"no route {request.url.path}; see /docs",
                   405: f"{request.method} is not allowed on {request.url.path}"}.get(
            exc.status_code, str(exc.detail))
        response = _error(exc.status_code, {"error": {"code": code, "message": message}})
        response.headers.update(exc.headers or {})
        if exc.status_code == 405:  # every method of the path, not only the first route's
            response.headers["Allow"] = ", ".join(_methods(request))
        return response

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return _error(500, {"error": {"code": "internal", "message": "internal error; "
                                      "the server log has the details"}})


def _methods(request: Request) -> list[str]:
    """The methods some route of the app takes on the request's path (asked of the
    router's routes, included routers too, as if the request had come with each)."""
    return [method for method in PROBED_METHODS
            if any(route.matches({**request.scope, "method": method})[0] == Match.FULL
                   for route in request.app.router.routes)]


def _add_operations(app: FastAPI, telemetry: Telemetry) -> None:
    @app.get("/healthz", tags=["operations"])
    def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"], responses={503: {
        "model": ErrorOut, "description": MEANINGS[503]}})
    def readyz(request: Request) -> Response:
        """Readiness: state is rebuilt and the durable log answers."""
        engine: Tallyboard = request.app.state.engine
        try:
            engine.log.ping()
        except StoreUnavailable as exc:
            return _error(503, {"error": {"code": "store_unavailable", "message": str(exc)}},
                          retry_after=1)
        return _not_ready(request) or JSON({"status": "ready", "events": engine.events_total})

    @app.get("/metrics", tags=["operations"], response_class=PlainTextResponse)
    def prometheus() -> Response:
        """Prometheus text format."""
        return Response(generate_latest(telemetry.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", include_in_schema=False, response_class=HTMLResponse)
    def dashboard() -> HTMLResponse:
        return HTMLResponse(resources.files(package).joinpath("api/static/dashboard.html")
                            .read_text(encoding="utf-8"))


def _openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema:
        return app.openapi_schema
    app.openapi_schema = finish_openapi(get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes))
    return app.openapi_schema
