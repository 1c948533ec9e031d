"""The data every other module passes around: EmissionsData records and the Forecast that holds them.

The JSON encoding here *is* the contract of ``binaryData.data`` (DESIGN.md §2): consumers such as the
carbon-aware KEDA operator decode it with Go's ``encoding/json``, so a record that would not decode there
(or could never match "now") is rejected before it can be published.
"""

from __future__ import annotations

import bisect
import json
import math
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

GRAMS_PER_KWH = "gCO2eq/kWh"
LBS_PER_MWH_TO_G_PER_KWH = 0.45359237
#: Go consumers decode ``duration`` into an int32.
INT32_MAX = 2**31 - 1


class InvalidForecastError(ValueError):
    """Records that must never reach the ConfigMap (the message says which record and why)."""


def format_time(when: datetime) -> str:
    """RFC 3339 in UTC with a ``Z``; sub-second precision only when present."""
    if when.tzinfo is None:
        raise InvalidForecastError(f"timestamp {when.isoformat()} has no time zone")
    utc = when.astimezone(UTC)
    if utc.microsecond:
        return utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return utc.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime:
    """Parse an RFC 3339 timestamp that names its offset (``Z`` or ``+00:00``); naive times are refused."""
    if not isinstance(text, str) or not text:
        raise InvalidForecastError(f"timestamp {text!r} is not an RFC 3339 string")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidForecastError(f"timestamp {text!r} is not RFC 3339") from None
    if parsed.tzinfo is None:
        raise InvalidForecastError(f"timestamp {text!r} has no UTC offset")
    return parsed.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class EmissionsData:
    """One forecast slot: ``value`` gCO2eq/kWh from ``timestamp`` for ``duration`` minutes."""

    location: str
    timestamp: datetime
    duration: int
    value: float

    def __post_init__(self) -> None:
        if not isinstance(self.location, str):
            raise InvalidForecastError(f"location {self.location!r} is not a string")
        # One string per grid zone, not one per record: 288 records x 1,000 regions add up.
        object.__setattr__(self, "location", sys.intern(self.location))
        if self.timestamp.tzinfo is None:
            raise InvalidForecastError(f"timestamp {self.timestamp.isoformat()} has no time zone")
        if isinstance(self.duration, bool) or not isinstance(self.duration, int) or self.duration < 1:
            raise InvalidForecastError(
                f"duration {self.duration!r} at {format_time(self.timestamp)} is not a whole number of "
                "minutes >= 1 (a consumer could never match it)"
            )
        if self.duration > INT32_MAX:
            raise InvalidForecastError(
                f"duration {self.duration} at {format_time(self.timestamp)} does not fit the consumer's int32"
            )
        try:
            self.timestamp + timedelta(minutes=self.duration)
        except OverflowError:
            raise InvalidForecastError(
                f"the slot at {format_time(self.timestamp)} lasting {self.duration} minutes ends after year 9999"
            ) from None
        if isinstance(self.value, bool) or not isinstance(self.value, int | float):
            raise InvalidForecastError(f"value {self.value!r} at {format_time(self.timestamp)} is not a number")
        if not math.isfinite(self.value) or self.value < 0:
            raise InvalidForecastError(
                f"value {self.value!r} at {format_time(self.timestamp)} is not a finite, non-negative intensity"
            )

    @property
    def end(self) -> datetime:
        return self.timestamp + timedelta(minutes=self.duration)

    def covers(self, when: datetime) -> bool:
        """The consumer's rule: ``timestamp <= now < timestamp + duration``."""
        return self.timestamp <= when < self.end

    def to_json(self) -> dict[str, Any]:
        return {
            "location": self.location,
            "timestamp": format_time(self.timestamp),
            "duration": self.duration,
            "value": float(self.value),
        }

    @classmethod
    def from_json(cls, item: object, index: int = 0) -> EmissionsData:
        if not isinstance(item, dict):
            raise InvalidForecastError(f"record {index} is not a JSON object")
        missing = [key for key in ("location", "timestamp", "duration", "value") if key not in item]
        if missing:
            raise InvalidForecastError(f"record {index} lacks {', '.join(missing)}")
        duration = item["duration"]
        if isinstance(duration, float) and duration.is_integer():
            duration = int(duration)
        try:
            return cls(
                location=item["location"],
                timestamp=parse_time(item["timestamp"]),
                duration=duration,
                value=item["value"],
            )
        except InvalidForecastError as exc:
            raise InvalidForecastError(f"record {index}: {exc}") from None


