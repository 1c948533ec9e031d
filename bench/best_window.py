"""Time best_windows over a real-shaped 72 h / 5-minute forecast (864 slots) against a brute force.

Run: ``python bench/best_window.py``. Both are measured in the same run with time.perf_counter; each figure
is the median of several repeats of the mean time per call. The brute force here is a short copy of the
one in tests/test_windows.py (tests cannot import from bench/ and vice versa; a few duplicated lines are
cheaper than path tricks). It checks every candidate start against every slot, so it is O(n^2);
it uses floats here (see brute_force) so the ratio compares algorithms.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from carbon_intensity_exporter.model import EmissionsData
from carbon_intensity_exporter.windows import best_windows

SLOTS = 864
SLOT_MINUTES = 5
WINDOW = timedelta(hours=2)
REPEATS = 7
MINUTE = timedelta(minutes=1)


def forecast() -> list[EmissionsData]:
    """A day/night curve with a solar dip and some noise-like ripple, like a grid forecast."""
    start = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    records = []
    for index in range(SLOTS):
        hour = (12 + index * SLOT_MINUTES / 60) % 24
        value = (
            320
            + 90 * math.cos((hour - 19) / 24 * 2 * math.pi)
            - 110 * max(0.0, math.sin((hour - 7) / 12 * math.pi))
        )
        value += 12 * math.sin(index * 0.7) + 5 * math.sin(index * 2.3)
        records.append(
            EmissionsData(
                "IE", start + timedelta(minutes=SLOT_MINUTES * index), SLOT_MINUTES, round(value, 3)
            )
        )
    return records


def brute_force(records: list[EmissionsData], duration: timedelta) -> list[tuple[datetime, float]]:
    """Every slot start against every slot's overlap, in plain floats; ties within a relative 1e-9.

    Floats rather than the tests' exact Fractions, so the ratio measures the algorithm, not Fraction overhead.
    """
    total = duration / MINUTE
    windows: list[tuple[datetime, float]] = []
    for candidate in (record.timestamp for record in records):
        stop = candidate + duration
        covered, weighted = 0.0, 0.0
        for record in records:
            low, high = max(record.timestamp, candidate), min(record.end, stop)
            if high > low:
                overlap = (high - low) / MINUTE
                covered += overlap
                weighted += record.value * overlap
        if covered == total:
            windows.append((candidate, weighted / total))
    lowest = min(average for _, average in windows)
    return [(when, average) for when, average in windows if average - lowest <= lowest * 1e-9]


def per_call(function: Callable[[], object], calls: int) -> float:
    """Median over REPEATS of the mean seconds per call."""
    means = []
    for _ in range(REPEATS):
        began = time.perf_counter()
        for _ in range(calls):
            function()
        means.append((time.perf_counter() - began) / calls)
    return statistics.median(means)


def main() -> None:
    records = forecast()
    fast = best_windows(records, WINDOW)
    slow = brute_force(records, WINDOW)
    assert [w.timestamp for w in fast] == [when for when, _ in slow], "the two disagree on the best window(s)"
    assert all(math.isclose(w.value, value, rel_tol=1e-9) for w, (_, value) in zip(fast, slow, strict=True))
    fast_seconds = per_call(lambda: best_windows(records, WINDOW), calls=50)
    slow_seconds = per_call(lambda: brute_force(records, WINDOW), calls=2)
    best = fast[0]
    print(
        f"forecast: {SLOTS} slots of {SLOT_MINUTES} min (72 h), window {WINDOW}, median of {REPEATS} repeats"
    )
    print(
        f"best window: {best.timestamp:%Y-%m-%d %H:%M} UTC, {best.duration} min, avg {best.value:.3f} g/kWh"
    )
    print(f"best_windows (prefix sums, O(n)):    {fast_seconds * 1e3:9.3f} ms per call")
    print(f"brute force (every window x slot):   {slow_seconds * 1e3:9.3f} ms per call")
    print(f"ratio brute force / best_windows:    {slow_seconds / fast_seconds:9.1f}x")


if __name__ == "__main__":
    main()
