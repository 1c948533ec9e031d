"""Electricity Maps API v3: ``/carbon-intensity/forecast`` by zone or by the cloud region's coordinates.

Values are already gCO2eq/kWh. Forecasts need a paid token, so the plan errors (invalid token, zone not in
the plan, endpoint not in the plan) are told apart and explained; the caller-IP fallback is disabled so a
coordinate lookup never silently answers for wherever the cluster's egress happens to be.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx

from ..model import EmissionsData, Forecast, InvalidForecastError
from ..regions import lookup
from ..settings import ConfigurationError, Settings
from ._http import (
    HttpClient,
    NoDataError,
    check_url,
    expect_dict,
    expect_list,
    intensity,
    join_url,
    timestamp,
    whole_minutes,
)
from .base import Provider

GRANULARITY_MINUTES = {"5_minutes": 5, "15_minutes": 15, "30_minutes": 30, "hourly": 60, "1_hour": 60}
DEFAULT_SLOT_MINUTES = 60


class ElectricityMapsProvider(Provider):
    name = "ElectricityMaps"

    def __init__(
        self,
        token: str,
        *,
        token_header: str = "auth-token",
        base_url: str = "https://api.electricitymap.org/v3/",
        horizon_hours: int = 24,
        client: HttpClient | None = None,
    ) -> None:
        self._token = token
        self._token_header = token_header
        self._base_url = base_url
        self._horizon_hours = horizon_hours
        self._client = client or HttpClient(self.name)
        self._client.add_secrets([token])

    @classmethod
    def from_settings(cls, settings: Settings) -> ElectricityMapsProvider:
        token = settings.em_api_token.get_secret_value() if settings.em_api_token else ""
        if not token:
            raise ConfigurationError(
                "EM_API_TOKEN: not set; PROVIDER=ElectricityMaps needs an Electricity Maps API token with "
                "forecast access (or use EM_API_TOKEN_FILE for a mounted Secret)"
            )
        header = settings.em_api_token_header.strip()
        if not header or not all(char.isalnum() or char in "-_" for char in header):
            raise ConfigurationError(f"EM_API_TOKEN_HEADER={header!r}: not a valid HTTP header name")
        return cls(
            token,
            token_header=header,
            base_url=check_url("EM_BASE_URL", settings.em_base_url),
            horizon_hours=settings.forecast_horizon_hours,
        )

    def check_region(self, region: str, provider_region: str | None) -> None:
        if provider_region is not None and not provider_region.strip():
            raise ConfigurationError(
                "PROVIDER_REGION: empty; unset it or give an Electricity Maps zone such as DE"
            )
        if not provider_region:
            lookup(region)

    def close(self) -> None:
        self._client.close()

    def fetch(self, region: str, provider_region: str | None) -> Forecast:
        params: dict[str, str | int | float]
        if provider_region:
            zone = provider_region.strip()
            params = {"zone": zone}
            asked = f"zone {zone}"
        else:
            entry = lookup(region)
            zone = ""
            params = {"lat": entry.latitude, "lon": entry.longitude, "disableCallerLookup": "true"}
            asked = f"{entry.key} ({entry.latitude}, {entry.longitude})"
        if self._horizon_hours > 0:
            params["horizonHours"] = self._horizon_hours
        url = join_url(self._base_url, "carbon-intensity/forecast")
        response = self._client.request("GET", url, params=params, headers={self._token_header: self._token})
        self._check_status(response, asked, by_zone=bool(provider_region))
        return self._client.parse(
            response, lambda body: parse_forecast(body, region=region, zone=zone), f" for {asked}"
        )

    def _check_status(self, response: httpx.Response, asked: str, *, by_zone: bool) -> None:
        status = response.status_code
        if 200 <= status < 300:
            return
        path = response.request.url.path
        detail = self._client.detail(response)
        text = response.text.lower() if not detail.startswith("HTML") else ""
        if "unauthorized for zonekey" in text or "zonekey" in text:
            raise self._client.error(
                "not_in_plan",
                f"GET {path}: the token's plan does not cover {asked} (HTTP {status}: {detail}); free tokens "
                "cover one zone only — set PROVIDER_REGION to your plan's zone or upgrade the plan",
            )
        if "endpoint not available" in text:
            raise self._client.error(
                "not_in_plan",
                f"GET {path}: the token's plan does not include forecasts (HTTP {status}: {detail}); "
                "Electricity Maps forecasts need a paid plan",
            )
        if status in (401, 403):
            raise self._client.error(
                "auth",
                f"GET {path}: Electricity Maps refused the token (HTTP {status}: {detail or 'no detail'}); "
                f"check EM_API_TOKEN and EM_API_TOKEN_HEADER={self._token_header} (it also answers 401 when "
                "over the rate limit)",
            )
        if status == 404 and not by_zone:
            raise self._client.error(
                "no_coverage",
                f"GET {path}: Electricity Maps has no zone for {asked} (HTTP 404: {detail or 'no detail'}); "
                "set PROVIDER_REGION to an Electricity Maps zone",
            )
        self._client.raise_for_status(response, "check PROVIDER_REGION and EM_BASE_URL")


def _slot_minutes(document: dict[str, Any], first: dict[str, Any], times: list[datetime]) -> int:
    """From ``temporalGranularity`` when given, else the spacing of the first two points, else hourly."""
    granularity = document.get("temporalGranularity") or first.get("temporalGranularity")
    if granularity is not None:
        if granularity not in GRANULARITY_MINUTES:
            raise InvalidForecastError(f"temporalGranularity {granularity!r} is not one we know")
        return GRANULARITY_MINUTES[granularity]
    if len(times) >= 2:
        if times[1] <= times[0]:
            raise InvalidForecastError("the first two points are duplicate or not sorted by time")
        return whole_minutes((times[1] - times[0]).total_seconds(), "the spacing of the first two points")
    return DEFAULT_SLOT_MINUTES


def parse_forecast(body: Any, *, region: str, zone: str = "") -> Forecast:
    """A ``/carbon-intensity/forecast`` answer → Forecast. Raises InvalidForecastError (NoDataError)."""
    document = expect_dict(body, "the answer")
    points = expect_list(document.get("forecast"), "forecast")
    answered_zone = document.get("zone")
    location = answered_zone if isinstance(answered_zone, str) and answered_zone else zone
    if not location:
        raise InvalidForecastError("the answer names no zone")
    if not points:
        raise NoDataError("the forecast holds no points")
    items = [expect_dict(raw, f"forecast[{index}]") for index, raw in enumerate(points)]
    times = [timestamp(item.get("datetime"), f"forecast[{index}]") for index, item in enumerate(items)]
    duration = _slot_minutes(document, items[0], times)
    records = tuple(
        EmissionsData(
            location=location,
            timestamp=times[index],
            duration=duration,
            value=intensity(item.get("carbonIntensity"), f"forecast[{index}]"),
        )
        for index, item in enumerate(items)
    )
    updated = document.get("updatedAt")
    return Forecast(
        records=records,
        provider=ElectricityMapsProvider.name,
        region=region,
        location=location,
        generated_at=timestamp(updated, "updatedAt") if updated is not None else None,
    )


__all__ = ["ElectricityMapsProvider", "parse_forecast"]
