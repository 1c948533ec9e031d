"""/metrics of a running exporter, scraped over HTTP and checked against the ConfigMap it published."""

from __future__ import annotations

import base64
import json
import platform
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from carbon_intensity_exporter import __version__, configmap
from carbon_intensity_exporter.exporter import Exporter, Observer, Target
from carbon_intensity_exporter.http import Server, start_http_server
from carbon_intensity_exporter.metrics import (
    HORIZONS,
    CompositeObserver,
    MetricsObserver,
    build_registry,
    metric_names,
)
from carbon_intensity_exporter.model import EmissionsData, parse_time, records_to_json
from carbon_intensity_exporter.providers.base import FAILURE_REASONS, FetchError
from carbon_intensity_exporter.providers.file import FileProvider
from carbon_intensity_exporter.providers.sample import SampleProvider
from carbon_intensity_exporter.settings import Settings, load_settings
from tests.consumer import current_record
from tests.fakes.kubeapi import FakeKubeAPI

NOW = datetime(2026, 6, 1, 12, 30, tzinfo=UTC)
NAMESPACE = "kube-system"
VALUES = [float(100 + (i * 37) % 250) for i in range(30)]


class Clock:
    """A settable clock shared by the exporter and the collector."""

    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def write_forecast(path: Path, values: list[float], start: datetime = NOW - timedelta(minutes=30)) -> None:
    records = [EmissionsData("TEST-LOC", start + timedelta(hours=i), 60, v) for i, v in enumerate(values)]
    path.write_bytes(records_to_json(records))


def file_settings(path: Path, **overrides: Any) -> Settings:
    return load_settings(provider="File", forecast_file=str(path), region="westus", metrics_port=0, **overrides)


@dataclass
class Rig:
    """An exporter publishing to the fake API server, with its metrics served on an ephemeral port."""

    api: FakeKubeAPI
    exporter: Exporter
    observer: MetricsObserver
    publisher: configmap.ConfigMapPublisher
    server: Server
    clock: Clock
    path: Path

    @property
    def target(self) -> Target:
        return self.exporter.targets[0]

    def configmap(self, name: str = "carbon-intensity") -> dict[str, Any]:
        stored = self.api.get_object("configmaps", NAMESPACE, name)
        assert stored is not None, f"ConfigMap {name} is not published"
        return stored


def make_rig(
    api: FakeKubeAPI, path: Path, *, leading: bool = True, extra: Observer | None = None, **settings: Any
) -> Rig:
    clock = Clock()
    provider = FileProvider(path)
    observer = MetricsObserver(provider.name)
    composite = CompositeObserver(observer, *([extra] if extra is not None else []))
    publisher = configmap.ConfigMapPublisher(
        api.client(), NAMESPACE, create_attempts=1, retry_delay=0.01, on_recreated=composite.recreated
    )
    exporter = Exporter(file_settings(path, **settings), provider, publisher, observer=composite, clock=clock)
    registry = build_registry(exporter, observer, leading=lambda: leading)
    server = start_http_server(0, exporter, registry, leading=lambda: leading, host="127.0.0.1")
    return Rig(api, exporter, observer, publisher, server, clock, path)


@pytest.fixture
def rig(kubeapi: FakeKubeAPI, tmp_path: Path) -> Iterator[Rig]:
    rig = make_rig(kubeapi, tmp_path / "forecast.json")
    yield rig
    rig.server.stop()


def scrape(server: Server) -> tuple[str, list[Sample]]:
    response = httpx.get(f"{server.url}/metrics", timeout=5)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = [sample for family in text_string_to_metric_families(response.text) for sample in family.samples]
    return response.text, samples


def find(samples: list[Sample], name: str, **labels: str) -> list[Sample]:
    return [s for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]


def value(samples: list[Sample], name: str, **labels: str) -> float | None:
    """The one sample matching, or None when absent (more than one is a bug in the exporter)."""
    found = find(samples, name, **labels)
    assert len(found) <= 1, f"{name}{labels} matches {len(found)} samples"
    return found[0].value if found else None


def published_records(cm: dict[str, Any]) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = json.loads(base64.b64decode(cm["binaryData"]["data"]))
    return records


def promtool_check(text: str) -> subprocess.CompletedProcess[str]:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian package 'prometheus'; .ci/run installs it)")
    return subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30, check=False
    )


