"""The /v1/ingest routes of a queue worker: the messages it could not apply, kept with
their reason and original bytes (admin scope: they hold whatever producers sent)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from ..queue.kept import KeptMessages
from .routes import JSON, Caller
from .schemas import IngestErrorsOut, errors

router = APIRouter(prefix="/v1/ingest", tags=["ingest"])


async def kept_messages(request: Request) -> KeptMessages:
    return request.app.state.kept  # type: ignore[no-any-return]


Kept = Annotated[KeptMessages, Depends(kept_messages)]


@router.get("/errors", response_model=IngestErrorsOut, responses=errors(400))
def list_ingest_errors(kept: Kept, who: Caller,
                       limit: Annotated[int, Query(ge=1, le=1000)] = 50) -> JSON:
    """The newest kept messages first: when, from which source and where in it, why,
    the original bytes (as text and base64) and when it was replayed."""
    who.require("admin", ["*"])
    return JSON({"errors": [e.to_dict() for e in kept.errors(limit=limit)]})
