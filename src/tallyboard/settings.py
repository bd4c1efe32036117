"""Server settings: defaults, then a TOML file, then ``TALLYBOARD_*`` variables, then flags.

Every key is documented in docs/configuration.md (a test keeps the two in step).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from .core.config import ConfigError, MetricConfig

Scope = Literal["read", "write", "admin"]


class ApiKey(BaseModel):
    """One API key: what it may do (scopes) and where (spaces; ``*`` is every space).

    The key is a SecretStr and no settings model echoes its input in an error: a key,
    token or password never appears in a message or a log."""

    model_config = ConfigDict(hide_input_in_errors=True)

    key: SecretStr
    scopes: list[Scope] = ["read"]
    spaces: list[str] = ["*"]

    @field_validator("key")
    @classmethod
    def _long_enough(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < 8:
            raise ValueError("an API key needs at least 8 characters")
        return value


class DiscordSettings(BaseModel):
    """`tallyboard discord`: the bot's token, where its tallyboard and its state live."""

    model_config = ConfigDict(hide_input_in_errors=True)

    token: SecretStr | None = None
    api_url: str = "https://discord.com/api/v10"
    url: str | None = None
    key: SecretStr | None = None
    state: str | None = None
    metric: str = Field(default="presence_seconds", min_length=1, max_length=128)
    sync_commands: bool = True


class TwitchSettings(BaseModel):
    """`tallyboard twitch`: Helix credentials and where, which streams, how often."""

    model_config = ConfigDict(hide_input_in_errors=True)

    client_id: str | None = None
    token: SecretStr | None = None
    refresh_token: SecretStr | None = None
    client_secret: SecretStr | None = None
    helix_url: str = "https://api.twitch.tv/helix"
    auth_url: str = "https://id.twitch.tv/oauth2"
    irc_url: str = "ircs://irc.chat.twitch.tv:6697"
    space: str = Field(default="twitch", min_length=1, max_length=128)
    streams: list[str] = []
    top: int = Field(default=0, ge=0, le=1000)
    game_ids: list[str] = []
    languages: list[str] = []
    interval: float = Field(default=60.0, ge=1.0)
    url: str | None = None
    key: SecretStr | None = None


class Settings(BaseSettings):
    """Everything `tallyboard serve` can be told."""

    model_config = SettingsConfigDict(env_prefix="TALLYBOARD_", env_nested_delimiter="__",
                                      extra="forbid", hide_input_in_errors=True)

    host: str = "127.0.0.1"
    port: int = 8080
    allowed_hosts: list[str] | None = None  # Host names answered; None: see api/guards.py
    data: Path = Path("tallyboard-data")
    log: str | None = None
    store: str | None = None
    store_prefix: str = Field(default="tb", pattern=r"^[^{}]+$")
    durability: Literal["sync", "buffered"] = "sync"
    buffer: str | None = None
    buffer_max_entries: int = Field(default=100_000, ge=1)
    keys: list[ApiKey] = []
    skew_seconds: float = 60.0
    id_retention_days: float = 7.0
    rate_limit: float = 0.0
    rate_burst: int = 100
    max_pending_writes: int = Field(default=64, ge=1)  # more waiting: 503 busy
    checkpoint_every: int = Field(default=2_000_000, ge=0)  # events between checkpoints
    default_metric: dict[str, Any] = {}
    discord: DiscordSettings = DiscordSettings()
    twitch: TwitchSettings = TwitchSettings()

    @field_validator("default_metric")
    @classmethod
    def _check_metric(cls, value: dict[str, Any]) -> dict[str, Any]:
        try:
            MetricConfig.from_dict(value)
        except ConfigError as exc:
            raise ValueError(f"default_metric.{exc.setting}: {exc}") from None
        return value

    @model_validator(mode="after")
    def _check_buffer(self) -> Settings:
        if self.durability == "buffered" and not (
                self.buffer and (self.log or "").startswith(("postgresql://", "postgres://"))):
            raise ValueError("durability = 'buffered' needs buffer = 'redis://…' and a "
                             "PostgreSQL log = 'postgresql://…'")
        return self

    @model_validator(mode="after")
    def _check_store(self) -> Settings:
        if self.store is not None and not (
                self.store.startswith(("redis://", "rediss://", "unix://"))
                and (self.log or "").startswith(("postgresql://", "postgres://"))):
            raise ValueError("store = 'redis://…' (the shared hot store) needs a PostgreSQL "
                             "log = 'postgresql://…' to rebuild it from")
        return self

    @property
    def log_url(self) -> str:
        """Where the durable log lives: `log`, else SQLite inside `data`."""
        return self.log or str(self.data)

    @property
    def metric_defaults(self) -> MetricConfig:
        return MetricConfig.from_dict(self.default_metric)


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Settings from `config_file` (TOML), the environment and `overrides` (None = unset)."""

    class _FromFile(Settings):
        @classmethod
        def settings_customise_sources(
            cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
            if config_file is not None:
                sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
            return tuple(sources)

    return _FromFile(**{k: v for k, v in overrides.items() if v is not None})
