"""Green Software Foundation Carbon Aware SDK WebAPI: ``/emissions/forecasts/current``.

Its ``forecastData`` items are already EmissionsData (g/kWh, minutes), so users of the old exporter's SDK
sidecar can point ``CARBON_AWARE_SDK_URL`` at it and keep their SDK configuration (and its data source).
"""

from __future__ import annotations

from typing import Any

from ..model import EmissionsData, Forecast
from ..regions import lookup
from ..settings import ConfigurationError, Settings
from ._http import HttpClient, NoDataError, check_url, expect_dict, expect_list, join_url, timestamp
from .base import Provider


class CarbonAwareSDKProvider(Provider):
    name = "CarbonAwareSDK"

    def __init__(self, base_url: str, *, client: HttpClient | None = None) -> None:
        self._base_url = base_url
        self._client = client or HttpClient(self.name)

    @classmethod
    def from_settings(cls, settings: Settings) -> CarbonAwareSDKProvider:
        if not settings.carbon_aware_sdk_url:
            raise ConfigurationError(
                "CARBON_AWARE_SDK_URL: not set; PROVIDER=CarbonAwareSDK needs the URL of a running Carbon "
                "Aware SDK WebAPI (e.g. http://carbon-aware-sdk.default.svc:8080)"
            )
        return cls(check_url("CARBON_AWARE_SDK_URL", settings.carbon_aware_sdk_url))

    @staticmethod
    def location_for(region: str, provider_region: str | None) -> str:
        """The SDK's location name: PROVIDER_REGION as is, else the catalogue name (``westus``)."""
        if provider_region:
            return provider_region.strip()
        return lookup(region).name

    def check_region(self, region: str, provider_region: str | None) -> None:
        if provider_region is not None and not provider_region.strip():
            raise ConfigurationError("PROVIDER_REGION: empty; unset it or give a location the SDK knows")
        self.location_for(region, provider_region)

    def close(self) -> None:
        self._client.close()

    def fetch(self, region: str, provider_region: str | None) -> Forecast:
        location = self.location_for(region, provider_region)
        url = join_url(self._base_url, "emissions/forecasts/current")
        response = self._client.request("GET", url, params={"location": location})
        self._client.raise_for_status(response, f"check that the SDK knows location {location!r}")
        return self._client.parse(
            response, lambda body: parse_forecast(body, region=region, location=location), f" for location {location}"
        )


def parse_forecast(body: Any, *, region: str, location: str) -> Forecast:
    """The SDK's array of per-location forecasts → Forecast for ``location``. Raises InvalidForecastError."""
    items = expect_list(body, "the answer")
    if not items:
        raise NoDataError("the answer holds no forecast")
    documents = [expect_dict(item, f"forecast {index}") for index, item in enumerate(items)]
    chosen = next(
        (doc for doc in documents if str(doc.get("location", "")).lower() == location.lower()), documents[0]
    )
    data = expect_list(chosen.get("forecastData"), "forecastData")
    if not data:
        raise NoDataError("forecastData holds no points")
    records = tuple(EmissionsData.from_json(item, index) for index, item in enumerate(data))
    generated = chosen.get("generatedAt")
    return Forecast(
        records=records,
        provider=CarbonAwareSDKProvider.name,
        region=region,
        location=records[0].location or location,
        generated_at=timestamp(generated, "generatedAt") if generated is not None else None,
    )


__all__ = ["CarbonAwareSDKProvider", "parse_forecast"]
