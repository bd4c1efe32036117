"""Settings: defaults < TOML file < TALLYBOARD_* variables < flags; bad values are clear."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from tallyboard.settings import load_settings


def test_file_then_environment_then_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "tallyboard.toml"
    config.write_text('port = 9001\nhost = "0.0.0.0"\nrate_limit = 5\n'
                      '[default_metric]\ntimezone = "Europe/Berlin"\nday_start = "17:00"\n'
                      '[[keys]]\nkey = "bot-key-123"\nscopes = ["read", "write"]\n'
                      'spaces = ["g1"]\n')
    monkeypatch.setenv("TALLYBOARD_PORT", "9002")
    monkeypatch.setenv("TALLYBOARD_DEFAULT_METRIC__WEEK_START", "sunday")
    got = load_settings(config, host="127.0.0.1")
    assert got.port == 9002 and got.host == "127.0.0.1" and got.rate_limit == 5
    assert got.keys[0].scopes == ["read", "write"] and got.keys[0].spaces == ["g1"]
    cal = got.metric_defaults.calendar
    assert (cal.timezone, cal.day_start, cal.week_start) == ("Europe/Berlin", "17:00", "sunday")


def test_log_url_defaults_to_the_data_directory(tmp_path: Path) -> None:
    assert load_settings(data=tmp_path).log_url == str(tmp_path)
    assert load_settings(log="sqlite:///x.db").log_url == "sqlite:///x.db"


@pytest.mark.parametrize("body", ['[default_metric]\ntimezone = "Mars/Olympus"\n',
                                  'prot = 1\n', '[[keys]]\nkey = "k"\n'])
def test_bad_settings_are_rejected(tmp_path: Path, body: str) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(body)
    with pytest.raises(ValidationError):
        load_settings(config)
