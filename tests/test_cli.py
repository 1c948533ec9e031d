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
