"""Settings: DESIGN.md §4 names and defaults, and one-line errors that name the setting."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from carbon_intensity_exporter.settings import (
    ConfigurationError,
    ProviderName,
    format_duration,
    load_settings,
    parse_duration,
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PROVIDER", "REGION", "REFRESH_INTERVAL", "WT_PASSWORD", "ADDITIONAL_REGIONS", "POD_NAME"):
        monkeypatch.delenv(name, raising=False)


def test_defaults_are_the_documented_ones() -> None:
    settings = load_settings()
    assert settings.provider is ProviderName.WATTTIME
    assert settings.region == "westus"
    assert settings.wt_base_url == "https://api.watttime.org/v3/"
    assert settings.wt_login_url == "https://api.watttime.org/login"
    assert settings.wt_signal_type == "co2_moer"
    assert settings.em_api_token_header == "auth-token"
    assert settings.em_base_url == "https://api.electricitymap.org/v3/"
    assert settings.ukci_base_url == "https://api.carbonintensity.org.uk"
    assert settings.forecast_horizon_hours == 24
    assert settings.refresh_interval == timedelta(hours=12)
    assert (settings.configmap_name, settings.namespace) == ("carbon-intensity", "kube-system")
    assert settings.leader_election is False


def test_environment_is_read_case_insensitively(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROVIDER", "electricitymaps")
    monkeypatch.setenv("REFRESH_INTERVAL", "1h30m")
    settings = load_settings()
    assert settings.provider is ProviderName.ELECTRICITY_MAPS
    assert settings.refresh_interval == timedelta(minutes=90)


def test_flags_override_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGION", "eastus")
    assert load_settings(region="uksouth").region == "uksouth"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"provider": "Nope"}, "PROVIDER='Nope': unknown provider 'Nope'; choose one of WattTime"),
        ({"refresh_interval": "12 hours"}, "REFRESH_INTERVAL='12 hours': '12 hours' is not a Go-style duration"),
        ({"refresh_interval": "0s"}, "REFRESH_INTERVAL"),
        ({"forecast_horizon_hours": "100"}, "FORECAST_HORIZON_HOURS"),
        ({"configmap_name": "Carbon_Intensity"}, "CONFIGMAP_NAME"),
        ({"log_format": "xml"}, "LOG_FORMAT"),
    ],
)
def test_bad_values_name_the_setting(overrides: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_settings(**overrides)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_secret_values_are_never_echoed_in_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_settings(wt_password_file=str(tmp_path / "missing"), wt_password="hunter2-secret")
    assert "WT_PASSWORD_FILE" in str(caught.value)
    assert "hunter2-secret" not in str(caught.value)


def test_secret_files_are_read(tmp_path: Path) -> None:
    (tmp_path / "password").write_text("s3cret\n")
    settings = load_settings(wt_password_file=str(tmp_path / "password"))
    assert settings.wt_password is not None
    assert settings.wt_password.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(settings)


def test_regions_and_their_configmap_names() -> None:
    settings = load_settings(region="westus", additional_regions="eastus, North Europe,westus,")
    assert settings.regions == ["westus", "eastus", "North Europe"]
    assert settings.configmap_name_for("westus") == "carbon-intensity"
    assert settings.configmap_name_for("North Europe") == "carbon-intensity-north-europe"
    assert settings.configmap_name_for("aws:us-west-2") == "carbon-intensity-aws-us-west-2"


def test_pod_names_are_unique_per_process() -> None:
    assert load_settings().pod_name != load_settings().pod_name


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("15m", 900), ("12h", 43200), ("1h30m", 5400), ("1.5h", 5400), ("30", 30)]
)
def test_go_durations(text: str, seconds: int) -> None:
    assert parse_duration(text).total_seconds() == seconds


def test_duration_formatting() -> None:
    assert format_duration(timedelta(hours=12)) == "12h"
    assert format_duration(timedelta(seconds=5430)) == "1h30m30s"
