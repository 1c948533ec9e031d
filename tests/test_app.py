"""The wired exporter as a process: metrics scraped from a running instance, and two instances with leader
election against the fake API server (who writes, and that the two never write at once)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.fakes.kubeapi import FakeKubeAPI
from tests.polling import wait_for

EXE = [sys.executable, "-m", "carbon_intensity_exporter", "run"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port




@contextmanager
def exporter(api: FakeKubeAPI, tmp_path: Path, user: str, **env: str) -> Iterator[subprocess.Popen[str]]:
    full = {key: value for key, value in os.environ.items() if key != "KUBECONFIG"}
    full.update({"KUBECONFIG": str(api.kubeconfig(tmp_path / f"kubeconfig-{user}", user=user)),
                 "PROVIDER": "Sample", "POD_NAME": user, "LOG_FORMAT": "json"})
    full.update(env)
    process = subprocess.Popen(EXE, env=full, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)


def get(url: str) -> httpx.Response | None:
    try:
        return httpx.get(url, timeout=2)
    except httpx.HTTPError:
        return None


def test_metrics_of_a_running_exporter_match_the_configmap(kubeapi: FakeKubeAPI, tmp_path: Path) -> None:
    port = free_port()
    with exporter(kubeapi, tmp_path, "exporter", METRICS_PORT=str(port)):
        assert wait_for(lambda: kubeapi.get_object("configmaps", "kube-system", "carbon-intensity") is not None)
        assert wait_for(lambda: (get(f"http://127.0.0.1:{port}/readyz") or httpx.Response(500)).status_code == 200)
        healthz = get(f"http://127.0.0.1:{port}/healthz")
        assert healthz is not None and healthz.status_code == 200
        scraped = get(f"http://127.0.0.1:{port}/metrics")
        assert scraped is not None and scraped.status_code == 200
        text = scraped.text
    cm = kubeapi.get_object("configmaps", "kube-system", "carbon-intensity")
    assert cm is not None
    data_labels = {"location", "provider", "region", "signal_type"}
    samples = {
        (sample.name, tuple(sorted((k, v) for k, v in sample.labels.items() if k not in data_labels))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    assert samples[("carbon_intensity_forecast_records", ())] == float(cm["data"]["numOfRecords"])
    for metric, key in (("min", "minForecast"), ("max", "maxForecast")):
        expected = float(cm["data"][key])
        assert samples[(f"carbon_intensity_forecast_{metric}_grams_per_kwh", ())] == pytest.approx(expected)
    records = json.loads(base64.b64decode(cm["binaryData"]["data"]))
    now = datetime.now(UTC)
    current = next(r for r in records if datetime.fromisoformat(r["timestamp"]).timestamp() <= now.timestamp())
    assert samples[("carbon_intensity_grams_per_kwh", ())] in {r["value"] for r in records[:2]} | {current["value"]}
    assert samples[("carbon_intensity_exporter_leader", ())] == 1.0
    if shutil.which("promtool"):
        check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
        assert check.stdout.strip() == "" and check.stderr.strip() == ""


def holder(api: FakeKubeAPI) -> str | None:
    lease = api.get_object("leases", "kube-system", "carbon-intensity-leader")
    return None if lease is None else (lease.get("spec") or {}).get("holderIdentity")


def configmap_writers(api: FakeKubeAPI) -> list[str | None]:
    return [write.user for write in api.writes("configmaps") if write.verb in ("create", "delete")]


def test_two_instances_one_publisher_and_a_prompt_handover(kubeapi: FakeKubeAPI, tmp_path: Path) -> None:
    env = {"LEADER_ELECTION": "true", "LEASE_DURATION": "1.5s", "REFRESH_INTERVAL": "1s"}
    ports = {"a": free_port(), "b": free_port()}
    with exporter(kubeapi, tmp_path, "a", METRICS_PORT=str(ports["a"]), **env) as first, \
            exporter(kubeapi, tmp_path, "b", METRICS_PORT=str(ports["b"]), **env) as second:
        assert wait_for(lambda: holder(kubeapi) in {"a", "b"})
        assert wait_for(lambda: kubeapi.get_object("configmaps", "kube-system", "carbon-intensity") is not None)
        leader = holder(kubeapi)
        standby = "b" if leader == "a" else "a"
        time.sleep(2.0)  # a few refreshes
        assert set(configmap_writers(kubeapi)) == {leader}
        ready = get(f"http://127.0.0.1:{ports[standby]}/readyz")
        assert ready is not None and ready.status_code == 200 and "standby" in ready.text
        (first if leader == "a" else second).send_signal(signal.SIGTERM)
        assert wait_for(lambda: standby in configmap_writers(kubeapi), timeout=10)
        assert (first if leader == "a" else second).wait(timeout=6) == 0
    writers = configmap_writers(kubeapi)
    switch = writers.index(standby)
    assert set(writers[:switch]) == {leader} and set(writers[switch:]) == {standby}  # never interleaved
