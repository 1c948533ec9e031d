"""Kubernetes Events against the fake API server: deduplicated failures, recoveries, recreations, leadership."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from carbon_intensity_exporter import configmap
from carbon_intensity_exporter.events import NOTE_MAX_BYTES, EventRecorder, truncate_note
from carbon_intensity_exporter.exporter import Exporter, Target
from carbon_intensity_exporter.metrics import CompositeObserver, MetricsObserver
from carbon_intensity_exporter.providers.file import FileProvider
from tests.fakes.kubeapi import FakeKubeAPI
from tests.test_metrics import NAMESPACE, VALUES, Clock, file_settings, write_forecast

EVENTS = "events.events.k8s.io"


@dataclass
class Rig:
    api: FakeKubeAPI
    exporter: Exporter
    recorder: EventRecorder
    publisher: configmap.ConfigMapPublisher
    path: Path

    @property
    def target(self) -> Target:
        return self.exporter.targets[0]

    def events(self) -> list[dict[str, Any]]:
        assert self.recorder.flush(10), "Events were not sent"
        return sorted(self.api.list_objects(EVENTS, NAMESPACE), key=lambda e: int(e["metadata"]["resourceVersion"]))

    def reasons(self) -> list[str]:
        return [event["reason"] for event in self.events()]


@pytest.fixture
def rig(kubeapi: FakeKubeAPI, tmp_path: Path) -> Iterator[Rig]:
    path = tmp_path / "forecast.json"
    provider = FileProvider(path)
    client = kubeapi.client()
    recorder = EventRecorder(client, NAMESPACE, "carbon-intensity", pod_name="exporter-0")
    observer = CompositeObserver(MetricsObserver(provider.name), recorder)
    publisher = configmap.ConfigMapPublisher(client, NAMESPACE, on_recreated=observer.recreated)
    exporter = Exporter(file_settings(path), provider, publisher, observer=observer, clock=Clock())
    yield Rig(kubeapi, exporter, recorder, publisher, path)
    recorder.close()


def test_fetch_failed_once_for_repeated_failures_then_recovered(rig: Rig) -> None:
    for _ in range(3):  # the file is missing: three failures with the same reason
        assert not rig.exporter.cycle(rig.target).fresh
    events = rig.events()
    assert [e["reason"] for e in events] == ["FetchFailed"]
    failed = events[0]
    assert failed["type"] == "Warning"
    assert failed["action"] == "Fetch"
    assert failed["regarding"] == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "namespace": NAMESPACE,
        "name": "carbon-intensity",
    }
    assert failed["metadata"]["namespace"] == NAMESPACE
    assert failed["reportingController"] == "carbon-intensity-exporter"
    assert failed["reportingInstance"] == "exporter-0"
    assert failed["eventTime"].endswith("Z")
    assert "westus" in failed["note"] and "(file)" in failed["note"] and "FORECAST_FILE" in failed["note"]

    write_forecast(rig.path, VALUES)
    assert rig.exporter.cycle(rig.target).fresh
    assert rig.exporter.cycle(rig.target).fresh  # a second success says nothing new
    events = rig.events()
    assert [e["reason"] for e in events] == ["FetchFailed", "FetchRecovered"]
    recovered = events[1]
    assert recovered["type"] == "Normal"
    assert "3 failed attempt(s)" in recovered["note"] and "file" in recovered["note"]


def test_a_new_failure_reason_is_a_new_event(rig: Rig) -> None:
    rig.exporter.cycle(rig.target)  # missing file: "file"
    rig.path.write_text("[]")  # empty: "no_data"
    rig.exporter.cycle(rig.target)
    rig.exporter.cycle(rig.target)
    events = rig.events()
    assert [e["reason"] for e in events] == ["FetchFailed", "FetchFailed"]
    assert "(file)" in events[0]["note"] and "(no_data)" in events[1]["note"]


def test_success_without_failures_records_nothing(rig: Rig) -> None:
    write_forecast(rig.path, VALUES)
    rig.exporter.cycle(rig.target)
    assert rig.events() == []


def test_configmap_recreated(rig: Rig) -> None:
    write_forecast(rig.path, VALUES)
    rig.exporter.cycle(rig.target)
    assert rig.api.delete_object("configmaps", NAMESPACE, "carbon-intensity")
    assert rig.publisher.ensure_present() == ["carbon-intensity"]
    events = rig.events()
    assert [e["reason"] for e in events] == ["ConfigMapRecreated"]
    assert events[0]["regarding"]["name"] == "carbon-intensity"
    assert events[0]["type"] == "Normal"


def test_configmap_recreated_by_the_watch(rig: Rig) -> None:
    write_forecast(rig.path, VALUES)
    rig.exporter.cycle(rig.target)
    stop = threading.Event()
    watch = threading.Thread(target=rig.publisher.watch, args=(stop,), daemon=True)
    watch.start()
    try:
        assert wait_until(lambda: rig.api.open_watches > 0)
        rig.api.delete_object("configmaps", NAMESPACE, "carbon-intensity")
        assert wait_until(lambda: "ConfigMapRecreated" in [e["reason"] for e in rig.api.list_objects(EVENTS)])
    finally:
        stop.set()
        rig.api.drop_watches()
        watch.join(5)


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    done = threading.Event()
    for _ in range(int(timeout / 0.02)):
        if condition():
            return True
        done.wait(0.02)
    return bool(condition())


def test_leadership_events_regard_the_pod(kubeapi: FakeKubeAPI) -> None:
    recorder = EventRecorder(
        kubeapi.client(), NAMESPACE, "carbon-intensity", pod_name="exporter-1", pod_namespace="monitoring"
    )
    recorder.leadership_gained()
    recorder.leadership_lost()
    assert recorder.flush(10)
    events = sorted(kubeapi.list_objects(EVENTS, "monitoring"), key=lambda e: int(e["metadata"]["resourceVersion"]))
    assert [e["reason"] for e in events] == ["LeadershipGained", "LeadershipLost"]
    assert {e["regarding"]["kind"] for e in events} == {"Pod"}
    assert events[0]["regarding"] == {
        "apiVersion": "v1",
        "kind": "Pod",
        "namespace": "monitoring",
        "name": "exporter-1",
    }
    recorder.close()


def test_leadership_events_regard_the_configmap_without_a_pod(kubeapi: FakeKubeAPI) -> None:
    recorder = EventRecorder(kubeapi.client(), NAMESPACE, "carbon-intensity", reporting_instance="host-abc123")
    recorder.leadership_gained()
    assert recorder.flush(10)
    (event,) = kubeapi.list_objects(EVENTS, NAMESPACE)
    assert event["regarding"]["kind"] == "ConfigMap" and event["regarding"]["name"] == "carbon-intensity"
    assert event["reportingInstance"] == "host-abc123"
    recorder.close()


def test_refused_events_are_dropped_quietly(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    rig.api.deny(verb="create", resource="events")
    caplog.set_level(logging.DEBUG, logger="carbon_intensity_exporter.events")
    rig.exporter.cycle(rig.target)  # FetchFailed, refused with 403
    assert rig.events() == []
    assert rig.recorder.dropped == 1
    assert any("could not record Event FetchFailed" in r.getMessage() for r in caplog.records)
    assert all(r.levelno == logging.DEBUG for r in caplog.records if r.name.endswith("events"))


def test_a_slow_api_server_never_blocks_the_loop() -> None:
    class Stuck:
        """A client whose create blocks until released, like an API server that does not answer."""

        def __init__(self) -> None:
            self.release = threading.Event()
            self.created: list[Any] = []

        def create(self, obj: Any, namespace: str) -> None:
            self.release.wait(10)
            self.created.append(obj)

    client = Stuck()
    recorder = EventRecorder(client, NAMESPACE, "carbon-intensity", queue_size=3)
    for index in range(10):  # returns at once although nothing can be sent
        recorder.recreated(f"cm-{index}")
    assert recorder.dropped >= 6
    client.release.set()
    assert recorder.flush(10)
    assert recorder.sent == len(client.created) == 10 - recorder.dropped
    recorder.close()


def test_notes_are_capped_at_1024_bytes() -> None:
    note = "é" * 2000
    capped = truncate_note(note)
    assert len(capped.encode()) <= NOTE_MAX_BYTES
    assert capped.endswith("…") and capped.startswith("éé")
    assert truncate_note("short") == "short"
    assert truncate_note("x" * NOTE_MAX_BYTES) == "x" * NOTE_MAX_BYTES
