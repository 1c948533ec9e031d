"""Measure leader-election failover against the fake API server, and check that leaders never overlap.

Run: ``python bench/failover.py [--runs 20]``. Production uses lease 15 s / renew deadline 10 s / retry 2 s;
repeating that 20 times is too slow, so the same ratios are scaled to lease 3 s / renew 2 s / retry 0.4 s and
each time is also shown as a fraction of the lease duration (multiply by 15 s for production).

Each run starts two replicas on a fresh server. Each replica has a fake publisher that writes a ConfigMap
every 20 ms while its elector says it leads. After a random phase, the leader is either killed (no release:
the standby must wait for the Lease to expire) or terminated (SIGTERM: the Lease is released). Failover is
the time from the kill/terminate to the standby's ``on_started_leading``. Overlap is checked twice: is_leader()
of both replicas sampled every 10 ms, and the ConfigMap write log (the old leader's last write must come
before the new leader's first write).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import random
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import ConfigMap

from carbon_intensity_exporter.leader import LeaderElector
from tests.fakes.kubeapi import FakeKubeAPI

NS = "kube-system"
CONFIGMAP = "carbon-intensity"
LEASE, RENEW, RETRY = 3.0, 2.0, 0.4
WAIT = 30.0


@dataclass
class Result:
    failover: float
    sampled_overlaps: int
    write_gap: float  # new leader's first ConfigMap write minus the old leader's last one (must be > 0)
    interleaved: bool


class Replica:
    """An elector plus a publisher that writes only while the elector says it leads."""

    def __init__(self, api: FakeKubeAPI, identity: str) -> None:
        self.identity = identity
        self.started: list[float] = []
        self.elector = LeaderElector(
            api.client(user=identity),
            NS,
            identity,
            lease_duration=LEASE,
            renew_deadline=RENEW,
            retry_period=RETRY,
            on_started_leading=lambda: self.started.append(time.monotonic()),
        )
        self.client = api.client(user=identity)
        self.stop = threading.Event()
        self.crash = False
        self.threads = [
            threading.Thread(target=self._elect, daemon=True),
            threading.Thread(target=self._publish, daemon=True),
        ]
        for thread in self.threads:
            thread.start()

    def _elect(self) -> None:
        self.elector.run(self.stop, release_on_stop=False)
        if not self.crash:
            self.elector.release()

    def _publish(self) -> None:
        count = 0
        while not self.stop.is_set():
            if self.elector.is_leader():
                count += 1
                cm = ConfigMap(metadata=ObjectMeta(name=CONFIGMAP, namespace=NS), data={"n": str(count)})
                with contextlib.suppress(Exception):
                    self.client.apply(cm, field_manager=self.identity)
            self.stop.wait(0.02)

    def halt(self, release: bool) -> None:
        self.crash = not release
        self.stop.set()
        for thread in self.threads:
            thread.join(WAIT)


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.002)


def one_run(release: bool, rng: random.Random) -> Result:
    with FakeKubeAPI() as api:
        replicas = [Replica(api, "a"), Replica(api, "b")]
        overlaps = 0
        sampling = threading.Event()

        def sample() -> None:
            nonlocal overlaps
            while not sampling.is_set():
                if all(r.elector.is_leader() for r in replicas):
                    overlaps += 1
                sampling.wait(0.01)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        wait_for(lambda: any(r.elector.is_leader() for r in replicas), "a leader")
        leader = next(r for r in replicas if r.elector.is_leader())
        standby = next(r for r in replicas if r is not leader)
        time.sleep(0.5 + rng.uniform(0, RETRY))  # a random phase within the renew period
        halted = time.monotonic()
        leader.halt(release)
        wait_for(lambda: bool(standby.started), "the standby to lead")
        wait_for(lambda: _writers(api)[-1:] == [standby.identity], "the standby to publish")
        sampling.set()
        sampler.join(WAIT)
        standby.halt(True)
        writes = api.writes("configmaps", NS, CONFIGMAP)
        old_last = max(w.time for w in writes if w.user == leader.identity)
        new_first = min(w.time for w in writes if w.user == standby.identity)
        writers = [w.user for w in writes]
        switches = sum(1 for x, y in itertools.pairwise(writers) if x != y)
        return Result(standby.started[0] - halted, overlaps, new_first - old_last, switches != 1)


def _writers(api: FakeKubeAPI) -> list[str | None]:
    return [w.user for w in api.writes("configmaps", NS, CONFIGMAP)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    print(f"lease {LEASE:g} s, renew deadline {RENEW:g} s, retry {RETRY:g} s; {args.runs} runs each")
    print(
        f"{'case':<26}{'median s':>10}{'worst s':>10}{'median/lease':>14}{'worst/lease':>13}"
        f"{'min write gap s':>17}{'overlaps':>10}"
    )
    ok = True
    for label, release in (("killed (no release)", False), ("SIGTERM (released)", True)):
        results = [one_run(release, rng) for _ in range(args.runs)]
        times = [r.failover for r in results]
        median, worst = statistics.median(times), max(times)
        gap = min(r.write_gap for r in results)
        overlaps = sum(r.sampled_overlaps for r in results) + sum(r.interleaved for r in results)
        overlaps += sum(r.write_gap <= 0 for r in results)
        ok = ok and overlaps == 0
        print(
            f"{label:<26}{median:>10.3f}{worst:>10.3f}{median / LEASE:>14.2f}{worst / LEASE:>13.2f}"
            f"{gap:>17.3f}{overlaps:>10}"
        )
    print("write log: no overlapping leadership" if ok else "write log: OVERLAP FOUND")
    if not ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
