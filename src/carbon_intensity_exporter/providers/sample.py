"""Bundled demo data, re-anchored to the current slot, so a new user sees the whole pipeline with no account.

It is never a silent fallback: it runs only when PROVIDER=Sample, and the Forecast says ``sample=True`` so
the ConfigMap carries a ``sample: "true"`` annotation.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import cache
from importlib import resources
from typing import Any

from ..model import EmissionsData, Forecast
from ..settings import Settings
from .base import Provider


@cache
def _profile() -> dict[str, Any]:
    text = resources.files("carbon_intensity_exporter").joinpath("data/sample-forecast.json").read_text()
    profile: dict[str, Any] = json.loads(text)
    return profile


def current_slot(now: datetime, minutes: int) -> datetime:
    """The start of the ``minutes``-long slot that holds ``now`` (slots aligned to midnight UTC)."""
    midnight = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    elapsed = int((now - midnight).total_seconds() // (minutes * 60))
    return midnight + timedelta(minutes=elapsed * minutes)


class SampleProvider(Provider):
    name = "Sample"
    signal_type = "sample"

    def __init__(self, horizon_hours: int, clock: Callable[[], datetime] | None = None) -> None:
        self._horizon_hours = horizon_hours
        self._clock = clock or (lambda: datetime.now(UTC))

    @classmethod
    def from_settings(cls, settings: Settings) -> SampleProvider:
        return cls(settings.forecast_horizon_hours)

    def fetch(self, region: str, provider_region: str | None) -> Forecast:
        profile = _profile()
        period: int = profile["period_minutes"]
        values: list[float] = profile["values"]
        now = self._clock()
        start = current_slot(now, period)
        first_index = int((start - start.replace(hour=0, minute=0)).total_seconds() // (period * 60))
        count = max(1, self._horizon_hours * 60 // period)
        location = provider_region or profile["location"]
        records = tuple(
            EmissionsData(
                location=location,
                timestamp=start + timedelta(minutes=period * offset),
                duration=period,
                value=values[(first_index + offset) % len(values)],
            )
            for offset in range(count)
        )
        return Forecast(
            records=records,
            provider=self.name,
            region=region,
            location=location,
            signal_type=self.signal_type,
            generated_at=start,
            sample=True,
        )
