"""render_chart draws without a terminal, with or without color, and fails helpfully without plotext."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta

import pytest

from carbon_intensity_exporter.chart import EMPTY_MESSAGE, INSTALL_HINT, render_chart
from carbon_intensity_exporter.model import EmissionsData
from carbon_intensity_exporter.windows import best_windows

pytest.importorskip("plotext")

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
ANSI_ESCAPE = "\x1b["


def _forecast(slots: int = 864, minutes: int = 5) -> list[EmissionsData]:
    values = [200 + (index * 37) % 150 for index in range(slots)]
    return [
        EmissionsData("IE", T0 + timedelta(minutes=minutes * index), minutes, float(value))
        for index, value in enumerate(values)
    ]


def test_renders_with_title_at_the_requested_size() -> None:
    chart = render_chart(_forecast(), title="IE forecast", width=90, height=18, color=False)
    assert "IE forecast" in chart
    assert "gCO2eq/kWh" in chart
    lines = chart.splitlines()
    assert max(len(line) for line in lines) <= 90
    assert len(lines) <= 18 + 1


def test_no_color_means_no_escape_codes() -> None:
    assert ANSI_ESCAPE not in render_chart(_forecast(), color=False)
    assert ANSI_ESCAPE in render_chart(_forecast(), color=True)


def test_highlight_and_now() -> None:
    records = _forecast()
    best = best_windows(records, timedelta(hours=2))[0]
    chart = render_chart(records, highlight=best, now=T0 + timedelta(minutes=7), title="t", color=False)
    assert f"best {best.timestamp:%a %H:%M}" in chart
    assert "now" in chart


def test_highlight_outside_the_data_does_not_crash() -> None:
    records = _forecast(slots=12)
    outside = EmissionsData("IE", T0 + timedelta(days=3), 60, 1.0)
    assert "gCO2eq/kWh" in render_chart(records, highlight=outside, now=T0 - timedelta(hours=1), color=False)


def test_gaps_and_short_forecasts() -> None:
    records = [EmissionsData("IE", T0, 30, 100.0), EmissionsData("IE", T0 + timedelta(hours=2), 30, 50.0)]
    assert "12:00" in render_chart(records, color=False)  # drawn as two separate runs, ticks still there
    assert "gCO2eq/kWh" in render_chart(records[:1], color=False)


def test_the_global_plotext_figure_is_left_clean() -> None:
    first = render_chart(_forecast(slots=24), title="one", color=False)
    render_chart(_forecast(slots=48), title="two", color=False)
    assert render_chart(_forecast(slots=24), title="one", color=False) == first


def test_empty_records_give_a_message() -> None:
    assert render_chart([]) == EMPTY_MESSAGE
    assert render_chart([], title="IE") == f"IE: {EMPTY_MESSAGE}"


def test_missing_plotext_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "plotext", None)  # makes `import plotext` raise ImportError
    with pytest.raises(ImportError, match=r"carbon-intensity-exporter\[chart\]") as info:
        render_chart(_forecast(slots=3))
    assert INSTALL_HINT in str(info.value)
