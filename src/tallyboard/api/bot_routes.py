"""The /v1/bot routes: what a bot running in this process keeps in its state — the errors
it met and the countdowns it is running (admin scope: errors carry tracebacks)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request

from ..bots.state import BotState
from .params import OptionalName
from .routes import JSON, Caller
from .schemas import BotCountdownsOut, BotErrorsOut, errors

router = APIRouter(prefix="/v1/bot", tags=["bot"])


async def bot_state(request: Request) -> BotState:
    return request.app.state.bot_state  # type: ignore[no-any-return]


State = Annotated[BotState, Depends(bot_state)]


@router.get("/errors", response_model=BotErrorsOut, responses=errors(400))
def list_errors(state: State, who: Caller,
                limit: Annotated[int, Query(ge=1, le=1000)] = 50,
                kind: Literal["command", "general"] | None = None,
                guild: OptionalName = None,
                ) -> JSON:
    """The newest errors first (command errors and general ones), with time, guild,
    channel, command and a traceback summary. A key for every space may list them all;
    a key for some spaces names one `guild`."""
    who.require("admin", [guild or "*"])
    found = state.errors(limit=limit, kind=kind, guild=guild)
    return JSON({"errors": [e.to_dict() for e in found]})


@router.get("/countdowns", response_model=BotCountdownsOut, responses=errors())
def list_countdowns(state: State, who: Caller) -> JSON:
    """Countdowns running now (they survive restarts)."""
    who.require("admin", ["*"])
    return JSON({"countdowns": [{"channel": c.channel, "guild": c.guild, "target": c.target,
                                 "started": c.started, "sent": c.sent}
                                for c in state.countdowns()]})
