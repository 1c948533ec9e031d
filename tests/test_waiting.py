"""``wait``'s decision: the greenest start within --max-delay, --threshold, and every fail-safe case."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

from carbon_intensity_exporter.model import EmissionsData, Forecast
from carbon_intensity_exporter.waiting import plan_start, sleep_until

NOW = datetime(2026, 12, 4, 22, 7, tzinfo=UTC)
HOUR = timedelta(hours=1)
TOP_OF_HOUR = NOW.replace(minute=0)


def hourly(*values: float, start: datetime = TOP_OF_HOUR) -> Forecast:
    records = tuple(EmissionsData("Z", start + i * HOUR, 60, v) for i, v in enumerate(values))
    return Forecast(records=records, provider="File", region="westus", location="Z")


def test_waits_for_the_greenest_window_inside_max_delay() -> None:
    forecast = hourly(300, 280, 250, 100, 90, 400, 50, 50)
    plan = plan_start(forecast, NOW, HOUR, max_delay=4 * HOUR)
    assert plan.start == NOW.replace(minute=0) + 4 * HOUR  # the 90 slot; the 50s start after --max-delay
    assert plan.expected == 90
    assert plan.expected is not None and plan.now_value is not None
    assert plan.expected < plan.now_value
    assert "greenest window" in plan.line(NOW)
    assert "less than starting now" in plan.line(NOW)


def test_max_delay_is_a_hard_bound_on_the_choice() -> None:
    forecast = hourly(300, 280, 250, 100, 90, 400, 50, 50)
    plan = plan_start(forecast, NOW, HOUR, max_delay=2 * HOUR)
    assert plan.start <= NOW + 2 * HOUR


def test_threshold_starts_now_when_the_current_slot_is_low_enough() -> None:
    plan = plan_start(hourly(200, 100), NOW, HOUR, 6 * HOUR, threshold=250)
    assert plan.start == NOW
    assert "--threshold" in plan.reason


def test_threshold_starts_at_the_first_low_slot_when_sooner_than_the_best() -> None:
    plan = plan_start(hourly(300, 240, 300, 10, 10), NOW, HOUR, 6 * HOUR, threshold=250)
    assert plan.start == NOW.replace(minute=0) + HOUR


def test_stale_forecast_starts_now() -> None:
    plan = plan_start(hourly(1, 2, start=NOW - 5 * HOUR), NOW, HOUR, 6 * HOUR)
    assert plan.start == NOW
    assert "stale" in plan.reason


def test_no_window_inside_max_delay_starts_now() -> None:
    plan = plan_start(hourly(300), NOW, 2 * HOUR, 6 * HOUR)  # data ends in 53 minutes
    assert plan.start == NOW
    assert "no 2h00m window" in plan.reason


def test_sleep_until_honours_max_delay_and_stop() -> None:
    started = time.monotonic()
    assert sleep_until(NOW + 10 * HOUR, NOW, timedelta(seconds=0.2), threading.Event())
    assert time.monotonic() - started < 5  # bounded by max_delay, not the 10 h plan
    stop = threading.Event()
    threading.Timer(0.1, stop.set).start()
    assert not sleep_until(NOW + HOUR, NOW, 2 * HOUR, stop)
