"""How long the ConfigMap is absent while it is replaced, and how fast a deleted one comes back.

Run: ``python bench/replacement.py [replacements]``. The fake API server logs every write with a
CLOCK_MONOTONIC time: the absence window is the time from each delete to the create that follows it.
Part 1 replaces the ConfigMap N times through ConfigMapPublisher (delete + create back to back). Part 2
runs the watch and deletes the ConfigMap as another actor would, 20 times, timing the recreate.
"""

from __future__ import annotations

import sys
import threading
import time
from datetime import UTC, datetime

from _common import summary

from carbon_intensity_exporter.configmap import ConfigMapPublisher, render
from carbon_intensity_exporter.providers.sample import SampleProvider
from tests.fakes.kubeapi import FakeKubeAPI


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    forecast = SampleProvider(24).fetch("westus", None)
    with FakeKubeAPI() as api:
        publisher = ConfigMapPublisher(api.client(), "kube-system")
        for _ in range(count + 1):
            publisher.publish(
                render(name="carbon-intensity", namespace="kube-system", region="westus", forecast=forecast,
                       heartbeat=datetime.now(UTC), message="", provider="Sample")
            )
        gaps = api.absence_windows("configmaps", "kube-system", "carbon-intensity")
        print(f"absence during replacement ({len(gaps)} replacements): {summary(gaps)}")
        print(f"budget worst <= 50 ms: {'met' if max(gaps) <= 0.050 else 'NOT met'}")

        stop = threading.Event()
        threading.Thread(target=publisher.watch, args=(stop,), daemon=True).start()
        time.sleep(0.5)
        recreate: list[float] = []
        for _ in range(20):
            before = len(api.write_log)
            deleted = time.monotonic()
            api.delete_object("configmaps", "kube-system", "carbon-intensity")
            while api.get_object("configmaps", "kube-system", "carbon-intensity") is None:
                time.sleep(0.001)
            created = [w for w in api.write_log[before:] if w.verb == "create"]
            recreate.append(created[0].time - deleted)
            time.sleep(0.1)
        stop.set()
        print(f"recreate after deletion (20 deletions):        {summary(recreate)}")
        print(f"budget <= 1 s: {'met' if max(recreate) <= 1.0 else 'NOT met'}")


if __name__ == "__main__":
    main()
