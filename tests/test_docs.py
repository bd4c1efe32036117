"""Docs that cannot rot: every setting, endpoint and Prometheus metric is documented."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from prometheus_client import CollectorRegistry

import tallyboard
from tallyboard.api import add_bot_routes, add_ingest_routes, add_twitch_routes, create_app
from tallyboard.bots.discord.telemetry import BotMetrics
from tallyboard.bots.state import open_state
from tallyboard.bots.twitch.helix import Helix
from tallyboard.bots.twitch.telemetry import TwitchMetrics
from tallyboard.bots.twitch.tracker import StreamList, Tracker
from tallyboard.core.config import FIELDS
from tallyboard.queue.kept import open_kept
from tallyboard.queue.telemetry import QueueMetrics
from tallyboard.settings import DiscordSettings, Settings, TwitchSettings

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_every_setting_is_documented() -> None:
    text = (DOCS / "configuration.md").read_text()
    for name in [*Settings.model_fields, *FIELDS, *DiscordSettings.model_fields,
                 *TwitchSettings.model_fields]:
        assert f"`{name}`" in text, f"setting {name} is missing from docs/configuration.md"


def test_every_route_and_prometheus_metric_is_documented(tmp_path: Path) -> None:
    text = (DOCS / "api.md").read_text()
    engine = tallyboard.open("memory://")
    app = create_app(engine)
    state = open_state("memory://")
    add_bot_routes(app, state)  # as `tallyboard discord` serves it
    twitch = TwitchMetrics()
    helix = Helix("http://127.0.0.1:9/helix", "http://127.0.0.1:9/oauth2", "id", "token")
    add_twitch_routes(app, Tracker(helix, engine, StreamList(tmp_path / "streams.json"),
                                   space="twitch", interval=60, metrics=twitch))
    add_ingest_routes(app, open_kept("memory://"), list)  # as `tallyboard worker` serves it
    # The document's paths (included routers too, `{metric}` not `{metric:name}`), and the
    # app's own routes outside it (the dashboard, /docs)
    paths = {*app.openapi()["paths"], *(getattr(r, "path_format", "") for r in app.routes)}
    paths -= {"", "/docs/oauth2-redirect"}
    assert "/v1/metrics/{metric}" in paths and "/v1/bot/errors" in paths
    for path in paths:
        assert f"`{path}`" in text, f"{path} missing from docs/api.md"
    bot = BotMetrics()
    queue = QueueMetrics(CollectorRegistry())
    for registry in (app.state.telemetry.registry, bot.registry, twitch.registry,
                     queue.registry):
        for metric in registry.collect():
            name = metric.name + ("_total" if metric.type == "counter" else "")
            assert f"`{name}`" in text, f"{name} missing from docs/api.md"
    engine.close()
    state.close()
    asyncio.run(helix.close())


def test_readme_first_screen_has_run_test_and_curl() -> None:
    first = (DOCS.parent / "README.md").read_text()[:2500]
    assert re.search(r"pip install -e \. && tallyboard serve", first)
    assert "pip install -e '.[test]' && python -m pytest" in first
    assert "curl" in first
    assert "python -m pytest" in (DOCS.parent / ".ci" / "run").read_text()


def test_every_relative_link_stays_inside_the_repo() -> None:
    """A clone is all a user has: README and docs link to files in it, never beside it."""
    repo = DOCS.parent
    for page in [repo / "README.md", *DOCS.glob("*.md")]:
        for target in re.findall(r"\]\(([^)#\s]+)", page.read_text()):
            if "://" in target or target.startswith("mailto:"):
                continue
            path = (page.parent / target).resolve()
            assert path.is_relative_to(repo) and path.exists(), f"{page.name} links {target}"
