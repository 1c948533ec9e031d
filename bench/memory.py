"""Resident memory of a running exporter after its first publish, for 1 and 1,000 regions.

Run: ``python bench/memory.py``. Starts ``carbon-intensity-exporter run`` (the loop, with the watch, Events
and HTTP threads) with PROVIDER=CarbonAwareSDK against a local fake SDK WebAPI (288 points per region) and the
local fake API server, waits until every ConfigMap is published,
then reads VmRSS from /proc. Also prints RSS of a bare interpreter for reference.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import exporter_env, rss_mb
from regions import serve_forecast

from tests.fakes.kubeapi import FakeKubeAPI
from tests.fakes.providers import FakeCarbonAwareSDK


def measure(regions: int, sdk: FakeCarbonAwareSDK) -> tuple[float, float]:
    extra = ",".join(f"region-{index}" for index in range(1, regions))
    with FakeKubeAPI() as api, tempfile.TemporaryDirectory() as tmp:
        env = exporter_env(api.kubeconfig(Path(tmp) / "kubeconfig"), PROVIDER="CarbonAwareSDK",
                           CARBON_AWARE_SDK_URL=sdk.url, PROVIDER_REGION="westus", REGION="region-0",
                           ADDITIONAL_REGIONS=extra, METRICS_PORT="9199")
        started = time.monotonic()
        process = subprocess.Popen([sys.executable, "-m", "carbon_intensity_exporter", "run"], env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            while len(api.list_objects("configmaps", "kube-system")) < regions:
                if process.poll() is not None:
                    raise RuntimeError(f"exporter exited with {process.returncode}")
                time.sleep(0.05)
            elapsed = time.monotonic() - started
            time.sleep(1.0)  # let the threads settle
            return rss_mb(process.pid), elapsed
        finally:
            process.terminate()
            process.wait(10)


def main() -> None:
    bare = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(2)"])
    time.sleep(0.5)
    print(f"bare python interpreter:        {rss_mb(bare.pid):6.1f} MB")
    bare.wait()
    sdk = FakeCarbonAwareSDK().start()
    sdk.route(r"/emissions/forecasts/current", serve_forecast)
    for regions, budget in ((1, 60), (1000, 150)):
        rss, elapsed = measure(regions, sdk)
        verdict = "met" if rss <= budget else "NOT met"
        print(f"{regions:>5} region(s): RSS {rss:6.1f} MB after first publish of all ({elapsed:5.1f} s)"
              f"   budget {budget} MB: {verdict}")


if __name__ == "__main__":
    main()
