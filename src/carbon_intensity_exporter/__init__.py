"""carbon-intensity-exporter: grid carbon-intensity forecasts published in Kubernetes.

The public surface is small and re-exported here; everything else is internal and may change.
"""

from __future__ import annotations

from .model import EmissionsData, Forecast, InvalidForecastError
from .reader import ForecastUnavailableError, read_forecast


def __getattr__(name: str) -> str:
    """``__version__`` on demand: importlib.metadata costs ~20 ms of start-up the loop does not need."""
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("carbon-intensity-exporter")
        except PackageNotFoundError:  # pragma: no cover - a source tree without metadata
            return "0.0.0"
    raise AttributeError(name)

__all__ = [
    "EmissionsData",
    "Forecast",
    "ForecastUnavailableError",
    "InvalidForecastError",
    "__version__",
    "read_forecast",
]
