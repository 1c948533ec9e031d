"""Human output for ``forecast``: a table, and the chart when stdout is a terminal."""

from __future__ import annotations

from datetime import datetime

from .model import Forecast, format_time


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
