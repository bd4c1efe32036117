"""The HTTP edge: an ASGI app (FastAPI) that translates requests into engine calls."""

from .app import create_app

__all__ = ["create_app"]
