"""The ConfigMap contract (DESIGN.md §2) and the publisher against a fake API server with real semantics."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml

from carbon_intensity_exporter import configmap
from carbon_intensity_exporter.model import EmissionsData, Forecast
from tests.consumer import GoDecodeError, current_record, go_decode
from tests.fakes.kubeapi import FakeKubeAPI
from tests.polling import stored, wait_for

T0 = datetime(2026, 12, 4, 13, 0, tzinfo=UTC)


def forecast(*values: float, start: datetime = T0, sample: bool = False) -> Forecast:
    records = tuple(
        EmissionsData("CAISO_NORTH", start + timedelta(minutes=5 * i), 5, v) for i, v in enumerate(values)
    )
    return Forecast(
        records=records,
        provider="WattTime",
        region="westus",
        location="CAISO_NORTH",
        signal_type="co2_moer",
        generated_at=start - timedelta(minutes=5),
        sample=sample,
    )


def rendered(data: Forecast | None = None, message: str = "") -> dict[str, Any]:
    return configmap.render(
        name="carbon-intensity",
        namespace="kube-system",
        region="westus",
        forecast=data,
        heartbeat=T0 + timedelta(seconds=7, microseconds=123),
        message=message,
        provider="WattTime",
    )


def test_render_is_exactly_the_contract() -> None:
    manifest = rendered(forecast(212.3456784, 305.9876541, 250))
    assert manifest["immutable"] is True
    assert manifest["metadata"]["name"] == "carbon-intensity"
    assert manifest["metadata"]["namespace"] == "kube-system"
    assert manifest["metadata"]["labels"]["app.kubernetes.io/name"] == "carbon-intensity-exporter"
    assert manifest["data"] == {
        "lastHeartbeatTime": "2026-12-04T13:00:07Z",
        "message": "",
        "numOfRecords": "3",
        "forecastDateTime": "2026-12-04T12:55:00Z",
        "minForecast": "212.345678",
        "maxForecast": "305.987654",
    }
    assert list(manifest["data"]) == list(configmap.DATA_KEYS)
    assert list(manifest["binaryData"]) == ["data"]  # 6 + 1 = the 7 keys kubectl shows
    annotations = manifest["metadata"]["annotations"]
    assert annotations["carbon-intensity-exporter.io/provider"] == "WattTime"
    assert annotations["carbon-intensity-exporter.io/location"] == "CAISO_NORTH"
    assert annotations["carbon-intensity-exporter.io/units"] == "gCO2eq/kWh"
    assert annotations["carbon-intensity-exporter.io/signal-type"] == "co2_moer"
    assert "carbon-intensity-exporter.io/sample" not in annotations
    assert all(isinstance(value, str) for value in manifest["data"].values())


def test_no_data_ever_is_an_empty_array_with_a_reason() -> None:
    manifest = rendered(None, message="fetch failed (auth): WattTime: login refused")
    assert manifest["data"]["numOfRecords"] == "0"
    assert manifest["data"]["minForecast"] == manifest["data"]["maxForecast"] == ""
    assert manifest["data"]["forecastDateTime"] == ""
    assert base64.b64decode(manifest["binaryData"]["data"]) == b"[]"
    assert "login refused" in manifest["data"]["message"]


def test_sample_data_is_labelled() -> None:
    annotations = rendered(forecast(1, sample=True))["metadata"]["annotations"]
    assert annotations["carbon-intensity-exporter.io/sample"] == "true"


def test_the_consumer_finds_the_current_record() -> None:
    manifest = rendered(forecast(300, 200, 250))
    record = current_record(manifest, T0 + timedelta(minutes=7))
    assert record is not None
    assert record["value"] == 200.0
    assert record["duration"] == 5
    assert current_record(manifest, T0 + timedelta(minutes=15)) is None


def test_the_go_decoder_is_strict_where_go_is() -> None:
    with pytest.raises(GoDecodeError):
        go_decode(b'[{"location":"X","timestamp":"2026-12-04T13:00:00Z","duration":5.0,"value":1}]')
    with pytest.raises(GoDecodeError):
        go_decode(b'[{"location":"X","timestamp":"2026-12-04T13:00:00Z","duration":5,"value":"1"}]')


def test_read_inverts_render() -> None:
    original = forecast(300, 200, 250, sample=True)
    published = configmap.read(rendered(original, "m"))
    assert published.forecast == original
    assert published.message == "m"
    assert published.heartbeat == T0 + timedelta(seconds=7)


def test_read_accepts_the_go_exporters_configmap() -> None:
    """The Go exporter wrote no annotations: a restart after migrating must still keep its records."""
    payload = json.dumps(
        [{"location": "westus", "timestamp": "2026-12-04T13:00:00+00:00", "duration": 5, "value": 123.4}]
    ).encode()
    old = {
        "metadata": {"name": "carbon-intensity"},
        "data": {"lastHeartbeatTime": "2026-12-04T13:00:00Z", "forecastDateTime": "2026-12-04T12:00:00Z"},
        "binaryData": {"data": base64.b64encode(payload).decode()},
    }
    published = configmap.read(old, region="westus")
    assert published.forecast is not None
    assert published.forecast.records[0].value == 123.4
    assert published.forecast.location == "westus"


def test_dry_run_prints_yaml_that_reads_back() -> None:
    import io

    out = io.StringIO()
    configmap.DryRunSink(out).publish(rendered(forecast(1, 2)))
    document = yaml.safe_load(out.getvalue())
    assert document == rendered(forecast(1, 2))


# -- the publisher, over real HTTP ------------------------------------------------------------------------


@pytest.fixture
def publisher(kubeapi: FakeKubeAPI) -> Iterator[configmap.ConfigMapPublisher]:
    from lightkube import Client

    client = Client(config=kubeapi.client_config(), field_manager="test")
    pub = configmap.ConfigMapPublisher(client, "kube-system", retry_delay=0.01)
    yield pub
    pub.close()




def test_publish_creates_then_replaces(kubeapi: FakeKubeAPI, publisher: configmap.ConfigMapPublisher) -> None:
    publisher.publish(rendered(forecast(1, 2)))
    first = stored(kubeapi)
    assert first is not None
    assert first["data"]["numOfRecords"] == "2"
    publisher.publish(rendered(forecast(3, 4, 5)))
    second = stored(kubeapi)
    assert second is not None
    assert second["data"]["numOfRecords"] == "3"
    assert second["immutable"] is True
    assert second["metadata"]["uid"] != first["metadata"]["uid"]  # replaced, not updated
    assert publisher.writes == {"success": 2, "error": 0}


def test_a_failed_create_is_retried(kubeapi: FakeKubeAPI, publisher: configmap.ConfigMapPublisher) -> None:
    publisher.publish(rendered(forecast(1)))
    kubeapi.fail_next(2, status=500, verb="create", resource="configmaps")
    publisher.publish(rendered(forecast(7, 8)))
    after = stored(kubeapi)
    assert after is not None
    assert after["data"]["numOfRecords"] == "2"


def test_a_create_that_keeps_failing_raises_and_keeps_nothing_half_done(
    kubeapi: FakeKubeAPI, publisher: configmap.ConfigMapPublisher
) -> None:
    kubeapi.fail_next(100, status=500, verb="create", resource="configmaps")
    with pytest.raises(configmap.PublishError, match="500"):
        publisher.publish(rendered(forecast(1)))
    assert publisher.writes["error"] == 1


def test_forbidden_is_explained(kubeapi: FakeKubeAPI, publisher: configmap.ConfigMapPublisher) -> None:
    kubeapi.deny(verb="create", resource="configmaps")
    with pytest.raises(configmap.PublishError, match=r"403.*Role"):
        publisher.publish(rendered(forecast(1)))


def test_load_reads_the_existing_configmap(kubeapi: FakeKubeAPI, publisher: configmap.ConfigMapPublisher) -> None:
    assert publisher.load("carbon-intensity", "westus") is None
    original = forecast(5, 6)
    publisher.publish(rendered(original, "old message"))
    published = publisher.load("carbon-intensity", "westus")
    assert published is not None
    assert published.forecast == original


def test_load_ignores_a_corrupt_configmap(kubeapi: FakeKubeAPI, publisher: configmap.ConfigMapPublisher) -> None:
    corrupt = rendered(forecast(1))
    corrupt["binaryData"]["data"] = base64.b64encode(b"not json").decode()
    kubeapi.put_object(corrupt)
    assert publisher.load("carbon-intensity", "westus") is None


def test_replacement_gap_is_small(kubeapi: FakeKubeAPI, publisher: configmap.ConfigMapPublisher) -> None:
    for value in range(10):
        publisher.publish(rendered(forecast(value)))
    gaps = kubeapi.absence_windows("configmaps", "kube-system", "carbon-intensity")
    assert len(gaps) == 9
    assert all(gap < 1.0 for gap in gaps)  # generous: the measured figure is in bench/, not here




def test_a_deleted_configmap_is_recreated_from_memory(
    kubeapi: FakeKubeAPI, publisher: configmap.ConfigMapPublisher
) -> None:
    recreated: list[str] = []
    publisher._on_recreated = recreated.append
    publisher.publish(rendered(forecast(9, 8, 7)))
    stop = threading.Event()
    watcher = threading.Thread(target=publisher.watch, args=(stop,), daemon=True)
    watcher.start()
    try:
        time.sleep(0.3)
        kubeapi.delete_object("configmaps", "kube-system", "carbon-intensity")
        assert wait_for(lambda: stored(kubeapi) is not None)
        after = stored(kubeapi)
        assert after is not None
        assert after["data"]["numOfRecords"] == "3"
        assert recreated == ["carbon-intensity"]
        # and again after the watch stream is dropped
        kubeapi.drop_watches()
        time.sleep(0.3)
        kubeapi.delete_object("configmaps", "kube-system", "carbon-intensity")
        assert wait_for(lambda: stored(kubeapi) is not None)
    finally:
        stop.set()


def test_a_deletion_during_an_outage_is_repaired_when_the_api_server_returns(
    kubeapi: FakeKubeAPI, publisher: configmap.ConfigMapPublisher
) -> None:
    publisher.publish(rendered(forecast(1, 2)))
    stop = threading.Event()
    threading.Thread(target=publisher.watch, args=(stop,), daemon=True).start()
    try:
        time.sleep(0.3)
        kubeapi.set_down(True)
        kubeapi.delete_object("configmaps", "kube-system", "carbon-intensity")
        time.sleep(0.5)
        kubeapi.set_down(False)
        assert wait_for(lambda: stored(kubeapi) is not None, timeout=10)
    finally:
        stop.set()


def test_a_standby_does_not_recreate(kubeapi: FakeKubeAPI, publisher: configmap.ConfigMapPublisher) -> None:
    publisher.publish(rendered(forecast(1)))
    publisher.active = lambda: False
    assert publisher.ensure_present() == []
