"""The forecast curve in the terminal, with the chosen window highlighted (plotext, the ``chart`` extra).

plotext is imported inside ``render_chart`` so the CLI starts fast and runs without the extra. The chart is
returned as a string (``build()``), never printed, at an explicit size: it renders the same whether or not
stdout is a terminal (tests, pipes); the caller decides whether to show it. plotext keeps one global
figure, so this is not thread-safe; it clears the figure before and after drawing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from carbon_intensity_exporter.model import EmissionsData

INSTALL_HINT = "pip install 'carbon-intensity-exporter[chart]'"
EMPTY_MESSAGE = "No forecast data to chart."
_TICK_STEPS_HOURS = (1, 2, 3, 6, 12, 24, 48)
_TICK_LABEL_CHARS = 12  # room per x tick label, so labels never run into each other


def _load_plotext() -> Any:  # plotext ships no type hints
    try:
        import plotext
    except ImportError as exc:
        raise ImportError(f"the terminal chart needs plotext: {INSTALL_HINT}") from exc
    if not hasattr(plotext, "build"):  # plotext 6 replaced the 5.x module-level API
        raise ImportError("the terminal chart needs the plotext 5 API: pip install 'plotext>=5.2,<6'")
    return plotext


def _runs(records: Sequence[EmissionsData]) -> list[list[EmissionsData]]:
    """Gap-free stretches, drawn as separate lines so a gap is not bridged by a fake slope."""
    runs: list[list[EmissionsData]] = []
    for record in records:
        if runs and runs[-1][-1].end == record.timestamp:
            runs[-1].append(record)
        else:
            runs.append([record])
    return runs


def _steps(
    records: Sequence[EmissionsData],
    hours: Callable[[datetime], float],
    low: datetime | None = None,
    high: datetime | None = None,
) -> tuple[list[float], list[float]]:
    """Each slot as a flat segment (its value holds for its whole duration), clipped to [low, high]."""
    xs: list[float] = []
    ys: list[float] = []
    for record in records:
        start = record.timestamp if low is None else max(record.timestamp, low)
        stop = record.end if high is None else min(record.end, high)
        if stop <= start:
            continue
        xs += [hours(start), hours(stop)]
        ys += [float(record.value), float(record.value)]
    return xs, ys


def _ticks(first: datetime, last: datetime, reference: datetime, width: int) -> tuple[list[float], list[str]]:
    """Round-hour ticks labelled HH:MM (UTC), with the weekday when the forecast spans more than a day."""
    span_hours = max((last - first).total_seconds() / 3600, 1e-9)
    room = max(2, width // _TICK_LABEL_CHARS)
    step = next((s for s in _TICK_STEPS_HOURS if span_hours / s <= room), _TICK_STEPS_HOURS[-1])
    label = "%a %H:%M" if last - first > timedelta(hours=24) else "%H:%M"
    tick = first.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    while tick < first or tick.hour % step:
        tick += timedelta(hours=1)
    positions: list[float] = []
    labels: list[str] = []
    while tick <= last:
        positions.append((tick - reference).total_seconds() / 3600)
        labels.append(tick.strftime(label))
        tick += timedelta(hours=step)
    return positions, labels


def render_chart(
    records: Sequence[EmissionsData],
    highlight: EmissionsData | None = None,
    now: datetime | None = None,
    width: int = 100,
    height: int = 20,
    title: str = "",
    color: bool = True,
) -> str:
    """The forecast as a step chart: x = time (UTC HH:MM ticks), y = gCO2eq/kWh.

    ``highlight`` (a best window) is drawn as a second series over its span with vertical lines at its
    start and end; ``now`` as a vertical line. With ``color=False`` the result has no ANSI codes and the
    highlight stays visible through its different marker. Empty ``records`` give a one-line message.
    """
    if not records:
        return f"{title}: {EMPTY_MESSAGE}" if title else EMPTY_MESSAGE
    plt = _load_plotext()
    first, last = records[0].timestamp, records[-1].end
    reference = now if now is not None else first

    def hours(when: datetime) -> float:
        return (when - reference).total_seconds() / 3600

    plt.clear_figure()
    try:
        plt.limitsize(False, False)
        plt.plotsize(width, height)
        for index, run in enumerate(_runs(records)):
            xs, ys = _steps(run, hours)
            plt.plot(xs, ys, marker="braille", color="blue", label="forecast" if index == 0 else None)
        if highlight is not None:
            xs, ys = _steps(records, hours, highlight.timestamp, highlight.end)
            if xs:
                form = "%a %H:%M" if last - first > timedelta(hours=24) else "%H:%M"
                span = f"{highlight.timestamp.astimezone(UTC):{form}}-{highlight.end.astimezone(UTC):%H:%M}"
                label = f"best {span} UTC, avg {highlight.value:.0f}"
                plt.plot(xs, ys, marker="hd", color="green", label=label)
            plt.vline(hours(highlight.timestamp), "green")
            plt.vline(hours(highlight.end), "green")
        if now is not None and first <= now <= last:
            plt.vline(0.0, "red")
        positions, labels = _ticks(first, last, reference, width)
        plt.xticks(positions, labels)
        plt.xlabel("time (UTC)" + (", red line = now" if now is not None and first <= now <= last else ""))
        plt.ylabel("gCO2eq/kWh")
        if title:
            plt.title(title)
        if not color:
            plt.theme("clear")
        chart = str(plt.build())
    finally:
        plt.clear_figure()
    return chart if color else str(plt.uncolorize(chart))
