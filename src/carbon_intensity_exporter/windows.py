"""The greenest window(s) for a job of a given length, with the Carbon Aware SDK's semantics.

Semantics (the SDK's ``RollingAverage`` / ``AverageOverPeriod``, ../shared/reference/providers.md):

* A window's value is the average of the slot intensities weighted by how much of each slot it overlaps.
* A window exists only where the data covers it completely: a gap inside it rules it out.
* Every window tied for the minimum is returned, sorted by start time.

Choices where the SDK leaves room (or where we differ from it on purpose):

* Candidate starts: ``start`` itself, then every slot start after it. When ``start`` falls mid-slot the first
  window starts exactly at ``start``, as the SDK's first window starts at ``dataStartAt`` (so "run now" is
  always a candidate). The SDK then advances by a fixed tick (the first slot's length) from that point;
  we advance to each following slot start instead, which is the same thing for evenly spaced data that
  starts on a slot boundary and stays aligned with the data when slots are uneven or have gaps.
* ``start=None`` means the first slot's start; ``end=None`` means no bound. A window must end at or before
  ``end`` (the SDK's ``dataEndAt``).
* Ties: a window is tied when its average is within a relative 1e-9 of the minimum. All sums are exact
  (Python integers), so ties, coverage and averages do not depend on floating-point rounding; each
  returned average is the correctly rounded value of the exact one.
* ``duration`` must be a positive whole number of minutes (EmissionsData durations are whole minutes);
  anything else raises ValueError rather than being rounded silently.

Cost: O(n) in the number of slots: prefix sums of value * time, one backward pass for gap-free stretches and
a two-pointer sweep (the records arrive sorted, so nothing is sorted here).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from datetime import datetime, timedelta

from carbon_intensity_exporter.model import EmissionsData, validate_records

TIE_TOLERANCE = 10**9  # ties: (sum - minimum) * TIE_TOLERANCE <= minimum, i.e. within a relative 1e-9
_MICROSECOND = timedelta(microseconds=1)
_MINUTE = timedelta(minutes=1)


def _check_aware(name: str, when: datetime | None) -> None:
    if when is not None and when.tzinfo is None:
        raise ValueError(f"{name} {when.isoformat()} has no time zone")


def _scaled_values(records: Sequence[EmissionsData]) -> tuple[list[int], int]:
    """Each value as an integer numerator over one shared power-of-two denominator (exact for floats)."""
    ratios = [record.value.as_integer_ratio() for record in records]
    denominator = max((den for _, den in ratios), default=1)
    return [num * (denominator // den) for num, den in ratios], denominator


def _window_minutes(duration: timedelta) -> int:
    if duration <= timedelta(0) or duration % _MINUTE:
        raise ValueError(f"window duration {duration} is not a positive whole number of minutes")
    return duration // _MINUTE


def best_windows(
    records: Sequence[EmissionsData],
    duration: timedelta,
    start: datetime | None = None,
    end: datetime | None = None,
) -> list[EmissionsData]:
    """Every window of ``duration`` with the lowest overlap-weighted average intensity, sorted by start.

    ``records`` must be sorted and non-overlapping (gaps allowed); see the module docstring for the exact
    rules. Returns ``[]`` when no window fits fully inside the data and the bounds. Each result is an
    EmissionsData: the starting slot's location, ``timestamp`` = window start, ``duration`` = window
    minutes, ``value`` = average gCO2eq/kWh.
    """
    minutes = _window_minutes(duration)
    _check_aware("start", start)
    _check_aware("end", end)
    if not records:
        return []
    origin = records[0].timestamp
    width = duration // _MICROSECOND
    starts = [(record.timestamp - origin) // _MICROSECOND for record in records]
    ends = [start_us + record.duration * 60_000_000 for start_us, record in zip(starts, records, strict=True)]
    if any(ends[k] > starts[k + 1] for k in range(len(records) - 1)):
        validate_records(records)  # unsorted or overlapping: raises InvalidForecastError saying where
    values, denominator = _scaled_values(records)
    count = len(records)

    # prefix[k] = exact integral (value * microseconds, scaled) of records[0:k]; gaps contribute nothing,
    # which is harmless because a window that spans a gap is never evaluated.
    prefix = [0] * (count + 1)
    for k in range(count):
        prefix[k + 1] = prefix[k] + values[k] * (ends[k] - starts[k])

    # run_end[k]: where the gap-free stretch of data containing records[k] ends.
    run_end = list(ends)
    for k in range(count - 2, -1, -1):
        if ends[k] == starts[k + 1]:
            run_end[k] = run_end[k + 1]

    # Candidates: (window start, index of the slot containing it), in time order.
    candidates: list[tuple[int, int]] = []
    if start is None:
        first_slot = 0
    else:
        start_us = (start - origin) // _MICROSECOND
        first_slot = bisect.bisect_right(starts, start_us)
        containing = first_slot - 1
        if containing >= 0 and start_us < ends[containing]:
            candidates.append((start_us, containing))
    candidates.extend((starts[k], k) for k in range(first_slot, count))
    end_us = None if end is None else (end - origin) // _MICROSECOND

    found: list[tuple[int, int, int]] = []  # (exact scaled sum, window start, slot index)
    last = 0  # two-pointer: the slot containing the window's end only moves forward
    for window_start, first in candidates:
        window_end = window_start + width
        if end_us is not None and window_end > end_us:
            break
        if run_end[first] < window_end:
            continue
        last = max(last, first)
        while ends[last] < window_end:
            last += 1
        total = (prefix[last] + values[last] * (window_end - starts[last])) - (
            prefix[first] + values[first] * (window_start - starts[first])
        )
        found.append((total, window_start, first))

    if not found:
        return []
    lowest = min(total for total, _, _ in found)
    divisor = denominator * width
    return [
        EmissionsData(
            location=records[first].location,
            timestamp=origin + timedelta(microseconds=window_start),
            duration=minutes,
            value=total / divisor,
        )
        for total, window_start, first in found
        if (total - lowest) * TIE_TOLERANCE <= lowest
    ]


def window_average(records: Sequence[EmissionsData], start: datetime, duration: timedelta) -> float | None:
    """Overlap-weighted average over ``[start, start + duration)``; None unless data covers all of it.

    Used for "the saving against running now": ``start`` may be anywhere, mid-slot included. Exact like
    ``best_windows`` (the same window gives the identical float).
    """
    _check_aware("start", start)
    if duration <= timedelta(0):
        raise ValueError(f"window duration {duration} is not positive")
    stop = start + duration
    first = bisect.bisect_right([record.timestamp for record in records], start) - 1
    if first < 0 or not records[first].covers(start):
        return None
    chosen: list[EmissionsData] = []
    reached = start
    for record in records[first:]:
        if record.timestamp != reached and chosen:
            return None  # a gap before the window's end
        chosen.append(record)
        reached = record.end
        if reached >= stop:
            break
    if reached < stop:
        return None
    values, denominator = _scaled_values(chosen)
    total = 0
    for value, record in zip(values, chosen, strict=True):
        overlap = min(record.end, stop) - max(record.timestamp, start)
        total += value * (overlap // _MICROSECOND)
    return total / (denominator * (duration // _MICROSECOND))
