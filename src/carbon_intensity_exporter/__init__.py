"""carbon-intensity-exporter: grid carbon-intensity forecasts published in Kubernetes.

The public surface is small and re-exported here; everything else is internal and may change.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from .model import EmissionsData, Forecast, InvalidForecastError
from .reader import ForecastUnavailableError, read_forecast

try:
    __version__ = version("carbon-intensity-exporter")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without metadata
    __version__ = "0.0.0"

__all__ = [
    "EmissionsData",
    "Forecast",
    "ForecastUnavailableError",
    "InvalidForecastError",
    "__version__",
    "read_forecast",
]
