"""A real `tallyboard discord` process against the Discord stand-in, for the bot's tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from support import stop_process
from tallyboard.bench.measure import free_port
from tallyboard.standins.discord_standin import DiscordStandIn, RestCall
from tallyboard.standins.discord_world import Permission


@dataclass(frozen=True)
class World:
    """One guild: a text channel, two voice channels in a category, an AFK channel, and
    alice (an admin), bob, carol and a bot user."""

    d: DiscordStandIn
    guild: str
    text: str
    timers: str
    library: str
    gym: str
    afk: str
    category: str
    alice: str
    bob: str
    carol: str
    robot: str


def make_world(d: DiscordStandIn) -> World:
    guild = d.add_guild("Study Hall")
    category = d.add_category(guild, "Study")
    w = World(d, guild, d.add_text_channel(guild, "general"),
              d.add_text_channel(guild, "timers"),
              d.add_voice_channel(guild, "library", category_id=category),
              d.add_voice_channel(guild, "gym", category_id=category),
              d.add_voice_channel(guild, "afk"), category,
              d.add_user("alice"), d.add_user("bob"), d.add_user("carol"),
              d.add_user("robot", bot=True))
    admin = d.add_role(guild, "admin", permissions=int(Permission.MANAGE_GUILD))
    d.add_member(guild, w.alice, roles=(admin,))
    for user in (w.bob, w.carol, w.robot):
        d.add_member(guild, user)
    d.set_afk_channel(guild, w.afk)
    return w


class BotProcess:
    """`tallyboard discord` on a data directory of its own, its HTTP side on a free port
    (`extra` flags such as ``--url http://…`` to report to a server)."""

    def __init__(self, standin: DiscordStandIn, data: Path, *extra: str) -> None:
        self.standin = standin
        self.data = data
        self.extra = extra
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = data.parent / f"bot-{self.port}.log"
        self.launched = 0.0  # time.monotonic() of the last start
        self._before = (0, 0)  # the stand-in's connections and command syncs at launch

    def start(self) -> None:
        """Start and wait until the bot is up (see `wait_up`)."""
        self.launch()
        self.wait_up()

    def launch(self) -> None:
        """Start the process, pointed at the stand-in's address (started or not yet)."""
        d = self.standin
        self._before = (d.identifies + d.resumes, len(self._syncs()))
        env = {**os.environ, "TALLYBOARD_DISCORD__TOKEN": d.token,
               "TALLYBOARD_DISCORD__API_URL": d.api_url}
        self.launched = time.monotonic()
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tallyboard.cli", "discord", "--data", str(self.data),
                 "--port", str(self.port), *self.extra],
                stdout=out, stderr=subprocess.STDOUT, env=env)

    def wait_up(self, timeout: float = 30) -> None:
        """Wait until the launched bot is connected (a new IDENTIFY or RESUME), has synced
        its slash commands, and its HTTP side answers (/readyz when the engine is
        in-process)."""
        assert self.proc is not None
        d = self.standin
        connections, synced = self._before
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the bot exited:\n{self.log.read_text()[-3000:]}")
            if (d.identifies + d.resumes > connections and d.connected
                    and len(self._syncs()) > synced and self._answers("/healthz")
                    and (bool(self.extra) or self._answers("/readyz"))):
                return
            time.sleep(0.05)
        raise RuntimeError(f"the bot did not come up:\n{self.log.read_text()[-3000:]}")

    def _syncs(self) -> list[RestCall]:
        return self.standin.calls(r"^/applications/\d+/commands$", method="PUT")

    def _answers(self, path: str) -> bool:
        try:
            return httpx.get(self.url + path, timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def stop(self) -> None:
        """SIGTERM, as a service manager stops it; wait for the exit and the disconnect."""
        stop_process(self.proc)
        self.proc = None
        self.standin.wait_until(lambda: not self.standin.connected, timeout=10)

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()
        self.proc = None
        self.standin.wait_until(lambda: not self.standin.connected, timeout=10)

    def get(self, path: str, **params: Any) -> Any:
        r = httpx.get(self.url + path, params=params, timeout=10)
        assert r.status_code == 200, r.text
        return r.json()

    def metric(self, name: str, **labels: str) -> float:
        """One sample of the bot's /metrics (0 when absent)."""
        text = httpx.get(self.url + "/metrics", timeout=10).text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v
                                               for k, v in labels.items()):
                    return float(sample.value)
        return 0.0


def contents(d: DiscordStandIn, channel: str) -> list[str]:
    """What the bot posted in `channel`, in order."""
    return [str((m.json or {}).get("content")) for m in d.messages(channel)]


def answer(d: DiscordStandIn, interaction: str) -> dict[str, Any]:
    """The message a slash command's user finally sees: the callback's, or after a
    deferral ("thinking…") the followup's."""
    first = d.wait_until(lambda: d.interaction_responses(interaction), timeout=5)[0]
    if first.json["type"] == 4:
        return dict(first.json["data"])
    later = d.wait_until(lambda: [c for c in d.interaction_responses(interaction)[1:]
                                  if c.json], timeout=10)
    return dict(later[-1].json)