def validate_records(records: Sequence[EmissionsData]) -> None:
    """Sorted by timestamp, no duplicate timestamps, no overlapping slots."""
    for index in range(1, len(records)):
        previous, current = records[index - 1], records[index]
        if current.timestamp == previous.timestamp:
            raise InvalidForecastError(f"record {index}: duplicate timestamp {format_time(current.timestamp)}")
        if current.timestamp < previous.timestamp:
            raise InvalidForecastError(
                f"record {index}: timestamp {format_time(current.timestamp)} is earlier than the one before "
                "(records must be sorted)"
            )
        if current.timestamp < previous.end:
            raise InvalidForecastError(
                f"record {index}: slot at {format_time(current.timestamp)} overlaps the previous slot"
            )


def records_from_json(payload: bytes | str) -> tuple[EmissionsData, ...]:
    """Decode and check a ``binaryData.data`` payload exactly as a strict consumer would."""
    try:
        decoded = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidForecastError(f"not JSON: {exc}") from None
    if not isinstance(decoded, list):
        raise InvalidForecastError(f"expected a JSON array of EmissionsData, got {type(decoded).__name__}")
    records = tuple(EmissionsData.from_json(item, index) for index, item in enumerate(decoded))
    validate_records(records)
    return records


def records_to_json(records: Iterable[EmissionsData]) -> bytes:
    """The exact bytes of ``binaryData.data`` (and of ``forecast -o json``)."""
    return json.dumps([record.to_json() for record in records], allow_nan=False).encode()


@dataclass(frozen=True, slots=True)
class Forecast:
    """A provider's forecast for one region, already in gCO2eq/kWh and checked against the contract."""

    records: tuple[EmissionsData, ...]
    provider: str
    region: str
    location: str
    signal_type: str = ""
    units: str = GRAMS_PER_KWH
    generated_at: datetime | None = None
    sample: bool = False
    _starts: tuple[datetime, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        records = tuple(self.records)
        validate_records(records)
        object.__setattr__(self, "records", records)
        object.__setattr__(self, "_starts", tuple(record.timestamp for record in records))

    @property
    def forecast_time(self) -> datetime | None:
        """When the provider generated it, else the first point (DESIGN.md §2 ``forecastDateTime``)."""
        if self.generated_at is not None:
            return self.generated_at
        return self.records[0].timestamp if self.records else None

    @property
    def min_value(self) -> float | None:
        return min((record.value for record in self.records), default=None)

    @property
    def max_value(self) -> float | None:
        return max((record.value for record in self.records), default=None)

    @property
    def start(self) -> datetime | None:
        return self.records[0].timestamp if self.records else None

    @property
    def end(self) -> datetime | None:
        return self.records[-1].end if self.records else None

    def at(self, when: datetime) -> EmissionsData | None:
        """The record a consumer would pick for ``when`` (None when no slot covers it)."""
        index = bisect.bisect_right(self._starts, when) - 1
        if index >= 0 and self.records[index].covers(when):
            return self.records[index]
        return None

    def is_stale(self, now: datetime) -> bool:
        """Stale when no record covers ``now``: the consumer would turn eco mode off."""
        return self.at(now) is None

    def best_windows(
        self, duration: timedelta, start: datetime | None = None, end: datetime | None = None
    ) -> list[EmissionsData]:
        """Every greenest window for a job of ``duration`` (see :mod:`.windows` for the semantics)."""
        from .windows import best_windows

        return best_windows(self.records, duration, start, end)

    def best_window(
        self, duration: timedelta, start: datetime | None = None, end: datetime | None = None
    ) -> EmissionsData | None:
        """The earliest greenest window (``timestamp`` = start, ``value`` = average), or None if none fits."""
        windows = self.best_windows(duration, start, end)
        return windows[0] if windows else None

    def to_json(self) -> bytes:
        return records_to_json(self.records)
