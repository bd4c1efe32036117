"""Docs that cannot rot: each board in docs/grafana charts every metric of its bot (the Discord
bot, the Twitch tracker, the queue worker), and names no metric that tallyboard does not export."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

import tallyboard
from tallyboard.api import create_app
from tallyboard.bots.discord.telemetry import BotMetrics
from tallyboard.bots.twitch.telemetry import TwitchMetrics
from tallyboard.engine import Tallyboard
from tallyboard.queue.telemetry import QueueMetrics

BOARDS = Path(__file__).resolve().parent.parent / "docs" / "grafana"
# file -> (uid, title, the bot's metrics, the metric its instance variable lists)
KINDS: dict[str, tuple[str, str, Any, str]] = {
    "discord-bot.json": ("tallyboard-discord", "tallyboard — Discord bot", BotMetrics,
                         "tallyboard_discord_commands_total"),
    "twitch-tracker.json": ("tallyboard-twitch", "tallyboard — Twitch tracker", TwitchMetrics,
                            "tallyboard_twitch_polls_total"),
    "queue-worker.json": ("tallyboard-queue", "tallyboard — queue worker",
                          lambda: QueueMetrics(CollectorRegistry()),
                          "tallyboard_queue_consumed_messages_total"),
}
DATASOURCE = "${datasource}"
METRIC = re.compile(r"\b(tallyboard_[a-z0-9_]+)\b")
VARIABLE = re.compile(r"\$\{?(\w+)")
BUILTINS = {"__rate_interval", "__range", "__interval"}


def exported(registry: CollectorRegistry) -> dict[str, set[str]]:
    """Each metric family of `registry`, by the series names Prometheus scrapes for it."""
    names: dict[str, set[str]] = {}
    for family in registry.collect():
        if family.type == "counter":
            names[family.name] = {f"{family.name}_total"}
        elif family.type == "histogram":
            names[family.name] = {f"{family.name}_{s}" for s in ("bucket", "count", "sum")}
        else:
            names[family.name] = {family.name}
    return names


@pytest.fixture(scope="module", params=sorted(KINDS))
def board(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    loaded: dict[str, Any] = json.loads((BOARDS / request.param).read_text(encoding="utf-8"))
    return request.param, loaded


def test_every_board_is_tested() -> None:
    assert sorted(p.name for p in BOARDS.glob("*.json")) == sorted(KINDS)


def all_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from all_panels(panel.get("panels", []))  # a collapsed row holds its panels


def exprs(dashboard: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in all_panels(dashboard["panels"]) for t in p.get("targets", [])]


def test_it_is_a_grafana_dashboard(board: tuple[str, dict[str, Any]]) -> None:
    name, dashboard = board
    uid, title, _, instances = KINDS[name]
    assert dashboard["uid"] == uid
    assert dashboard["title"] == title
    assert 36 <= dashboard["schemaVersion"] <= 41
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert f"label_values({instances}, instance)" in json.dumps(variables["instance"]["query"])
    panels = list(all_panels(dashboard["panels"]))
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    charts = [p for p in panels if p["type"] != "row"]
    assert charts
    for panel in charts:
        title = panel["title"]
        assert panel.get("description"), f"panel {title!r} has no description"
        assert panel["datasource"]["uid"] == DATASOURCE, title
        assert panel["targets"], f"panel {title!r} has no query"
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), f"panel {title!r} repeats a refId"
        for target in panel["targets"]:
            assert target["expr"].strip(), f"panel {title!r} has an empty query"
            assert target["datasource"]["uid"] == DATASOURCE, title
            expr = target["expr"]
            assert re.search(r'\{instance=~"\$(api_)?instance"', expr), (
                f"panel {title!r} ignores the instance variables: {expr}")
            undefined = set(VARIABLE.findall(expr)) - set(variables) - BUILTINS
            assert not undefined, f"panel {title!r} uses undefined variables {undefined}"


def test_every_bot_metric_has_a_panel(board: tuple[str, dict[str, Any]]) -> None:
    name, dashboard = board
    used = {m for expr in exprs(dashboard) for m in METRIC.findall(expr)}
    missing = [family for family, series in exported(KINDS[name][2]().registry).items()
               if not series & used]
    assert not missing, f"no panel in {name} charts {missing}"


def test_every_charted_metric_exists(board: tuple[str, dict[str, Any]]) -> None:
    name, dashboard = board
    engine = tallyboard.open("memory://")
    try:
        assert isinstance(engine, Tallyboard)
        app = create_app(engine)
        known = set().union(*exported(KINDS[name][2]().registry).values(),
                            *exported(app.state.telemetry.registry).values())
    finally:
        engine.close()
    for expr in exprs(dashboard):
        unknown = set(METRIC.findall(expr)) - known
        assert not unknown, f"{name} queries unknown metrics {unknown}: {expr}"
