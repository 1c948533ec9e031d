"""One settings object, read from environment variables (DESIGN.md §4) and overridden by CLI flags.

Field names are the environment variable names in lower case; the CLI derives its flags from the same
fields, and the chart test checks the chart's env names against them, so the three cannot drift apart.
"""

from __future__ import annotations

import re
import secrets
import socket
import sys
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class ConfigurationError(Exception):
    """Bad configuration, found before anything is contacted: exit code 2."""


class ProviderName(StrEnum):
    WATTTIME = "WattTime"
    ELECTRICITY_MAPS = "ElectricityMaps"
    UK_CARBON_INTENSITY = "UKCarbonIntensity"
    CARBON_AWARE_SDK = "CarbonAwareSDK"
    FILE = "File"
    SAMPLE = "Sample"

    @classmethod
    def parse(cls, value: object) -> ProviderName:
        if isinstance(value, cls):
            return value
        text = str(value).strip()
        for member in cls:
            if member.value.lower() == text.lower():
                return member
        choices = ", ".join(member.value for member in cls)
        raise ValueError(f"unknown provider {text!r}; choose one of {choices}")


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: object) -> timedelta:
    """Go's ``time.ParseDuration`` syntax (``90s``, ``15m``, ``1h30m``); a bare number means seconds."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=float(value))
    text = str(value).strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return timedelta(seconds=float(text))
    position, seconds = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != position:
            break
        seconds += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
    if not text or position != len(text):
        raise ValueError(f"{text!r} is not a Go-style duration (examples: 90s, 15m, 12h, 1h30m)")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """The inverse of :func:`parse_duration` for whole seconds, in Go's style (``12h0m0s`` → ``12h``)."""
    total = int(value.total_seconds())
    hours, rest = divmod(total, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [f"{hours}h" if hours else "", f"{minutes}m" if minutes else "", f"{seconds}s" if seconds else ""]
    return "".join(parts) or "0s"


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


def default_pod_name() -> str:
    """Hostname plus a random suffix: two processes never share a Lease identity."""
    return f"{socket.gethostname()}-{secrets.token_hex(3)}"


def region_configmap_suffix(region: str) -> str:
    """``<CONFIGMAP_NAME>-<region>``: the region lowercased, anything but [a-z0-9] turned into ``-``."""
    return re.sub(r"[^a-z0-9]+", "-", region.lower()).strip("-")


class Settings(BaseSettings):
    """Everything the exporter reads. ``description`` is also the CLI flag's help text."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", validate_default=True)

    provider: ProviderName = Field(
        ProviderName.WATTTIME,
        description="WattTime, ElectricityMaps, UKCarbonIntensity, CarbonAwareSDK, File or Sample "
        "(case-insensitive).",
    )
    region: str = Field("westus", description="Cloud region of the cluster (azure:/aws:/gcp: prefix optional).")
    additional_regions: str = Field(
        "", description="More regions, comma-separated; each gets ConfigMap <CONFIGMAP_NAME>-<region>."
    )
    provider_region: str | None = Field(
        None, description="The provider's own region code (CAISO_NORTH, US-CAL-CISO, UK region id): skips lookup."
    )
    wt_username: str | None = Field(None, description="WattTime user name.")
    wt_password: SecretStr | None = Field(None, description="WattTime password (prefer WT_PASSWORD_FILE).")
    wt_password_file: Path | None = Field(None, description="File holding the WattTime password.")
    wt_base_url: str = Field("https://api.watttime.org/v3/", description="WattTime data API.")
    wt_login_url: str = Field("https://api.watttime.org/login", description="WattTime login URL.")
    wt_signal_type: str = Field("co2_moer", description="WattTime signal: co2_moer or co2_aoer.")
    em_api_token: SecretStr | None = Field(None, description="Electricity Maps token (prefer EM_API_TOKEN_FILE).")
    em_api_token_file: Path | None = Field(None, description="File holding the Electricity Maps token.")
    em_api_token_header: str = Field("auth-token", description="Header that carries the Electricity Maps token.")
    em_base_url: str = Field("https://api.electricitymap.org/v3/", description="Electricity Maps API.")
    ukci_base_url: str = Field("https://api.carbonintensity.org.uk", description="UK Carbon Intensity API.")
    carbon_aware_sdk_url: str | None = Field(None, description="URL of a running Carbon Aware SDK WebAPI.")
    forecast_file: Path | None = Field(None, description="File provider: a JSON EmissionsData array.")
    forecast_horizon_hours: int = Field(24, ge=0, le=72, description="How many hours ahead to ask for (0-72).")
    refresh_interval: Duration = Field(
        timedelta(hours=12), description="How often to fetch, Go-style duration (90s, 15m, 12h)."
    )
    retry_initial_interval: Duration = Field(
        timedelta(minutes=1),
        description="First retry delay after a failed fetch; doubles per failure, capped at REFRESH_INTERVAL.",
    )
    state_dir: Path | None = Field(
        None,
        description="Keep a copy of the last published data here (an emptyDir), used when the ConfigMap is "
        "missing at start.",
    )
    configmap_name: str = Field("carbon-intensity", description="Name of the ConfigMap to publish.")
    namespace: str = Field("kube-system", description="Namespace of the ConfigMap.")
    leader_election: bool = Field(False, description="Lease-based leader election for several replicas.")
    lease_duration: Duration = Field(
        timedelta(seconds=15),
        description="Leader election: how long a Lease holds without renewal (renew deadline 2/3 of it).",
    )
    pod_name: str = Field(default_factory=default_pod_name, description="This instance's identity in the Lease.")
    metrics_port: int = Field(9102, ge=0, le=65535, description="Port for /metrics, /healthz and /readyz (0: off).")
    log_format: str = Field("auto", description="json, text, or auto (text on a terminal, json otherwise).")
    log_level: str = Field("INFO", description="DEBUG, INFO, WARNING or ERROR.")

    @field_validator("provider", mode="before")
    @classmethod
    def _provider(cls, value: object) -> ProviderName:
        return ProviderName.parse(value)

    @field_validator("region", "configmap_name", "namespace")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value.strip()

    @field_validator("configmap_name", "namespace")
    @classmethod
    def _dns_label(cls, value: str) -> str:
        if not re.fullmatch(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?", value):
            raise ValueError(f"{value!r} is not a valid Kubernetes name (lower case letters, digits, '-', '.')")
        return value

    @field_validator("refresh_interval", "retry_initial_interval", "lease_duration")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value.total_seconds() < 1:
            raise ValueError(f"{format_duration(value)} is too short; use at least 1s")
        return value

    @field_validator("log_format")
    @classmethod
    def _log_format(cls, value: str) -> str:
        if value.lower() not in {"json", "text", "auto"}:
            raise ValueError(f"{value!r}: choose json, text or auto")
        return value.lower()

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        if value.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError(f"{value!r}: choose DEBUG, INFO, WARNING or ERROR")
        return value.upper()

    @model_validator(mode="after")
    def _secret_files(self) -> Settings:
        for file_field, secret_field in (("wt_password_file", "wt_password"), ("em_api_token_file", "em_api_token")):
            path: Path | None = getattr(self, file_field)
            if path is None:
                continue
            try:
                secret = path.read_text().strip()
            except OSError as exc:
                raise ValueError(
                    f"{file_field.upper()}: cannot read {path} ({exc.strerror}); mount the Secret there or unset it"
                ) from None
            object.__setattr__(self, secret_field, SecretStr(secret))
        return self

    @property
    def regions(self) -> list[str]:
        """The primary region first, then each additional one once."""
        seen: list[str] = [self.region]
        for region in self.additional_regions.split(","):
            if region.strip() and region.strip() not in seen:
                seen.append(region.strip())
        return seen

    def configmap_name_for(self, region: str) -> str:
        if region == self.region:
            return self.configmap_name
        return f"{self.configmap_name}-{region_configmap_suffix(region)}"

    def json_logs(self) -> bool:
        if self.log_format == "auto":
            return not sys.stderr.isatty()
        return self.log_format == "json"


def env_name(field_name: str) -> str:
    return field_name.upper()


def _describe(error: dict[str, Any]) -> str:
    location = ".".join(str(part) for part in error.get("loc", ()) if part != "__root__")
    message = str(error.get("msg", "invalid"))
    message = message.removeprefix("Value error, ")
    if not location:
        return message
    given = error.get("input")
    shown = "" if given is None or "secret" in location or "password" in location or "token" in location else (
        f"={given!r}" if not isinstance(given, dict) else ""
    )
    return f"{env_name(location)}{shown}: {message}"


def load_settings(**overrides: Any) -> Settings:
    """Environment first, then the CLI's overrides; a bad value becomes one ConfigurationError line."""
    given = {key: value for key, value in overrides.items() if value is not None}
    try:
        return Settings(**given)
    except ValidationError as exc:
        raise ConfigurationError("; ".join(_describe(dict(error)) for error in exc.errors())) from None


__all__ = [
    "ConfigurationError",
    "Duration",
    "ProviderName",
    "Settings",
    "env_name",
    "format_duration",
    "load_settings",
    "parse_duration",
]
