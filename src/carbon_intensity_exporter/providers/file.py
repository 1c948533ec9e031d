"""A JSON EmissionsData array on disk, used as is: for air-gapped clusters, tests and hand-made forecasts.

An unreadable or malformed file is a *fetch* failure, not a configuration error: the last good data stays
published and the file is read again at the next attempt (a mounted ConfigMap may be mid-update).
"""

from __future__ import annotations

from pathlib import Path

from ..model import Forecast, InvalidForecastError, records_from_json
from ..settings import ConfigurationError, Settings
from .base import FetchError, Provider


class FileProvider(Provider):
    name = "File"

    def __init__(self, path: Path) -> None:
        self._path = path

    @classmethod
    def from_settings(cls, settings: Settings) -> FileProvider:
        if settings.forecast_file is None:
            raise ConfigurationError(
                "FORECAST_FILE: not set; PROVIDER=File needs the path of a JSON EmissionsData array"
            )
        return cls(settings.forecast_file)

    def fetch(self, region: str, provider_region: str | None) -> Forecast:
        try:
            payload = self._path.read_bytes()
        except OSError as exc:
            raise FetchError(
                self.name, "file", f"cannot read FORECAST_FILE {self._path}: {exc.strerror or exc}"
            ) from None
        try:
            records = records_from_json(payload)
        except InvalidForecastError as exc:
            raise FetchError(
                self.name, "file", f"FORECAST_FILE {self._path} is not a valid EmissionsData array: {exc}"
            ) from None
        if not records:
            raise FetchError(self.name, "no_data", f"FORECAST_FILE {self._path} holds no records")
        location = provider_region or records[0].location
        return Forecast(records=records, provider=self.name, region=region, location=location)
