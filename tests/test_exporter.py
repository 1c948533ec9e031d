"""The refresh loop against the fake API server: fetch first, fallback on failure, nothing lost."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from carbon_intensity_exporter import configmap
from carbon_intensity_exporter.app import run_exporter
from carbon_intensity_exporter.exporter import backoff_delay
from carbon_intensity_exporter.model import EmissionsData, records_to_json
from carbon_intensity_exporter.settings import Settings, load_settings
from tests.consumer import current_record
from tests.fakes.kubeapi import FakeKubeAPI
from tests.polling import stored, wait_for


def now() -> datetime:
    return datetime.now(UTC).replace(second=0, microsecond=0)


def write_forecast(path: Path, *values: float, start: datetime | None = None, minutes: int = 60) -> None:
    start = start or now() - timedelta(minutes=1)
    records = [EmissionsData("TEST", start + timedelta(minutes=minutes * i), minutes, v) for i, v in enumerate(values)]
    path.write_bytes(records_to_json(records))


def file_settings(path: Path, **overrides: Any) -> Settings:
    return load_settings(provider="File", forecast_file=str(path), region="westus", metrics_port=0, **overrides)


def once(api: FakeKubeAPI, settings: Settings) -> int:
    """One ``run --once`` cycle in-process against the fake API server; the exit code."""
    return run_exporter(settings, once=True, dry_run=False, client=client(api))


def client(api: FakeKubeAPI) -> Any:
    from lightkube import Client

    return Client(config=api.client_config(), field_manager="test")






def test_once_publishes_fresh_data(kubeapi: FakeKubeAPI, tmp_path: Path) -> None:
    path = tmp_path / "forecast.json"
    write_forecast(path, 100, 200, 300)
    assert once(kubeapi, file_settings(path)) == 0
    cm = stored(kubeapi)
    assert cm is not None
    assert cm["data"]["message"] == ""
    assert cm["data"]["numOfRecords"] == "3"
    record = current_record(cm, datetime.now(UTC))
    assert record is not None
    assert record["value"] == 100.0


def test_a_failed_fetch_publishes_the_fallback_with_the_last_data(kubeapi: FakeKubeAPI, tmp_path: Path) -> None:
    path = tmp_path / "forecast.json"
    write_forecast(path, 100, 200, 300)
    assert once(kubeapi, file_settings(path)) == 0
    before = stored(kubeapi)
    assert before is not None
    path.write_text("[{truncated")
    time.sleep(1.1)  # a heartbeat one second later
    assert once(kubeapi, file_settings(path)) == 1
    after = stored(kubeapi)
    assert after is not None
    assert after["binaryData"] == before["binaryData"]  # restart + failure: nothing lost
    for key in ("numOfRecords", "forecastDateTime", "minForecast", "maxForecast"):
        assert after["data"][key] == before["data"][key]
    assert after["data"]["lastHeartbeatTime"] > before["data"]["lastHeartbeatTime"]
    assert "fetch failed (file)" in after["data"]["message"]
    assert "serving the forecast of" in after["data"]["message"]


def test_empty_data_never_replaces_good_data(kubeapi: FakeKubeAPI, tmp_path: Path) -> None:
    path = tmp_path / "forecast.json"
    write_forecast(path, 100, 200)
    once(kubeapi, file_settings(path))
    path.write_text("[]")
    assert once(kubeapi, file_settings(path)) == 1
    cm = stored(kubeapi)
    assert cm is not None
    assert cm["data"]["numOfRecords"] == "2"
    assert "no_data" in cm["data"]["message"]


def test_a_forecast_entirely_in_the_past_is_refused(kubeapi: FakeKubeAPI, tmp_path: Path) -> None:
    path = tmp_path / "forecast.json"
    write_forecast(path, 100, 200)
    once(kubeapi, file_settings(path))
    write_forecast(path, 1, 2, start=now() - timedelta(days=2))  # clock skew or a stale provider
    assert once(kubeapi, file_settings(path)) == 1
    cm = stored(kubeapi)
    assert cm is not None
    assert cm["data"]["minForecast"] == "100.000000"
    assert "before now" in cm["data"]["message"]


def test_no_data_ever_publishes_an_empty_array_and_the_reason(kubeapi: FakeKubeAPI, tmp_path: Path) -> None:
    settings = file_settings(tmp_path / "missing.json")
    assert once(kubeapi, settings) == 1
    cm = stored(kubeapi)
    assert cm is not None
    assert cm["data"]["numOfRecords"] == "0"
    assert json.loads(__import__("base64").b64decode(cm["binaryData"]["data"])) == []
    assert "cannot read FORECAST_FILE" in cm["data"]["message"]
    assert "no forecast has been fetched yet" in cm["data"]["message"]


def test_data_running_out_is_said_in_the_message(kubeapi: FakeKubeAPI, tmp_path: Path) -> None:
    path = tmp_path / "forecast.json"
    write_forecast(path, 100, minutes=60)  # covers one hour only
    once(kubeapi, file_settings(path))
    path.unlink()
    once(kubeapi, file_settings(path))
    cm = stored(kubeapi)
    assert cm is not None
    assert "the next hours are not covered" in cm["data"]["message"]


def test_additional_regions_get_their_own_configmaps(kubeapi: FakeKubeAPI, tmp_path: Path) -> None:
    settings = load_settings(provider="Sample", region="westus", additional_regions="eastus,aws:us-west-2")
    assert once(kubeapi, settings) == 0
    for name, region in [
        ("carbon-intensity", "westus"),
        ("carbon-intensity-eastus", "eastus"),
        ("carbon-intensity-aws-us-west-2", "aws:us-west-2"),
    ]:
        cm = stored(kubeapi, name)
        assert cm is not None
        assert cm["metadata"]["annotations"]["carbon-intensity-exporter.io/region"] == region


def test_an_api_server_outage_keeps_the_data_in_memory_and_publishes_later(
    kubeapi: FakeKubeAPI, tmp_path: Path
) -> None:
    path = tmp_path / "forecast.json"
    write_forecast(path, 100, 200, 300)
    settings = file_settings(path, refresh_interval="1h")
    kubeapi.set_down(True)
    stop = threading.Event()
    thread = threading.Thread(
        target=run_exporter, args=(settings,), kwargs={"once": False, "dry_run": False, "stop": stop,
                                                       "client": client(kubeapi)}, daemon=True
    )
    thread.start()
    try:
        time.sleep(1.0)
        assert stored(kubeapi) is None
        kubeapi.set_down(False)
        assert wait_for(lambda: stored(kubeapi) is not None, timeout=15)
        cm = stored(kubeapi)
        assert cm is not None
        assert cm["data"]["numOfRecords"] == "3"
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive()


def test_the_loop_refreshes_and_backs_off_without_a_hot_loop(kubeapi: FakeKubeAPI, tmp_path: Path) -> None:
    path = tmp_path / "forecast.json"
    write_forecast(path, 100, 200)
    settings = file_settings(path, refresh_interval="1s", retry_initial_interval="1s")
    stop = threading.Event()
    thread = threading.Thread(
        target=run_exporter, args=(settings,), kwargs={"once": False, "dry_run": False, "stop": stop,
                                                       "client": client(kubeapi)}, daemon=True
    )
    thread.start()
    try:
        assert wait_for(lambda: (stored(kubeapi) or {}).get("data", {}).get("numOfRecords") == "2")
        write_forecast(path, 1, 2, 3)
        assert wait_for(lambda: (stored(kubeapi) or {}).get("data", {}).get("numOfRecords") == "3")
        path.write_text("garbage")
        creates_before = len([w for w in kubeapi.writes("configmaps") if w.verb == "create"])
        time.sleep(3.5)
        fallbacks = len([w for w in kubeapi.writes("configmaps") if w.verb == "create"]) - creates_before
        # 1 s, then 2 s (with jitter 0.5-1 s, 1-2 s, ...): a handful, not hundreds
        assert 1 <= fallbacks <= 5
        cm = stored(kubeapi)
        assert cm is not None
        assert cm["data"]["numOfRecords"] == "3"
        assert "fetch failed" in cm["data"]["message"]
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive()


@pytest.mark.parametrize("failures", [1, 2, 3, 10, 30])
def test_backoff_doubles_with_jitter_and_is_capped(failures: int) -> None:
    initial, cap = timedelta(minutes=1), timedelta(hours=12)
    base = min(60 * 2 ** (failures - 1), cap.total_seconds())
    delays = [backoff_delay(failures, initial, cap) for _ in range(200)]
    assert all(base / 2 <= delay <= base for delay in delays)
    assert len(set(delays)) > 1


def test_restart_reads_what_is_published(kubeapi: FakeKubeAPI, tmp_path: Path) -> None:
    path = tmp_path / "forecast.json"
    write_forecast(path, 42, 43)
    once(kubeapi, file_settings(path))
    pub = configmap.ConfigMapPublisher(client(kubeapi), "kube-system")
    published = pub.load("carbon-intensity", "westus")
    assert published is not None
    assert published.forecast is not None
    assert [r.value for r in published.forecast.records] == [42, 43]


def test_a_copy_in_state_dir_covers_a_configmap_lost_between_delete_and_create(
    kubeapi: FakeKubeAPI, tmp_path: Path
) -> None:
    path, state = tmp_path / "forecast.json", tmp_path / "state"
    write_forecast(path, 100, 200, 300)
    settings = file_settings(path, state_dir=str(state))
    assert once(kubeapi, settings) == 0
    assert (state / "carbon-intensity.json.gz").exists()
    kubeapi.delete_object("configmaps", "kube-system", "carbon-intensity")  # killed after our delete
    path.unlink()  # and the provider is down at restart
    assert once(kubeapi, settings) == 1
    cm = stored(kubeapi)
    assert cm is not None
    assert cm["data"]["numOfRecords"] == "3"
    assert "fetch failed (file)" in cm["data"]["message"]


def test_a_corrupt_state_copy_is_ignored(kubeapi: FakeKubeAPI, tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "carbon-intensity.json.gz").write_bytes(b"not gzip")
    settings = file_settings(tmp_path / "missing.json", state_dir=str(state))
    assert once(kubeapi, settings) == 1
    cm = stored(kubeapi)
    assert cm is not None
    assert cm["data"]["numOfRecords"] == "0"
