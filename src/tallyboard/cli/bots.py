"""Bot commands: `tallyboard discord` runs the Discord bot, `tallyboard errors` lists what
it kept."""

from __future__ import annotations

from . import main


@main.command()
def discord() -> None:
    """Run the Discord bot."""


@main.command()
def errors() -> None:
    """List the errors a bot kept."""
