"""Human output for ``forecast``: a table, and the chart when stdout is a terminal."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from .model import EmissionsData, Forecast, format_time


def forecast_table(forecast: Forecast, now: datetime, chart: bool = False) -> str:
    lines = [
        f"{forecast.provider} forecast for {forecast.region} ({forecast.location}), "
        f"generated {format_time(forecast.forecast_time) if forecast.forecast_time else '?'}"
        + (" — SAMPLE DATA" if forecast.sample else ""),
    ]
    current = forecast.at(now)
    if current is not None:
        lines.append(f"now: {current.value:.1f} {forecast.units}")
    else:
        lines.append("now: no record covers the current time")
    if forecast.min_value is not None and forecast.max_value is not None:
        lines.append(f"range: {forecast.min_value:.1f} to {forecast.max_value:.1f} {forecast.units}")
    if chart:
        from .chart import render_chart

        lines.append(render_chart(forecast.records, now=now, title=f"{forecast.location} {forecast.units}"))
    lines.append(f"{'START (UTC)':<22}{'MIN':>5}  {forecast.units}")
    lines.extend(
        f"{format_time(record.timestamp):<22}{record.duration:>5}  {record.value:.1f}" for record in forecast.records
    )
    return "\n".join(lines)


def _clock(when: datetime) -> str:
    return when.strftime("%Y-%m-%d %H:%M UTC")


def format_span(delta: timedelta) -> str:
    """``2h00m``, ``45m``, or ``0m05s`` when there are seconds: lengths and waits for people."""
    seconds = max(0, round(delta.total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{seconds:02d}s" if seconds else f"{minutes}m"


def best_window_text(
    forecast: Forecast, windows: Sequence[EmissionsData], duration: timedelta, now: datetime, chart: bool = False
) -> str:
    """The answer in words: when, how green, and the saving against starting now."""
    from .windows import window_average

    where = f"{forecast.region} ({forecast.location})" if forecast.region else forecast.location
    if not windows:
        return f"No {format_span(duration)} window fits inside the forecast for {where} in the times asked."
    best = windows[0]
    lines = [
        f"Greenest {format_span(duration)} window for {where}: start {_clock(best.timestamp)}"
        + (f" (in {format_span(best.timestamp - now)})" if best.timestamp > now else " (now)")
        + f", end {_clock(best.end)}",
    ]
    average = f"average {best.value:.1f} {forecast.units}"
    right_now = window_average(forecast.records, now, duration)
    if right_now is None:
        lines.append(f"{average}; starting now is not covered by the forecast")
    elif right_now > 0:
        saving = (right_now - best.value) / right_now * 100
        lines.append(f"{average}, {saving:.1f}% less than starting now ({right_now:.1f})")
    else:
        lines.append(average)
    if len(windows) > 1:
        lines.append(f"{len(windows)} windows tie for the lowest average; the earliest is shown (-o json lists all)")
    if forecast.sample:
        lines.append("(SAMPLE DATA: bundled demo forecast, not a real grid)")
    if chart:
        from .chart import render_chart

        lines.append(render_chart(forecast.records, highlight=best, now=now, title=f"{where} {forecast.units}"))
    return "\n".join(lines)