# -- values against the published ConfigMap ----------------------------------------------------------


def test_every_metric_matches_the_published_configmap(rig: Rig) -> None:
    write_forecast(rig.path, VALUES)
    assert rig.exporter.cycle(rig.target).fresh

    _, samples = scrape(rig.server)
    cm = rig.configmap()
    data = cm["data"]
    records = published_records(cm)
    labels = {"region": "westus", "location": "TEST-LOC", "provider": "File", "signal_type": ""}

    # The slot a consumer would pick now is the one the exporter reports.
    consumer = current_record(cm, rig.clock.now)
    assert consumer is not None
    assert value(samples, "carbon_intensity_grams_per_kwh", **labels) == consumer["value"] == VALUES[0]
    for horizon, offset in HORIZONS.items():
        expected = current_record(cm, rig.clock.now + offset)
        assert expected is not None
        assert value(samples, "carbon_intensity_forecast_grams_per_kwh", horizon=horizon, **labels) == expected["value"]
    assert value(samples, "carbon_intensity_forecast_min_grams_per_kwh", **labels) == float(data["minForecast"])
    assert value(samples, "carbon_intensity_forecast_max_grams_per_kwh", **labels) == float(data["maxForecast"])
    assert value(samples, "carbon_intensity_forecast_records", **labels) == int(data["numOfRecords"]) == len(records)
    last = records[-1]
    end = parse_time(last["timestamp"]) + timedelta(minutes=last["duration"])
    assert value(samples, "carbon_intensity_forecast_end_timestamp_seconds", **labels) == end.timestamp()
    assert (
        value(samples, "carbon_intensity_forecast_generated_timestamp_seconds", **labels)
        == parse_time(data["forecastDateTime"]).timestamp()
    )
    assert (
        value(samples, "carbon_intensity_last_success_timestamp_seconds", **labels)
        == parse_time(data["lastHeartbeatTime"]).timestamp()
        == NOW.timestamp()
    )

    counter = {"region": "westus", "provider": "File"}
    assert value(samples, "carbon_intensity_fetch_attempts_total", **counter) == 1
    for reason in FAILURE_REASONS:
        assert value(samples, "carbon_intensity_fetch_errors_total", reason=reason, **counter) == 0
    assert value(samples, "carbon_intensity_configmap_writes_total", result="success", **counter) == 1
    assert value(samples, "carbon_intensity_configmap_writes_total", result="error", **counter) == 0
    assert value(samples, "carbon_intensity_configmap_recreations_total", **counter) == 0
    assert value(samples, "carbon_intensity_fetch_duration_seconds_count", provider="File") == 1
    assert value(samples, "carbon_intensity_fetch_duration_seconds_bucket", provider="File", le="+Inf") == 1
    assert value(samples, "carbon_intensity_exporter_leader") == 1
    assert (
        value(
            samples,
            "carbon_intensity_exporter_build_info",
            version=__version__,
            python_version=platform.python_version(),
        )
        == 1
    )


def test_every_documented_metric_is_exposed(rig: Rig) -> None:
    write_forecast(rig.path, VALUES)
    rig.exporter.cycle(rig.target)
    text, _ = scrape(rig.server)
    families = {family.name for family in text_string_to_metric_families(text)}
    assert families == {name.removesuffix("_total") for name in metric_names()}
    assert len(families) == 15


def test_current_intensity_absent_not_zero_when_no_slot_covers_now(rig: Rig) -> None:
    write_forecast(rig.path, [120.0, 140.0, 160.0])  # covers NOW-30min .. NOW+2h30
    rig.exporter.cycle(rig.target)

    rig.clock.now = NOW + timedelta(hours=2)  # last slot: +1h and later are beyond the data
    _, samples = scrape(rig.server)
    assert value(samples, "carbon_intensity_grams_per_kwh") == 160.0
    assert value(samples, "carbon_intensity_forecast_grams_per_kwh", horizon="1h") is None

    rig.clock.now = NOW + timedelta(hours=3)  # the forecast has ended: nothing covers now
    assert current_record(rig.configmap(), rig.clock.now) is None
    _, samples = scrape(rig.server)
    assert find(samples, "carbon_intensity_grams_per_kwh") == []
    assert find(samples, "carbon_intensity_forecast_grams_per_kwh") == []
    # What is held is still described: the data is old, not gone.
    assert value(samples, "carbon_intensity_forecast_records") == 3
    assert value(samples, "carbon_intensity_forecast_min_grams_per_kwh") == 120.0


