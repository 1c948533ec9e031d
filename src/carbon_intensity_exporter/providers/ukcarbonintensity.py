"""UK Carbon Intensity API (National Grid ESO / NESO, CC BY 4.0, no key): 30-minute forecasts up to 48 h.

National forecast (``PROVIDER_REGION=national``) or one of the API's regions (id 1-18; a UK cloud region
such as Azure ``uksouth`` maps to its region via the catalogue). The regional endpoint's ``data`` is an
array in the docs and an object in the live API: both are accepted.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from ..model import EmissionsData, Forecast
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

NATIONAL = "national"
NATIONAL_LOCATION = "GB"
REGION_IDS = range(1, 19)
SLOT_MINUTES = 30


def _now() -> datetime:
    return datetime.now(UTC)


class UKCarbonIntensityProvider(Provider):
    name = "UKCarbonIntensity"

    def __init__(
        self,
        *,
        base_url: str = "https://api.carbonintensity.org.uk",
        horizon_hours: int = 24,
        client: HttpClient | None = None,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self._base_url = base_url
        self._horizon_hours = horizon_hours
        self._client = client or HttpClient(self.name)
        self._clock = clock

    @classmethod
    def from_settings(cls, settings: Settings) -> UKCarbonIntensityProvider:
        return cls(
            base_url=check_url("UKCI_BASE_URL", settings.ukci_base_url),
            horizon_hours=settings.forecast_horizon_hours,
        )

    def target(self, region: str, provider_region: str | None) -> str:
        """``national`` or a region id as text; ConfigurationError when neither can be derived."""
        if provider_region is not None:
            text = provider_region.strip().lower()
            if text in (NATIONAL, NATIONAL_LOCATION.lower()):
                return NATIONAL
            if text.isdigit() and int(text) in REGION_IDS:
                return str(int(text))
            raise ConfigurationError(
                f"PROVIDER_REGION={provider_region!r}: UK Carbon Intensity takes 'national' or a region id "
                "1-18 (13 London, 15 England, 16 Scotland, 17 Wales, 18 GB)"
            )
        entry = lookup(region)
        code = entry.code(self.name)
        if code is None:
            raise ConfigurationError(
                f"REGION={region!r} ({entry.key}) is not in Great Britain, so UK Carbon Intensity has no "
                "data for it; choose another PROVIDER, or set PROVIDER_REGION=national or a region id 1-18"
            )
        return code

    def check_region(self, region: str, provider_region: str | None) -> None:
        self.target(region, provider_region)

    def close(self) -> None:
        self._client.close()

    def fetch(self, region: str, provider_region: str | None) -> Forecast:
        target = self.target(region, provider_region)
        now = self._clock().astimezone(UTC)
        start = now.replace(minute=now.minute - now.minute % SLOT_MINUTES, second=0, microsecond=0)
        window = "fw48h" if self._horizon_hours > 24 else "fw24h"
        # One minute into the current period: the API reads a period-boundary time as the end of the period
        # before, and a time inside the period returns that period first either way.
        stamp = (start + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%MZ")
        if target == NATIONAL:
            path = f"intensity/{stamp}/{window}"
        else:
            path = f"regional/intensity/{stamp}/{window}/regionid/{target}"
        response = self._client.request("GET", join_url(self._base_url, path))
        self._client.raise_for_status(response, "check PROVIDER_REGION and UKCI_BASE_URL")
        location = NATIONAL_LOCATION if target == NATIONAL else target

        def parse(body: Any) -> Forecast:
            if isinstance(body, dict) and "error" in body and "data" not in body:
                raise self._client.error(
                    "client_error",
                    f"GET {response.request.url.path}: the API answered an error ({self._client.detail(response)})",
                )
            return parse_forecast(body, region=region, location=location)

        forecast = self._client.parse(response, parse)
        return _trim(forecast, start + timedelta(hours=max(self._horizon_hours, 0)))


def _trim(forecast: Forecast, until: datetime) -> Forecast:
    """Keep the slots that start before the horizon (at least one): the API answers in 24/48 h blocks."""
    kept = tuple(record for record in forecast.records if record.timestamp < until) or forecast.records[:1]
    return Forecast(
        records=kept,
        provider=forecast.provider,
        region=forecast.region,
        location=forecast.location,
        signal_type=forecast.signal_type,
        generated_at=forecast.generated_at,
    )


def _periods(document: dict[str, Any]) -> list[Any]:
    """The list of 30-minute periods, national or regional (regional ``data`` as object or array)."""
    data = document.get("data")
    if isinstance(data, dict):
        return expect_list(data.get("data"), "data.data")
    items = expect_list(data, "data")
    if items and isinstance(items[0], dict) and "from" not in items[0] and "data" in items[0]:
        return expect_list(items[0].get("data"), "data[0].data")
    return items


def parse_forecast(body: Any, *, region: str, location: str) -> Forecast:
    """A national or regional forecast answer → Forecast. Raises InvalidForecastError (NoDataError)."""
    document = expect_dict(body, "the answer")
    periods = _periods(document)
    if not periods:
        raise NoDataError("the forecast holds no periods")
    records = []
    for index, raw in enumerate(periods):
        where = f"period {index}"
        period = expect_dict(raw, where)
        start, end = timestamp(period.get("from"), where), timestamp(period.get("to"), where)
        duration = whole_minutes((end - start).total_seconds(), f"{where} length")
        block = expect_dict(period.get("intensity"), f"{where} intensity")
        value = intensity(block.get("forecast"), f"{where} intensity.forecast")
        records.append(EmissionsData(location=location, timestamp=start, duration=duration, value=value))
    return Forecast(
        records=tuple(records),
        provider=UKCarbonIntensityProvider.name,
        region=region,
        location=location,
    )


__all__ = ["NATIONAL", "UKCarbonIntensityProvider", "parse_forecast"]
