"""Start-up to first ConfigMap published: ``run --once --provider Sample`` against the local fake API.

Run: ``python bench/startup.py [runs]``. For each run, the clock starts when the process is spawned and stops
when the fake API server records the ConfigMap create (both on CLOCK_MONOTONIC, shared by processes on
Linux). Reported next to a bare ``python -c pass`` and ``python -c "import carbon_intensity_exporter.cli"``
measured in the same run, as ratios (the machines are shared and noisy; ratios travel better).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import exporter_env, summary

from tests.fakes.kubeapi import FakeKubeAPI


def spawn_time(args: list[str]) -> float:
    started = time.monotonic()
    subprocess.run(args, check=True, capture_output=True)
    return time.monotonic() - started


def first_publish(api: FakeKubeAPI, env: dict[str, str]) -> float:
    api.delete_object("configmaps", "kube-system", "carbon-intensity")
    before = len(api.write_log)
    started = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "carbon_intensity_exporter", "run", "--once", "--provider", "Sample"],
        env=env,
        check=True,
        capture_output=True,
    )
    creates = [w for w in api.write_log[before:] if w.verb == "create" and w.resource == "configmaps"]
    return creates[0].time - started


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    bare, imported, published = [], [], []
    with FakeKubeAPI() as api, tempfile.TemporaryDirectory() as tmp:
        env = exporter_env(api.kubeconfig(Path(tmp) / "kubeconfig"))
        for _ in range(runs):
            bare.append(spawn_time([sys.executable, "-c", "pass"]))
            imported.append(spawn_time([sys.executable, "-c", "import carbon_intensity_exporter.cli"]))
            published.append(first_publish(api, env))
    median = sorted(published)[len(published) // 2]
    print(f"python -c pass                      {summary(bare)}")
    print(f"import carbon_intensity_exporter.cli {summary(imported)}")
    print(f"spawn -> first ConfigMap created    {summary(published)}")
    print(f"ratio first publish / bare python:   {median / sorted(bare)[len(bare) // 2]:.1f}x")
    print(f"ratio first publish / import:        {median / sorted(imported)[len(imported) // 2]:.1f}x")
    print(f"budget 1.0 s median: {'met' if median <= 1.0 else 'NOT met'}")


if __name__ == "__main__":
    main()
