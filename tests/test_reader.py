"""read_forecast: from a cluster, a file, or the data bytes; and the README's job-gate example."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from carbon_intensity_exporter import ForecastUnavailableError, InvalidForecastError, read_forecast
from carbon_intensity_exporter.configmap import render
from carbon_intensity_exporter.model import EmissionsData, Forecast
from tests.fakes.kubeapi import FakeKubeAPI


def published(start: datetime) -> Forecast:
    records = tuple(EmissionsData("CAISO_NORTH", start + timedelta(minutes=30 * i), 30, v)
                    for i, v in enumerate([300, 200, 100, 250]))
    return Forecast(records=records, provider="WattTime", region="westus", location="CAISO_NORTH", generated_at=start)


def manifest(forecast: Forecast) -> dict[str, object]:
    return render(name="carbon-intensity", namespace="kube-system", region="westus", forecast=forecast,
                  heartbeat=datetime.now(UTC), message="", provider="WattTime")


def test_from_the_cluster(kubeapi: FakeKubeAPI) -> None:
    original = published(datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=1))
    kubeapi.put_object(manifest(original))
    forecast = read_forecast(client=kubeapi.client())
    assert forecast == original
    assert not forecast.is_stale(datetime.now(UTC))


def test_missing_configmap_is_unavailable(kubeapi: FakeKubeAPI) -> None:
    with pytest.raises(ForecastUnavailableError, match="404"):
        read_forecast("kube-system/nope", client=kubeapi.client())


def test_from_a_yaml_or_json_file_and_from_bytes(tmp_path: Path) -> None:
    original = published(datetime(2026, 12, 4, tzinfo=UTC))
    (tmp_path / "cm.yaml").write_text(yaml.safe_dump(manifest(original)))
    (tmp_path / "cm.json").write_text(json.dumps(manifest(original)))
    assert read_forecast(file=tmp_path / "cm.yaml") == original
    assert read_forecast(file=tmp_path / "cm.json") == original
    assert read_forecast(data=original.to_json()).records == original.records
    with pytest.raises(InvalidForecastError):
        read_forecast(data=b'{"not": "an array"}')


def test_best_window_and_staleness() -> None:
    start = datetime(2026, 12, 4, tzinfo=UTC)
    forecast = published(start)
    window = forecast.best_window(timedelta(hours=1))
    assert window is not None
    assert (window.timestamp, window.duration, window.value) == (start + timedelta(minutes=30), 60, 150.0)
    assert forecast.is_stale(start + timedelta(hours=3))


def test_the_readme_job_gate_example_runs(
    kubeapi: FakeKubeAPI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's example is code: run it against the fake cluster."""
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    match = re.search(r"<!-- example: job-gate -->\n```python\n(.*?)```", readme, re.S)
    assert match, "the README lost its job-gate example"
    kubeapi.put_object(manifest(published(datetime.now(UTC) - timedelta(minutes=1))))
    monkeypatch.setenv("KUBECONFIG", str(kubeapi.kubeconfig(tmp_path / "kubeconfig")))
    with pytest.raises(SystemExit) as exited:
        exec(compile(match.group(1), "README.md", "exec"), {"__name__": "__main__"})
    assert exited.value.code in (0, 75)
