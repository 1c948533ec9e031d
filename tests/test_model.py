"""The EmissionsData encoding is the contract of binaryData.data: exact format, strict rejection."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from carbon_intensity_exporter.model import (
    EmissionsData,
    Forecast,
    InvalidForecastError,
    format_time,
    records_from_json,
    records_to_json,
)

T0 = datetime(2026, 12, 4, 13, 0, tzinfo=UTC)


def slots(*values: float, minutes: int = 5, start: datetime = T0) -> tuple[EmissionsData, ...]:
    return tuple(
        EmissionsData("CAISO_NORTH", start + timedelta(minutes=minutes * i), minutes, value)
        for i, value in enumerate(values)
    )


def test_encoding_matches_the_contract_exactly() -> None:
    payload = records_to_json(slots(234.5612, 200))
    assert json.loads(payload) == [
        {"location": "CAISO_NORTH", "timestamp": "2026-12-04T13:00:00Z", "duration": 5, "value": 234.5612},
        {"location": "CAISO_NORTH", "timestamp": "2026-12-04T13:05:00Z", "duration": 5, "value": 200.0},
    ]
    assert b'"value": 200.0' in payload  # a JSON number that Go decodes as float64


def test_round_trip() -> None:
    records = slots(1.5, 2.25, 0.0)
    assert records_from_json(records_to_json(records)) == records


def test_time_format_is_utc_z() -> None:
    east = datetime(2026, 12, 4, 15, 0, tzinfo=UTC).astimezone(__import__("zoneinfo").ZoneInfo("Europe/Berlin"))
    assert format_time(east) == "2026-12-04T15:00:00Z"
    assert format_time(T0 + timedelta(microseconds=5)) == "2026-12-04T13:00:00.000005Z"


@pytest.mark.parametrize(
    ("item", "fragment"),
    [
        ({"location": "X", "timestamp": "2026-12-04T13:00:00Z", "duration": 0, "value": 1}, "duration 0"),
        ({"location": "X", "timestamp": "2026-12-04T13:00:00Z", "duration": 2.5, "value": 1}, "duration 2.5"),
        ({"location": "X", "timestamp": "2026-12-04T13:00:00Z", "duration": 5, "value": -1}, "non-negative"),
        ({"location": "X", "timestamp": "2026-12-04T13:00:00Z", "duration": 5, "value": "1"}, "not a number"),
        ({"location": "X", "timestamp": "2026-12-04T13:00:00", "duration": 5, "value": 1}, "no UTC offset"),
        ({"location": "X", "timestamp": "yesterday", "duration": 5, "value": 1}, "not RFC 3339"),
        ({"location": "X", "duration": 5, "value": 1}, "lacks timestamp"),
        ({"location": "X", "timestamp": "1999-08-01T11:37:00Z", "duration": 4207813223, "value": 1}, "int32"),
        ({"location": "X", "timestamp": "9999-12-31T23:00:00Z", "duration": 120, "value": 1}, "year 9999"),
    ],
)
def test_malformed_records_are_rejected_with_the_reason(item: dict[str, object], fragment: str) -> None:
    with pytest.raises(InvalidForecastError, match=fragment):
        records_from_json(json.dumps([item]))


def test_nan_is_rejected() -> None:
    with pytest.raises(InvalidForecastError, match="finite"):
        records_from_json('[{"location":"X","timestamp":"2026-12-04T13:00:00Z","duration":5,"value":NaN}]')


@pytest.mark.parametrize(
    ("records", "fragment"),
    [
        (slots(1, 2)[::-1], "sorted"),
        ((*slots(1), *slots(2)), "duplicate"),
        ((*slots(1, minutes=10), *slots(2, start=T0 + timedelta(minutes=5))), "overlaps"),
    ],
)
def test_order_duplicates_and_overlaps_are_rejected(records: tuple[EmissionsData, ...], fragment: str) -> None:
    with pytest.raises(InvalidForecastError, match=fragment):
        Forecast(records=records, provider="File", region="r", location="X")


def test_not_an_array() -> None:
    with pytest.raises(InvalidForecastError, match="JSON array"):
        records_from_json('{"data": []}')
    with pytest.raises(InvalidForecastError, match="not JSON"):
        records_from_json("[{")


def test_forecast_summary_and_lookup_use_the_consumers_rule() -> None:
    forecast = Forecast(records=slots(300, 200, 250), provider="File", region="westus", location="CAISO_NORTH")
    assert (forecast.min_value, forecast.max_value) == (200, 300)
    assert forecast.forecast_time == T0  # no generated_at: the first point
    assert forecast.at(T0 + timedelta(minutes=5)) == forecast.records[1]  # timestamp <= now
    assert forecast.at(T0 + timedelta(minutes=9, seconds=59))== forecast.records[1]  # now < end
    assert forecast.at(T0 + timedelta(minutes=15)) is None
    assert forecast.at(T0 - timedelta(seconds=1)) is None
    assert forecast.is_stale(T0 + timedelta(hours=1))


@given(
    st.lists(
        st.tuples(st.integers(1, 120), st.integers(0, 60), st.floats(0, 2000, allow_nan=False)), max_size=30
    )
)
def test_lookup_agrees_with_a_linear_scan(spec: list[tuple[int, int, float]]) -> None:
    records, start = [], T0
    for duration, gap, value in spec:
        records.append(EmissionsData("Z", start, duration, value))
        start += timedelta(minutes=duration + gap)
    forecast = Forecast(records=tuple(records), provider="File", region="r", location="Z")
    probe = T0
    while probe <= start:
        expected = next((r for r in records if r.timestamp <= probe < r.end), None)
        assert forecast.at(probe) == expected
        probe += timedelta(minutes=7)
