"""Cost of one full cycle as regions grow: 1, 10, 100, 1,000 regions against local fake servers.

Run: ``python bench/regions.py [max_regions]``. Each row is one ``run --once`` process with PROVIDER=CarbonAwareSDK
pointed at a local fake SDK WebAPI (288 five-minute points per region, the shape of a 24 h forecast) and
KUBECONFIG at the local fake API server: every region is fetched over HTTP and published as its own
ConfigMap (delete + create). Wall time is spawn to exit; peak memory is the child's ru_maxrss (os.wait4).
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import exporter_env

from tests.fakes.kubeapi import FakeKubeAPI
from tests.fakes.providers import FakeCarbonAwareSDK, Reply, Request, cas_forecast, slot_start


def serve_forecast(request: Request) -> Reply:
    start = slot_start(dt.datetime.now(dt.UTC), 5)
    values = [180.0 + (index * 37) % 200 for index in range(288)]
    return Reply(200, cas_forecast(start, request.query.get("location", "x"), "CAISO_NORTH", 288, values))


def one_cycle(regions: int, sdk: FakeCarbonAwareSDK) -> tuple[float, float, int]:
    names = [f"region-{index:04d}" for index in range(regions)]
    with FakeKubeAPI() as api, tempfile.TemporaryDirectory() as tmp:
        env = exporter_env(
            api.kubeconfig(Path(tmp) / "kubeconfig"),
            PROVIDER="CarbonAwareSDK",
            CARBON_AWARE_SDK_URL=sdk.url,
            PROVIDER_REGION="westus",
            REGION=names[0],
            ADDITIONAL_REGIONS=",".join(names[1:]),
        )
        started = time.monotonic()
        process = subprocess.Popen([sys.executable, "-m", "carbon_intensity_exporter", "run", "--once"], env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(process.pid, 0)
        elapsed = time.monotonic() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            raise RuntimeError(f"{regions} regions: exit code {process.returncode}")
        published = len(api.list_objects("configmaps", "kube-system"))
        return elapsed, usage.ru_maxrss / 1024, published


def main() -> None:
    largest = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    sdk = FakeCarbonAwareSDK().start()
    sdk.route(r"/emissions/forecasts/current", serve_forecast)
    print("| regions | ConfigMaps published | wall time (s) | per region (ms) | peak RSS (MB) |")
    print("|---:|---:|---:|---:|---:|")
    counts = [count for count in (1, 10, 100, 1000) if count <= largest]
    try:
        for count in counts:
            elapsed, peak, published = one_cycle(count, sdk)
            print(f"| {count} | {published} | {elapsed:.2f} | {elapsed / count * 1000:.1f} | {peak:.1f} |")
    finally:
        sdk.stop()


if __name__ == "__main__":
    main()
