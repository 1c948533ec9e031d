"""``wait`` against the fake API server: its line for a real-shaped forecast, and the measured wait.

Run: ``python bench/wait.py``. Publishes the Sample 72 h forecast with ``run --once`` and prints what ``wait``
says (then SIGTERMs it: the window is hours away); then publishes a forecast whose greenest one-minute window
starts 6 s from now and prints how far from that start the ``wait`` process exited.
"""

from __future__ import annotations

import base64
import json
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from _common import exporter_env

from tests.fakes.kubeapi import FakeKubeAPI

EXE = [sys.executable, "-m", "carbon_intensity_exporter"]


def main() -> None:
    with FakeKubeAPI() as api, tempfile.TemporaryDirectory() as tmp:
        env = exporter_env(api.kubeconfig(Path(tmp) / "kubeconfig"))
        subprocess.run([*EXE, "run", "--once", "--provider", "Sample", "--forecast-horizon-hours", "72"],
                       env=env, check=True, capture_output=True)
        process = subprocess.Popen([*EXE, "wait", "--duration", "1h", "--max-delay", "6h"], env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert process.stdout is not None
        print("real-shaped (Sample, 72 h):", process.stdout.readline().strip())
        process.send_signal(signal.SIGTERM)
        print("after SIGTERM: exit", process.wait(5))

        now = datetime.now(UTC).replace(microsecond=0)
        start = now + timedelta(seconds=6)
        records = [
            {"location": "Z", "timestamp": (start + timedelta(minutes=i)).strftime("%Y-%m-%dT%H:%M:%SZ"),
             "duration": 1, "value": value}
            for i, value in [(-1, 500.0), (0, 100.0), (1, 400.0)]
        ]
        api.delete_object("configmaps", "kube-system", "carbon-intensity")
        api.put_object({"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": "carbon-intensity", "namespace": "kube-system"},
                        "binaryData": {"data": base64.b64encode(json.dumps(records).encode()).decode()}})
        result = subprocess.run([*EXE, "wait", "--duration", "1m", "--max-delay", "10m"], env=env,
                                capture_output=True, text=True)
        exited = time.time()
        print("short window:", result.stdout.strip())
        print(f"computed start {start.isoformat()}, exited {datetime.fromtimestamp(exited, UTC).isoformat()} "
              f"(exit {result.returncode}; {exited - start.timestamp():+.3f} s from the window start)")


if __name__ == "__main__":
    main()
