"""best_windows / window_average against an exact brute force, and a few answers worked out by hand.

The brute force is deliberately naive (every candidate against every slot, in exact Fractions) so it shares
no machinery with the prefix-sum sweep. bench/best_window.py has its own short copy: tests cannot import
from bench/, and the duplication is a few lines.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from carbon_intensity_exporter.model import EmissionsData
from carbon_intensity_exporter.windows import best_windows, window_average

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)


def _brute_force_average(
    records: list[EmissionsData], start: datetime, duration: timedelta
) -> Fraction | None:
    """Exact overlap-weighted average, or None when the slots do not cover every instant of the window."""
    stop = start + duration
    covered = 0
    weighted = Fraction(0)
    for record in records:
        low, high = max(record.timestamp, start), min(record.end, stop)
        if high > low:
            overlap = (high - low) // MICROSECOND
            covered += overlap
            weighted += Fraction(record.value) * overlap
    total = duration // MICROSECOND
    return weighted / total if covered == total else None


def _brute_force_best_windows(
    records: list[EmissionsData], duration: timedelta, start: datetime | None, end: datetime | None
) -> list[tuple[datetime, Fraction]]:
    """The specification, spelled out: candidates are ``start`` and every later slot start."""
    if not records:
        return []
    first = start if start is not None else records[0].timestamp
    candidates = sorted({first} | {record.timestamp for record in records if record.timestamp > first})
    windows: list[tuple[datetime, Fraction]] = []
    for candidate in candidates:
        if end is not None and candidate + duration > end:
            continue
        average = _brute_force_average(records, candidate, duration)
        if average is not None:
            windows.append((candidate, average))
    if not windows:
        return []
    lowest = min(average for _, average in windows)
    return [(when, average) for when, average in windows if average - lowest <= lowest * Fraction(1, 10**9)]


def _make_records(spec: list[tuple[int, int, float]], offset_seconds: int = 0) -> list[EmissionsData]:
    """(gap minutes before the slot, slot minutes, value) -> contiguous-or-gapped sorted records."""
    records: list[EmissionsData] = []
    when = T0 + timedelta(seconds=offset_seconds)
    for gap, minutes, value in spec:
        when += timedelta(minutes=gap)
        records.append(EmissionsData("IE", when, minutes, value))
        when += timedelta(minutes=minutes)
    return records


values = st.one_of(
    st.sampled_from([0.0, 10.0, 10.0, 123.25, 500.0]),  # repeats make ties likely
    st.floats(min_value=0, max_value=2000, allow_nan=False, allow_infinity=False),
    st.integers(min_value=0, max_value=1000).map(float),
)
slots = st.tuples(
    st.sampled_from([0] * 12 + [1, 7, 30]),  # mostly contiguous, sometimes a gap
    st.sampled_from([1, 5, 5, 5, 15, 30, 60, 7, 13]),  # uneven slot lengths
    values,
)


@st.composite
def scenarios(
    draw: st.DrawFn,
) -> tuple[list[EmissionsData], timedelta, datetime | None, datetime | None]:
    records = _make_records(
        draw(st.lists(slots, min_size=0, max_size=25)), offset_seconds=draw(st.sampled_from([0, 0, 17]))
    )
    span = int((records[-1].end - T0).total_seconds()) if records else 60
    minutes = draw(
        st.one_of(  # mostly windows that fit, sometimes longer than the data
            st.integers(min_value=1, max_value=max(1, span // 180)),
            st.integers(min_value=1, max_value=span // 60 + 10),
        )
    )
    start = draw(st.one_of(st.none(), st.integers(min_value=-600, max_value=span)))
    end = draw(st.one_of(st.none(), st.integers(min_value=0, max_value=span + 600)))
    return (
        records,
        timedelta(minutes=minutes),
        None if start is None else T0 + timedelta(seconds=start),
        None if end is None else T0 + timedelta(seconds=end),
    )


@settings(max_examples=400, deadline=None)
@given(scenarios())
def test_matches_brute_force(
    scenario: tuple[list[EmissionsData], timedelta, datetime | None, datetime | None],
) -> None:
    records, duration, start, end = scenario
    expected = _brute_force_best_windows(records, duration, start, end)
    got = best_windows(records, duration, start, end)
    assert [window.timestamp for window in got] == [when for when, _ in expected]
    for window, (_, exact) in zip(got, expected, strict=True):
        assert math.isclose(window.value, float(exact), rel_tol=1e-9, abs_tol=0.0)
        assert window.duration == duration // timedelta(minutes=1)
        assert window.location == "IE"
        # The same window through window_average gives the identical float (both are exact).
        assert window_average(records, window.timestamp, duration) == window.value


@settings(max_examples=300, deadline=None)
@given(scenarios(), st.integers(min_value=-600, max_value=20_000))
def test_window_average_matches_brute_force(
    scenario: tuple[list[EmissionsData], timedelta, datetime | None, datetime | None], seconds: int
) -> None:
    records, duration, _, _ = scenario
    start = T0 + timedelta(seconds=seconds)
    exact = _brute_force_average(records, start, duration)
    got = window_average(records, start, duration)
    if exact is None:
        assert got is None
    else:
        assert got is not None
        assert math.isclose(got, float(exact), rel_tol=1e-9, abs_tol=0.0)


def test_three_slots_known_answer() -> None:
    records = _make_records([(0, 60, 30.0), (0, 60, 100.0), (0, 60, 50.0)])
    assert best_windows(records, timedelta(hours=2)) == [EmissionsData("IE", T0, 120, 65.0)]
    # The SDK's own worked example: 01:30-03:30 over (30, 100, 50) hourly is 30/4 + 100/2 + 50/4 = 70.
    assert window_average(records, T0 + timedelta(minutes=30), timedelta(hours=2)) == 70.0


def test_duration_longer_than_data_gives_nothing() -> None:
    records = _make_records([(0, 60, 30.0), (0, 60, 100.0)])
    assert best_windows(records, timedelta(hours=3)) == []
    assert window_average(records, T0, timedelta(hours=3)) is None


def test_empty_records() -> None:
    assert best_windows([], timedelta(hours=1)) == []
    assert window_average([], T0, timedelta(hours=1)) is None


def test_every_tied_window_is_returned_in_time_order() -> None:
    records = _make_records([(0, 30, 200.0), (0, 30, 10.0), (0, 30, 200.0), (0, 30, 10.0)])
    got = best_windows(records, timedelta(minutes=30))
    assert [window.timestamp for window in got] == [T0 + timedelta(minutes=30), T0 + timedelta(minutes=90)]
    flat = _make_records([(0, 5, 42.0)] * 6)
    assert len(best_windows(flat, timedelta(minutes=10))) == 5


def test_near_ties_within_relative_tolerance() -> None:
    records = _make_records([(0, 60, 100.0), (0, 60, 100.0 * (1 + 1e-10)), (0, 60, 100.0 * (1 + 1e-8))])
    got = best_windows(records, timedelta(hours=1))
    assert [window.timestamp for window in got] == [T0, T0 + timedelta(hours=1)]


def test_a_gap_rules_out_windows_across_it() -> None:
    # 0-60 at 10, gap 60-90, 90-150 at 50: a 90-minute window never fits, a 60-minute one fits twice.
    records = _make_records([(0, 60, 10.0), (30, 60, 50.0)])
    assert best_windows(records, timedelta(minutes=90)) == []
    assert best_windows(records, timedelta(minutes=60)) == [EmissionsData("IE", T0, 60, 10.0)]
    assert window_average(records, T0 + timedelta(minutes=30), timedelta(minutes=60)) is None


def test_uneven_slots_weight_by_overlap() -> None:
    # 0-10 at 100, 10-40 at 10, 40-45 at 0: the 30-minute window at 10 averages 10, at 0 it is 40.
    records = _make_records([(0, 10, 100.0), (0, 30, 10.0), (0, 5, 0.0)])
    got = best_windows(records, timedelta(minutes=30))
    assert got == [EmissionsData("IE", T0 + timedelta(minutes=10), 30, 10.0)]
    assert window_average(records, T0, timedelta(minutes=30)) == pytest.approx(40.0)


def test_mid_slot_start_is_a_candidate_then_slot_starts() -> None:
    records = _make_records([(0, 60, 10.0), (0, 60, 100.0), (0, 60, 100.0)])
    start = T0 + timedelta(minutes=20)
    got = best_windows(records, timedelta(minutes=60), start=start)
    # From 00:20: 40 min at 10 + 20 min at 100 = 40; the later slot-start windows average 100.
    assert got == [EmissionsData("IE", start, 60, 40.0)]


def test_end_bound_window_must_finish_by_end() -> None:
    records = _make_records([(0, 60, 100.0), (0, 60, 50.0), (0, 60, 10.0)])
    assert best_windows(records, timedelta(hours=1), end=T0 + timedelta(minutes=179))[0].value == 50.0
    assert best_windows(records, timedelta(hours=1), end=T0 + timedelta(minutes=180))[0].value == 10.0
    assert best_windows(records, timedelta(hours=1), end=T0 + timedelta(minutes=59)) == []


def test_start_in_a_gap_or_before_data() -> None:
    records = _make_records([(0, 60, 10.0), (30, 60, 50.0)])
    assert best_windows(records, timedelta(hours=1), start=T0 + timedelta(minutes=70)) == [
        EmissionsData("IE", T0 + timedelta(minutes=90), 60, 50.0)
    ]
    assert best_windows(records, timedelta(hours=1), start=T0 - timedelta(hours=5))[0].timestamp == T0


@pytest.mark.parametrize("duration", [timedelta(0), timedelta(minutes=-5), timedelta(seconds=90)])
def test_rejects_durations_that_are_not_whole_positive_minutes(duration: timedelta) -> None:
    records = _make_records([(0, 60, 10.0)])
    with pytest.raises(ValueError, match="whole number of minutes"):
        best_windows(records, duration)


def test_rejects_naive_bounds() -> None:
    records = _make_records([(0, 60, 10.0)])
    with pytest.raises(ValueError, match="no time zone"):
        best_windows(records, timedelta(minutes=30), start=datetime(2024, 5, 1, 12, 0))
    with pytest.raises(ValueError, match="no time zone"):
        window_average(records, datetime(2024, 5, 1, 12, 0), timedelta(minutes=30))


def test_unsorted_records_are_refused() -> None:
    records = _make_records([(0, 60, 10.0), (0, 60, 20.0)])
    with pytest.raises(ValueError):
        best_windows(list(reversed(records)), timedelta(minutes=30))
