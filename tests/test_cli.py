"""The command line as a user runs it: a real process, real exit codes, the fake API server for a cluster."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from tests.consumer import go_decode
from tests.fakes.kubeapi import FakeKubeAPI

EXE = [sys.executable, "-m", "carbon_intensity_exporter"]


def run(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    full_env = {key: value for key, value in os.environ.items() if key != "KUBECONFIG"}
    full_env.update(env or {})
    return subprocess.run([*EXE, *args], capture_output=True, text=True, env=full_env, timeout=timeout)


def test_the_readme_demo_needs_no_account_and_no_cluster() -> None:
    result = run("run", "--once", "--provider", "Sample", "--dry-run")
    assert result.returncode == 0, result.stderr
    document = yaml.safe_load(result.stdout)
    assert document["kind"] == "ConfigMap"
    assert document["data"]["numOfRecords"] == "288"
    assert document["metadata"]["annotations"]["carbon-intensity-exporter.io/sample"] == "true"
    import base64

    assert len(go_decode(base64.b64decode(document["binaryData"]["data"]))) == 288


def test_help_explains_every_setting() -> None:
    result = run("run", "--help")
    assert result.returncode == 0
    for flag in ("--provider", "--region", "--refresh-interval", "--wt-password-file", "--dry-run", "--once"):
        assert flag in result.stdout
    assert "[env REFRESH_INTERVAL]" in result.stdout


def test_bad_configuration_exits_2_before_contacting_anything(kubeapi: FakeKubeAPI, tmp_path: Path) -> None:
    kubeconfig = kubeapi.kubeconfig(tmp_path / "kubeconfig")
    result = run("run", "--once", env={"KUBECONFIG": str(kubeconfig), "PROVIDER": "Samples"})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: PROVIDER='Samples': unknown provider 'Samples'; choose one of WattTime, ElectricityMaps, "
        "UKCarbonIntensity, CarbonAwareSDK, File, Sample"
    ]
    result = run("run", "--once", "--provider", "File", env={"KUBECONFIG": str(kubeconfig)})
    assert result.returncode == 2
    assert "FORECAST_FILE" in result.stderr
    assert kubeapi.requests == []


def test_no_cluster_is_a_configuration_error_that_says_what_to_do(tmp_path: Path) -> None:
    result = run("run", "--once", "--provider", "Sample", env={"HOME": str(tmp_path)})
    assert result.returncode == 2
    assert "KUBECONFIG" in result.stderr
    assert "--dry-run" in result.stderr


def test_once_exit_codes(kubeapi: FakeKubeAPI, tmp_path: Path) -> None:
    env = {"KUBECONFIG": str(kubeapi.kubeconfig(tmp_path / "kubeconfig"))}
    assert run("run", "--once", "--provider", "Sample", env=env).returncode == 0
    failed = run("run", "--once", "--provider", "File", "--forecast-file", str(tmp_path / "nope.json"), env=env)
    assert failed.returncode == 1
    assert "cannot read FORECAST_FILE" in failed.stderr
    cm = kubeapi.get_object("configmaps", "kube-system", "carbon-intensity")
    assert cm is not None
    assert cm["data"]["numOfRecords"] == "288"  # the sample data is still there


def test_forecast_json_is_exactly_binary_data(tmp_path: Path) -> None:
    result = run("forecast", "--provider", "Sample", "-o", "json")
    assert result.returncode == 0
    records = json.loads(result.stdout)
    assert len(records) == 288
    assert set(records[0]) == {"location", "timestamp", "duration", "value"}
    table = run("forecast", "--provider", "Sample")
    assert table.returncode == 0
    assert "SAMPLE DATA" in table.stdout


def test_sigterm_exits_promptly(kubeapi: FakeKubeAPI, tmp_path: Path) -> None:
    env = {
        **{key: value for key, value in os.environ.items() if key != "KUBECONFIG"},
        "KUBECONFIG": str(kubeapi.kubeconfig(tmp_path / "kubeconfig")),
        "PROVIDER": "Sample",
        "METRICS_PORT": "0",
    }
    process = subprocess.Popen([*EXE, "run"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 15
        while kubeapi.get_object("configmaps", "kube-system", "carbon-intensity") is None:
            assert time.monotonic() < deadline, "never published"
            time.sleep(0.05)
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=10)
        assert code == 0
        assert time.monotonic() - started < 5
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_best_window_words_and_json() -> None:
    text = run("best-window", "--duration", "2h", "--provider", "Sample", "--no-chart")
    assert text.returncode == 0, text.stderr
    assert "Greenest 2h00m window" in text.stdout
    assert "less than starting now" in text.stdout
    as_json = run("best-window", "--duration", "2h", "--provider", "Sample", "-o", "json")
    windows = json.loads(as_json.stdout)
    assert windows and all(window["duration"] == 120 for window in windows)
    too_long = run("best-window", "--duration", "48h", "--provider", "Sample")
    assert too_long.returncode == 1
    assert "No 48h00m window fits" in too_long.stdout


def test_best_window_from_the_configmap(kubeapi: FakeKubeAPI, tmp_path: Path) -> None:
    env = {"KUBECONFIG": str(kubeapi.kubeconfig(tmp_path / "kubeconfig"))}
    assert run("run", "--once", "--provider", "Sample", env=env).returncode == 0
    result = run("best-window", "--duration", "1h", "--from-configmap", "-o", "json", env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)[0]["duration"] == 60
    missing = run("best-window", "--duration", "1h", "--from-configmap", "kube-system/nope", env=env)
    assert missing.returncode == 1
    assert "404" in missing.stderr


def _publish(api: FakeKubeAPI, records: list[dict[str, object]]) -> None:
    import base64

    api.put_object(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "carbon-intensity", "namespace": "kube-system"},
            "immutable": True,
            "data": {"numOfRecords": str(len(records))},
            "binaryData": {"data": base64.b64encode(json.dumps(records).encode()).decode()},
        }
    )


def test_wait_sleeps_until_the_computed_window(kubeapi: FakeKubeAPI, tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC).replace(microsecond=0)
    start = now + timedelta(seconds=4)

    def slot(at: datetime, value: float) -> dict[str, object]:
        return {"location": "Z", "timestamp": at.strftime("%Y-%m-%dT%H:%M:%SZ"), "duration": 1, "value": value}

    minute = timedelta(minutes=1)
    _publish(kubeapi, [slot(start - minute, 500), slot(start, 100), slot(start + minute, 400)])
    env = {"KUBECONFIG": str(kubeapi.kubeconfig(tmp_path / "kubeconfig"))}
    began = time.monotonic()
    result = run("wait", "--duration", "1m", "--max-delay", "10m", env=env)
    waited = time.monotonic() - began
    assert result.returncode == 0, result.stderr
    assert f"starting at {start.strftime('%Y-%m-%dT%H:%M:%SZ')}" in result.stdout
    assert "expected average 100.0" in result.stdout
    assert waited >= (start - now).total_seconds() - 1.5  # it really slept until the window


def test_wait_starts_at_once_on_every_failure(kubeapi: FakeKubeAPI, tmp_path: Path) -> None:
    env = {"KUBECONFIG": str(kubeapi.kubeconfig(tmp_path / "kubeconfig"))}
    missing = run("wait", "--duration", "1h", "--max-delay", "6h", env=env, timeout=20)
    assert missing.returncode == 0
    assert "starting now: cannot use the forecast" in missing.stdout
    assert "404" in missing.stdout
    _publish(kubeapi, [{"location": "Z", "timestamp": "2020-01-01T00:00:00Z", "duration": 60, "value": 1.0}])
    stale = run("wait", "--duration", "1h", "--max-delay", "6h", env=env, timeout=20)
    assert stale.returncode == 0
    assert "stale" in stale.stdout
    kubeapi.deny(verb="get", resource="configmaps")
    forbidden = run("wait", "--duration", "1h", "--max-delay", "6h", env=env, timeout=20)
    assert forbidden.returncode == 0
    assert "403" in forbidden.stdout
    kubeapi.set_down(True)
    unreachable = run("wait", "--duration", "1h", "--max-delay", "6h", env=env, timeout=30)
    assert unreachable.returncode == 0
    assert "unreachable" in unreachable.stdout
    no_cluster = run("wait", "--duration", "1h", "--max-delay", "6h", env={"HOME": str(tmp_path)}, timeout=20)
    assert no_cluster.returncode == 0
    assert "starting now" in no_cluster.stdout


def test_wait_exits_on_sigterm(kubeapi: FakeKubeAPI, tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=1)
    records = [
        {"location": "Z", "timestamp": (start + timedelta(hours=i)).strftime("%Y-%m-%dT%H:%M:%SZ"), "duration": 60,
         "value": value}
        for i, value in enumerate([500, 400, 100, 300])
    ]
    _publish(kubeapi, records)
    env = {
        **{key: value for key, value in os.environ.items() if key != "KUBECONFIG"},
        "KUBECONFIG": str(kubeapi.kubeconfig(tmp_path / "kubeconfig")),
    }
    process = subprocess.Popen(
        [*EXE, "wait", "--duration", "1h", "--max-delay", "6h"], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert "starting at" in line
        sent = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 143
        assert time.monotonic() - sent < 5
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