def test_forecast_starting_later_has_horizons_but_no_current_value(rig: Rig) -> None:
    write_forecast(rig.path, [300.0, 310.0, 320.0], start=NOW + timedelta(minutes=30))
    rig.exporter.cycle(rig.target)
    _, samples = scrape(rig.server)
    assert find(samples, "carbon_intensity_grams_per_kwh") == []
    assert value(samples, "carbon_intensity_forecast_grams_per_kwh", horizon="1h") == 300.0
    assert value(samples, "carbon_intensity_forecast_grams_per_kwh", horizon="2h") == 310.0
    assert value(samples, "carbon_intensity_forecast_grams_per_kwh", horizon="6h") is None


def test_no_data_gauges_before_any_data(rig: Rig) -> None:
    _, samples = scrape(rig.server)
    assert [s for s in samples if s.labels.get("location") is not None] == []
    assert value(samples, "carbon_intensity_fetch_attempts_total", region="westus", provider="File") == 0


# -- failures ----------------------------------------------------------------------------------------


def test_fetch_errors_counted_by_reason(rig: Rig) -> None:
    # No file yet: the File provider fails with reason "file", and the fallback (empty) is still published.
    assert not rig.exporter.cycle(rig.target).fresh
    assert not rig.exporter.cycle(rig.target).fresh
    rig.path.write_text("[]")  # valid, but empty: reason "no_data"
    assert not rig.exporter.cycle(rig.target).fresh

    _, samples = scrape(rig.server)
    counter = {"region": "westus", "provider": "File"}
    assert value(samples, "carbon_intensity_fetch_errors_total", reason="file", **counter) == 2
    assert value(samples, "carbon_intensity_fetch_errors_total", reason="no_data", **counter) == 1
    assert value(samples, "carbon_intensity_fetch_errors_total", reason="timeout", **counter) == 0
    assert value(samples, "carbon_intensity_fetch_attempts_total", **counter) == 3
    assert value(samples, "carbon_intensity_fetch_duration_seconds_count", provider="File") == 3
    assert value(samples, "carbon_intensity_configmap_writes_total", result="success", **counter) == 3
    assert find(samples, "carbon_intensity_last_success_timestamp_seconds") == []
    assert find(samples, "carbon_intensity_grams_per_kwh") == []
    assert rig.configmap()["data"]["numOfRecords"] == "0"

    write_forecast(rig.path, VALUES)
    assert rig.exporter.cycle(rig.target).fresh
    _, samples = scrape(rig.server)
    assert value(samples, "carbon_intensity_fetch_attempts_total", **counter) == 4
    assert value(samples, "carbon_intensity_fetch_errors_total", reason="file", **counter) == 2
    assert value(samples, "carbon_intensity_grams_per_kwh") == VALUES[0]


def test_failed_fetch_keeps_reporting_the_held_data(rig: Rig) -> None:
    write_forecast(rig.path, VALUES)
    rig.exporter.cycle(rig.target)
    rig.path.unlink()
    rig.clock.now = NOW + timedelta(hours=1)
    rig.exporter.cycle(rig.target)

    _, samples = scrape(rig.server)
    cm = rig.configmap()
    assert "fetch failed (file)" in cm["data"]["message"]
    assert value(samples, "carbon_intensity_grams_per_kwh") == VALUES[1]
    assert value(samples, "carbon_intensity_forecast_records") == int(cm["data"]["numOfRecords"])
    assert value(samples, "carbon_intensity_last_success_timestamp_seconds") == NOW.timestamp()


def test_configmap_writes_by_result(rig: Rig) -> None:
    write_forecast(rig.path, VALUES)
    rule = rig.api.deny(verb="create", resource="configmaps")
    assert not rig.exporter.cycle(rig.target).published
    rig.api.allow(rule)
    assert rig.exporter.retry_publish(rig.target)

    _, samples = scrape(rig.server)
    counter = {"region": "westus", "provider": "File"}
    assert value(samples, "carbon_intensity_configmap_writes_total", result="error", **counter) == 1
    assert value(samples, "carbon_intensity_configmap_writes_total", result="success", **counter) == 1


