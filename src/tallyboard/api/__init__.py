"""The HTTP edge: an ASGI app (FastAPI) that translates requests into engine calls."""

from .app import add_bot_routes, add_ingest_routes, add_twitch_routes, create_app, create_bot_app

__all__ = ["add_bot_routes", "add_ingest_routes", "add_twitch_routes", "create_app",
           "create_bot_app"]
