"""Bot commands: `tallyboard discord` runs the Discord bot, `tallyboard errors` lists what
it kept."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from pydantic import SecretStr

from ..errors import TallyboardError
from ..redact import redact
from ..settings import Settings
from . import main
from .common import console, errors_from_server, show_errors, utc
from .server import open_engine, settings_or_exit

if TYPE_CHECKING:  # the web stack is imported by the bot commands only, when they run
    from fastapi import FastAPI
    from prometheus_client import CollectorRegistry

    from ..bots.state import BotState


@main.command()
@click.option("--host", help="Address of the bot's HTTP side (default 127.0.0.1).")
@click.option("--port", type=int, help="Port of the bot's HTTP side (default 8080).")
@click.option("--data", type=click.Path(file_okay=False, path_type=Path),
              help="Embedded data directory (default ./tallyboard-data); also where the "
                   "bot keeps its state unless told otherwise.")
@click.option("--config", "config_file", type=click.Path(dir_okay=False, exists=True,
                                                         path_type=Path),
              help="TOML config file with a [discord] table (see docs/configuration.md).")
@click.option("--log", "log_url", help="Durable log URL of the embedded engine "
                                      "(sqlite:///… or postgresql://…).")
@click.option("--url", help="Report to a tallyboard server instead of an embedded engine "
                            "(key: [discord] key or TALLYBOARD_DISCORD__KEY).")
@click.option("--state", "state_url", help="Bot state (countdowns, errors, settings): "
                                           "a directory, sqlite:///… or postgresql://….")
def discord(host: str | None, port: int | None, data: Path | None, config_file: Path | None,
            log_url: str | None, url: str | None, state_url: str | None) -> None:
    """Run the Discord bot: voice-time tracking, /top /stats /streak /settings, countdowns.

    The token comes from TALLYBOARD_DISCORD__TOKEN or the config file, never a flag.
    With no --url the bot runs the tallyboard engine in-process and serves the whole
    HTTP API beside it; with --url it reports to that server. Either way its HTTP side
    has /metrics, /healthz and /v1/bot/errors.

    \b
        export TALLYBOARD_DISCORD__TOKEN=...        # the bot's token
        tallyboard discord                           # embedded, API on :8080
        tallyboard discord --url http://tallyboard:8080 --port 9108
        tallyboard discord --log postgresql://postgres@127.0.0.1/tallyboard
    """
    import discord as discord_py

    from ..bots.discord.bot import StatsBot
    from ..bots.discord.run import serve
    from ..bots.discord.telemetry import BotMetrics
    from ..bots.state import open_state

    settings = settings_or_exit(config_file, host=host, port=port, data=data, log=log_url)
    d = settings.discord.model_copy(update={k: v for k, v in (("url", url),
                                                              ("state", state_url)) if v})
    if d.token is None:
        raise click.ClickException("no bot token: set TALLYBOARD_DISCORD__TOKEN or "
                                   "[discord] token in the config file")
    discord_py.http.Route.BASE = d.api_url.rstrip("/")
    try:
        state = open_state(d.state or _default_state(settings))
    except (TallyboardError, ValueError) as exc:
        raise click.ClickException(redact(str(exc))) from exc
    tally, app, registry = _beside_engine(d.url, d.key, settings, state)
    bot = StatsBot(tally, state, BotMetrics(registry), metric=d.metric,
                   sync_commands=d.sync_commands)
    console.print(f"[green]tallyboard discord[/] reporting to "
                  f"{redact(d.url or settings.log_url)}; "
                  f"HTTP on http://{settings.host}:{settings.port}")
    try:
        asyncio.run(serve(bot, d.token.get_secret_value(), app, settings.host,
                          settings.port))
    except discord_py.LoginFailure as exc:
        raise click.ClickException(f"Discord refused the token: {exc}") from exc
    except discord_py.HTTPException as exc:  # an answer, not an outage (those are retried)
        raise click.ClickException(f"Discord at {redact(d.api_url)} refused the bot: {exc}; "
                                   "check [discord] api_url and the token") from exc
    finally:
        tally.close()
        state.close()


def _beside_engine(url: str | None, key: SecretStr | None, settings: Settings,
                   state: BotState | None) -> tuple[Any, FastAPI, CollectorRegistry]:
    """A bot's tallyboard (a server at `url`, else the embedded engine), its HTTP app (the
    bot's own routes, and `state`'s; beside the engine, the whole API too) and the
    Prometheus registry its metrics join, so one /metrics shows all."""
    from ..api import add_bot_routes, create_app, create_bot_app  # the web stack: bots only
    from ..client import RemoteTallyboard

    if url:
        app = create_bot_app(state, settings)
        return RemoteTallyboard(url, key=_secret(key)), app, app.state.registry
    tally = open_engine(settings)
    app = create_app(tally, settings)
    if state is not None:
        add_bot_routes(app, state)
    return tally, app, app.state.telemetry.registry


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


def _default_state(settings: Settings) -> str:
    """Next to the durable log: the same PostgreSQL database, else the data directory."""
    log = settings.log or ""
    return log if log.startswith(("postgresql://", "postgres://")) else str(settings.data)


@main.command()
@click.option("--data", type=click.Path(file_okay=False, path_type=Path),
              default=Path("tallyboard-data"), show_default=True,
              help="The bot's data directory (its state is discord.sqlite3 there).")
@click.option("--state", "state_url", help="Bot state URL instead: sqlite:///… or "
                                           "postgresql://….")
@click.option("--config", "config_file", type=click.Path(dir_okay=False, exists=True,
                                                         path_type=Path),
              help="The bot's TOML config: its [discord] state (or data/log) says where.")
@click.option("--url", envvar="TALLYBOARD_URL", help="Ask a running bot's HTTP side instead "
                                                     "(env TALLYBOARD_URL).")
@click.option("--key", envvar="TALLYBOARD_KEY", help="API key with the admin scope for --url.")
@click.option("-n", "limit", default=20, show_default=True, type=click.IntRange(1, 1000))
@click.option("--kind", type=click.Choice(["command", "general", "ingest"]),
              help="Only this kind; ingest: the messages a queue worker kept.")
@click.option("--guild", help="Only this guild (space).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--replay", "replay_ids", multiple=True, type=int, metavar="ID",
              help="With --kind ingest: publish kept message ID again (repeat for several), "
                   "to its source or --to, after a fix.")
@click.option("--to", "replay_to", metavar="URL", help="Queue to replay to (default: the "
                                                       "message's source; give it when the "
                                                       "source URL has a password).")
def errors(data: Path, state_url: str | None, config_file: Path | None, url: str | None,
           key: str | None, limit: int, kind: str | None, guild: str | None,
           as_json: bool, replay_ids: tuple[int, ...], replay_to: str | None) -> None:
    """List the errors a bot kept, newest first: command errors and general ones; with
    --kind ingest, the messages a queue worker could not apply (and --replay them).

    \b
        tallyboard errors                      # the embedded bot's, in ./tallyboard-data
        tallyboard errors --kind command -n 5
        tallyboard errors --config tallyboard.toml       # where [discord] state points
        tallyboard errors --url http://127.0.0.1:8080 --key $ADMIN_KEY
        tallyboard errors --kind ingest --state postgresql://postgres@127.0.0.1/tallyboard
        tallyboard errors --kind ingest --replay 7 --replay 8
    """
    if state_url is None and config_file is not None:
        settings = settings_or_exit(config_file)
        state_url = (settings.discord.state if kind != "ingest" else None) \
            or _default_state(settings)
    if kind == "ingest" or replay_ids:
        from .kept import list_kept, replay

        if replay_ids:
            replay(state_url or str(data), replay_ids, replay_to)
        else:
            list_kept(url, key, state_url or str(data), limit, as_json)
        return
    found = _errors_from(url, key, state_url or str(data), limit, kind, guild)
    show_errors(found, as_json, "errors", ("#", "when (UTC)", "kind", "where", "command",
                                           "error"), _bot_error_row)


def _bot_error_row(e: dict[str, Any]) -> list[str]:
    where = f"guild {e['guild'] or '-'}\nchannel {e['channel'] or '-'}"
    return [str(e["id"]), utc(e["at"]), e["kind"], where, e["command"] or "-",
            f"{e['error']}\n[dim]{e['traceback'].strip()[-400:]}[/]"]


def _errors_from(url: str | None, key: str | None, state_url: str, limit: int,
                 kind: str | None, guild: str | None) -> list[dict[str, Any]]:
    if url:
        params = {k: v for k, v in (("limit", limit), ("kind", kind), ("guild", guild)) if v}
        return errors_from_server(url, key, "/v1/bot/errors", params)
    from ..bots.state import STATE_FILE, open_state

    if "://" not in state_url and not (Path(state_url) / STATE_FILE).exists():
        raise click.ClickException(f"no bot state in {state_url} (no {STATE_FILE}); give "
                                   "--data, --state or --url")
    try:
        state = open_state(state_url)
    except (TallyboardError, ValueError) as exc:
        raise click.ClickException(redact(str(exc))) from exc
    try:
        return [e.to_dict() for e in state.errors(limit=limit, kind=kind,  # type: ignore[arg-type]
                                                  guild=guild)]
    finally:
        state.close()


@main.command()
@click.option("--streams", help="Channel logins to watch, comma-separated (added to the "
                                "kept list and [twitch] streams).")
@click.option("--top", type=click.IntRange(0, 1000),
              help="Also watch the N live streams with most viewers.")
@click.option("--interval", type=click.FloatRange(min=1.0),
              help="Seconds between two chatter polls of a stream (default 60).")
@click.option("--space", help="Presence space of the streams' rooms (default twitch).")
@click.option("--url", help="Write to a tallyboard server instead of an embedded engine "
                            "(key: [twitch] key or TALLYBOARD_TWITCH__KEY).")
@click.option("--data", type=click.Path(file_okay=False, path_type=Path),
              help="Data directory (default ./tallyboard-data): the embedded engine's log, "
                   "the kept stream list (twitch-streams.json), raids (twitch-raids.jsonl) "
                   "and renewed tokens (twitch-tokens.json).")
@click.option("--log", "log_url", help="Durable log URL of the embedded engine "
                                      "(sqlite:///… or postgresql://…).")
@click.option("--host", help="Address of the HTTP side (default 127.0.0.1).")
@click.option("--port", type=int, help="Port of the HTTP side (default 8080).")
@click.option("--config", "config_file", type=click.Path(dir_okay=False, exists=True,
                                                         path_type=Path),
              help="TOML config file with a [twitch] table (see docs/configuration.md).")
def twitch(streams: str | None, top: int | None, interval: float | None, space: str | None,
           url: str | None, data: Path | None, log_url: str | None, host: str | None,
           port: int | None, config_file: Path | None) -> None:
    """Track Twitch viewers: each stream's chatters, polled, as presence in its room.

    Every complete poll of a stream is one presence snapshot of the room named after the
    channel, so migrations (who went where after a stream), sessions, concurrency and
    watch-time boards are asked of the usual API with ?space=twitch. A poll that failed
    or came back cut off or empty records nothing (the stream shows as stale). Tokens
    come from TALLYBOARD_TWITCH__TOKEN (and __CLIENT_ID, __REFRESH_TOKEN,
    __CLIENT_SECRET) or the config file, never a flag. See docs/twitch.md.

    \b
        export TALLYBOARD_TWITCH__CLIENT_ID=... TALLYBOARD_TWITCH__TOKEN=...
        tallyboard twitch --streams shroud,pokimane      # embedded, API on :8080
        tallyboard twitch --top 100 --interval 120 --port 9109 --url http://tallyboard:8080
        curl 'localhost:8080/v1/migrations?space=twitch&n=10'
        curl -X PUT localhost:8080/v1/twitch/streams/xqc   # watch one more (admin key)
    """
    from ..api import add_twitch_routes
    from ..bots.twitch.helix import AuthFailed, Helix
    from ..bots.twitch.run import serve
    from ..bots.twitch.telemetry import TwitchMetrics
    from ..bots.twitch.tokens import KeptTokens
    from ..bots.twitch.tracker import StreamList, Tracker, normal_login

    settings = settings_or_exit(config_file, host=host, port=port, data=data, log=log_url)
    t = settings.twitch.model_copy(update={k: v for k, v in (
        ("top", top), ("interval", interval), ("space", space), ("url", url))
        if v is not None})
    if not t.client_id or (t.token is None and t.client_secret is None):
        raise click.ClickException("no Twitch credentials: set TALLYBOARD_TWITCH__CLIENT_ID "
                                   "and TALLYBOARD_TWITCH__TOKEN (or [twitch] client_id and "
                                   "token in the config file)")
    kept = StreamList(settings.data / "twitch-streams.json")
    try:
        asked = [normal_login(x) for x in [*t.streams, *(streams or "").split(",")] if x]
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    if asked:
        kept.set([*kept.logins, *asked])
    tally, app, registry = _beside_engine(t.url, t.key, settings, None)
    metrics = TwitchMetrics(registry)
    renewed = KeptTokens(settings.data / "twitch-tokens.json", _secret(t.token),
                         _secret(t.refresh_token))
    token, refresh = renewed.load() or (_secret(t.token), _secret(t.refresh_token))
    helix = Helix(t.helix_url, t.auth_url, t.client_id, token, refresh,
                  _secret(t.client_secret), on_wait=metrics.waited, on_renewed=renewed.save)
    tracker = Tracker(helix, tally, kept, space=t.space, interval=t.interval, top=t.top,
                      game_ids=t.game_ids, languages=t.languages, metrics=metrics,
                      chat_url=t.irc_url or None)
    add_twitch_routes(app, tracker)
    console.print(f"[green]tallyboard twitch[/] watching {len(kept.logins)} listed streams"
                  f"{f' and the top {t.top}' if t.top else ''} every {t.interval:g} s into "
                  f"space {t.space!r} of {redact(t.url or settings.log_url)}; "
                  f"HTTP on http://{settings.host}:{settings.port}")
    try:
        asyncio.run(serve(tracker, app, settings.host, settings.port))
    except AuthFailed as exc:
        raise click.ClickException(f"Twitch refused the token: {exc}") from exc
    finally:
        tally.close()