def test_recreations_counted_per_region(kubeapi: FakeKubeAPI, tmp_path: Path) -> None:
    path = tmp_path / "forecast.json"
    write_forecast(path, VALUES)
    rig = make_rig(kubeapi, path, additional_regions="eastus")
    try:
        for target in rig.exporter.targets:
            rig.exporter.cycle(target)
        assert kubeapi.delete_object("configmaps", NAMESPACE, "carbon-intensity-eastus")
        assert rig.publisher.ensure_present() == ["carbon-intensity-eastus"]

        _, samples = scrape(rig.server)
        east = {"region": "eastus", "provider": "File"}
        west = {"region": "westus", "provider": "File"}
        assert value(samples, "carbon_intensity_configmap_recreations_total", **east) == 1
        assert value(samples, "carbon_intensity_configmap_recreations_total", **west) == 0
        assert value(samples, "carbon_intensity_grams_per_kwh", region="eastus") == VALUES[0]
        assert value(samples, "carbon_intensity_grams_per_kwh", region="westus") == VALUES[0]
    finally:
        rig.server.stop()


def test_standby_reports_leader_zero_and_no_data(kubeapi: FakeKubeAPI, tmp_path: Path) -> None:
    rig = make_rig(kubeapi, tmp_path / "forecast.json", leading=False)
    try:
        write_forecast(rig.path, VALUES)
        rig.exporter.cycle(rig.target)  # holds data, as a standby holds what it read at start
        assert rig.target.forecast is not None
        _, samples = scrape(rig.server)
        assert value(samples, "carbon_intensity_exporter_leader") == 0
        assert find(samples, "carbon_intensity_grams_per_kwh") == []  # only the leader speaks for the data
        assert find(samples, "carbon_intensity_forecast_records") == []
    finally:
        rig.server.stop()


# -- format ------------------------------------------------------------------------------------------


def test_promtool_check_metrics_is_clean(rig: Rig) -> None:
    rig.exporter.cycle(rig.target)  # a failure first, so error series carry non-zero values
    write_forecast(rig.path, VALUES)
    rig.exporter.cycle(rig.target)
    text, _ = scrape(rig.server)
    result = promtool_check(text)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "" and result.stderr.strip() == "", result.stdout + result.stderr


def test_sample_provider_metrics_are_promtool_clean(kubeapi: FakeKubeAPI) -> None:
    clock = Clock()
    settings = load_settings(provider="Sample", region="westus", metrics_port=0)
    provider = SampleProvider(24, clock=clock)
    observer = MetricsObserver(provider.name)
    exporter = Exporter(
        settings, provider, configmap.ConfigMapPublisher(kubeapi.client(), NAMESPACE), observer=observer, clock=clock
    )
    exporter.cycle(exporter.targets[0])
    server = start_http_server(0, exporter, build_registry(exporter, observer), host="127.0.0.1")
    try:
        text, samples = scrape(server)
    finally:
        server.stop()
    labels = {"region": "westus", "provider": "Sample", "signal_type": "sample"}
    cm = kubeapi.get_object("configmaps", NAMESPACE, "carbon-intensity")
    assert cm is not None
    record = current_record(cm, NOW)
    assert record is not None
    assert value(samples, "carbon_intensity_grams_per_kwh", **labels) == record["value"]
    result = promtool_check(text)
    assert result.returncode == 0, result.stdout + result.stderr


# -- observers ---------------------------------------------------------------------------------------


def test_a_failing_observer_never_breaks_the_cycle(kubeapi: FakeKubeAPI, tmp_path: Path) -> None:
    class Broken(Observer):
        def fetched(self, target: Target, seconds: float, error: FetchError | None) -> None:
            raise RuntimeError("observer bug")

        def published(self, target: Target, error: configmap.PublishError | None) -> None:
            raise RuntimeError("observer bug")

        def recreated(self, name: str) -> None:
            raise RuntimeError("observer bug")

    path = tmp_path / "forecast.json"
    write_forecast(path, VALUES)
    rig = make_rig(kubeapi, path, extra=Broken())
    try:
        assert rig.exporter.cycle(rig.target).published
        kubeapi.delete_object("configmaps", NAMESPACE, "carbon-intensity")
        assert rig.publisher.ensure_present() == ["carbon-intensity"]
        _, samples = scrape(rig.server)
        assert value(samples, "carbon_intensity_configmap_writes_total", result="success") == 1
        assert value(samples, "carbon_intensity_configmap_recreations_total") == 1
    finally:
        rig.server.stop()
