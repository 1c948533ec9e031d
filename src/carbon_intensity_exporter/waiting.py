"""``wait``: hold a Job's init container until the greenest window, and never block the Job for long.

Fail safe: any doubt (ConfigMap missing or unreadable, no record covering now, no window inside
``--max-delay``) means start at once and say why. ``--max-delay`` bounds the sleep whatever the data says.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from .display import format_span
from .model import Forecast, format_time
from .windows import window_average


@dataclass(frozen=True, slots=True)
class Plan:
    """When to start, and the figures behind it (``None`` where unknown)."""

    start: datetime
    reason: str
    expected: float | None = None
    now_value: float | None = None

    def line(self, now: datetime, units: str = "gCO2eq/kWh") -> str:
        when = "now" if self.start <= now else f"at {format_time(self.start)} (in {format_span(self.start - now)})"
        text = f"starting {when}: {self.reason}"
        if self.expected is not None:
            text += f"; expected average {self.expected:.1f} {units}"
            if self.now_value is not None and self.now_value > 0 and self.start > now:
                saving = (self.now_value - self.expected) / self.now_value * 100
                text += f", {saving:.1f}% less than starting now ({self.now_value:.1f})"
        return text


def plan_start(
    forecast: Forecast,
    now: datetime,
    duration: timedelta,
    max_delay: timedelta,
    threshold: float | None = None,
) -> Plan:
    """The greenest start within ``max_delay`` (or the first slot at/below ``threshold``, if sooner)."""
    current = forecast.at(now)
    if current is None:
        return Plan(now, "the forecast is stale (no record covers now), so not waiting")
    now_value = window_average(forecast.records, now, duration)
    if threshold is not None and current.value <= threshold:
        return Plan(now, f"the current intensity {current.value:.1f} is at or below --threshold {threshold:g}",
                    now_value, now_value)
    windows = forecast.best_windows(duration, now, now + max_delay + duration)
    if not windows:
        return Plan(now, f"no {format_span(duration)} window starting within --max-delay is covered by the forecast")
    best = windows[0]
    if threshold is not None:
        for record in forecast.records:
            begin = max(record.timestamp, now)
            if begin >= best.timestamp:
                break
            if record.end > now and record.value <= threshold:
                expected = window_average(forecast.records, begin, duration)
                return Plan(begin, f"the first slot at or below --threshold {threshold:g}", expected, now_value)
    if best.timestamp <= now:
        return Plan(now, "now is already the greenest window", best.value, now_value)
    return Plan(best.timestamp, "the greenest window", best.value, now_value)


def sleep_until(start: datetime, now: datetime, max_delay: timedelta, stop: threading.Event) -> bool:
    """Sleep until ``start`` (never longer than ``max_delay``, on the monotonic clock); False if stopped."""
    seconds = min((start - now).total_seconds(), max_delay.total_seconds())
    deadline = time.monotonic() + max(0.0, seconds)
    while not stop.is_set():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return True
        stop.wait(min(remaining, 60.0))
    return False
