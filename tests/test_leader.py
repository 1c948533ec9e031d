"""Leader election against the fake API server over real HTTP (DESIGN.md §3 HA, issue 5 item 4).

Short, production-like ratios: lease 1.0 s, renew deadline 0.6 s, retry 0.1 s. Waits are generous and only
bound a hang; the ordering properties (never two leaders, a partitioned leader stops before a standby
starts) are checked from recorded events, not from tight timings.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from lightkube import Client
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import ConfigMap

from carbon_intensity_exporter.leader import LeaderElector
from tests.fakes.kubeapi import FakeKubeAPI

NS = "kube-system"
LEASE = "carbon-intensity-exporter"
WAIT = 10.0


def wait_for(condition: Callable[[], bool], timeout: float = WAIT, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


class Node:
    """One exporter replica: an elector on its own client (user = identity), run on a thread."""

    def __init__(
        self,
        api: FakeKubeAPI,
        identity: str,
        client: Client | None = None,
        *,
        lease_duration: float = 1.0,
        renew_deadline: float = 0.6,
        retry_period: float = 0.1,
    ) -> None:
        self.identity = identity
        self.started: list[float] = []
        self.stopped: list[float] = []
        self.elector = LeaderElector(
            client or api.client(user=identity),
            NS,
            identity,
            on_started_leading=lambda: self.started.append(time.monotonic()),
            on_stopped_leading=lambda: self.stopped.append(time.monotonic()),
            lease_duration=lease_duration,
            renew_deadline=renew_deadline,
            retry_period=retry_period,
        )
        self._stop = threading.Event()
        self._crash = False
        self._thread = threading.Thread(target=self._run, name=f"node-{identity}", daemon=True)

    def _run(self) -> None:
        self.elector.run(self._stop, release_on_stop=False)
        if not self._crash:
            self.elector.release()

    def start(self) -> Node:
        self._thread.start()
        return self

    def kill(self) -> None:
        """Stop without releasing the Lease, like a crashed pod."""
        self._crash = True
        self._stop.set()
        self._thread.join(WAIT)

    def terminate(self) -> None:
        """SIGTERM: stop and release the Lease."""
        self._stop.set()
        self._thread.join(WAIT)
        assert not self._thread.is_alive()

    def is_leader(self) -> bool:
        return self.elector.is_leader()


class Sampler:
    """Samples every node's is_leader() every 10 ms; any sample with two leaders is recorded."""

    def __init__(self, nodes: list[Node]) -> None:
        self.nodes = nodes
        self.samples = 0
        self.overlaps: list[list[str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            leaders = [n.identity for n in self.nodes if n.is_leader()]
            self.samples += 1
            if len(leaders) > 1:
                self.overlaps.append(leaders)
            self._stop.wait(0.01)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(WAIT)


@pytest.fixture
def api() -> Iterator[FakeKubeAPI]:
    with FakeKubeAPI() as server:
        yield server


@pytest.fixture
def nodes() -> Iterator[list[Node]]:
    started: list[Node] = []
    yield started
    for node in started:
        node.kill()


def spec(api: FakeKubeAPI) -> dict[str, Any]:
    lease = api.get_object("leases", NS, LEASE)
    assert lease is not None
    return dict(lease["spec"])


def leaders(nodes: list[Node]) -> list[Node]:
    return [n for n in nodes if n.is_leader()]


def one_leader(nodes: list[Node]) -> Node:
    wait_for(lambda: len(leaders(nodes)) == 1, what="one leader")
    (leader,) = leaders(nodes)
    return leader


def test_single_instance_acquires_renews_and_releases(api: FakeKubeAPI, nodes: list[Node]) -> None:
    node = Node(api, "a").start()
    nodes.append(node)
    wait_for(node.is_leader, what="a to lead")
    first = spec(api)
    assert first["holderIdentity"] == "a"
    assert first["leaseDurationSeconds"] == 1
    assert first["leaseTransitions"] == 0
    assert "." in first["renewTime"] and first["renewTime"].endswith("Z")  # MicroTime
    wait_for(lambda: spec(api)["renewTime"] != first["renewTime"], what="a renewal")
    renewed = spec(api)
    assert renewed["acquireTime"] == first["acquireTime"]
    assert renewed["leaseTransitions"] == 0

    node.terminate()
    assert not node.is_leader()
    released = spec(api)
    assert released.get("holderIdentity", "") == ""
    assert released["leaseDurationSeconds"] == 1
    assert released["leaseTransitions"] == 0
    assert len(node.started) == len(node.stopped) == 1
    assert {w.user for w in api.writes("leases")} == {"a"}


def test_invalid_timings_are_refused(api: FakeKubeAPI) -> None:
    with pytest.raises(ValueError, match="renew_deadline < lease_duration"):
        LeaderElector(api.client(user="a"), NS, "a", lease_duration=10, renew_deadline=10)
    with pytest.raises(ValueError, match="identity"):
        LeaderElector(api.client(user="a"), NS, "")


@pytest.mark.parametrize("count", [2, 3])
def test_exactly_one_of_several_leads(api: FakeKubeAPI, nodes: list[Node], count: int) -> None:
    nodes.extend(Node(api, name).start() for name in "abc"[:count])
    with Sampler(nodes) as sampler:
        leader = one_leader(nodes)
        mark = time.monotonic()
        time.sleep(1.5)  # longer than the lease: standbys must keep standing by while it is renewed
    assert sampler.overlaps == []
    assert sampler.samples > 50
    assert leaders(nodes) == [leader]
    assert spec(api)["holderIdentity"] == leader.identity
    assert spec(api)["leaseTransitions"] == 0
    assert {w.user for w in api.writes("leases") if w.time > mark} == {leader.identity}
    for node in nodes:
        assert len(node.started) == (1 if node is leader else 0)


def test_killed_leader_is_replaced_after_the_lease_expires(api: FakeKubeAPI, nodes: list[Node]) -> None:
    nodes.extend(Node(api, name).start() for name in "abc")
    with Sampler(nodes) as sampler:
        leader = one_leader(nodes)
        leader.kill()
        killed = time.monotonic()
        standbys = [n for n in nodes if n is not leader]
        successor = one_leader(standbys)
        took = successor.started[0] - killed
    assert sampler.overlaps == []
    # The standby must have waited for the lease (1 s after it last saw a change): well above the retry period.
    assert took > 0.5, took
    lease = spec(api)
    assert lease["holderIdentity"] == successor.identity
    assert lease["leaseTransitions"] == 1
    assert lease["acquireTime"] <= lease["renewTime"]


def test_sigterm_releases_so_a_standby_takes_over_at_once(api: FakeKubeAPI, nodes: list[Node]) -> None:
    # A long lease, so that a takeover well under it can only come from the release.
    nodes.extend(Node(api, name, lease_duration=5.0, renew_deadline=3.0).start() for name in "ab")
    with Sampler(nodes) as sampler:
        leader = one_leader(nodes)
        before = spec(api)["leaseTransitions"]
        begun = time.monotonic()
        leader.terminate()
        (successor,) = (n for n in nodes if n is not leader)
        wait_for(successor.is_leader, what="the standby to lead")
        took = successor.started[0] - begun
    assert sampler.overlaps == []
    assert took < 2.5, took  # half the lease duration; typically one retry period
    assert leader.stopped and leader.stopped[-1] < successor.started[0]
    lease = spec(api)
    assert lease["holderIdentity"] == successor.identity
    assert lease["leaseTransitions"] == before + 1
    assert lease["leaseDurationSeconds"] == 5


def test_partitioned_leader_stops_before_a_standby_starts(api: FakeKubeAPI, nodes: list[Node]) -> None:
    nodes.extend(Node(api, name).start() for name in "ab")
    with Sampler(nodes) as sampler:
        leader = one_leader(nodes)
        (standby,) = (n for n in nodes if n is not leader)
        rule = api.deny(user=leader.identity)  # every verb refused: the leader is cut off from the API server
        wait_for(lambda: bool(standby.started), what="the standby to lead")
        assert leader.stopped, "the partitioned leader never stopped"
        assert leader.stopped[0] < standby.started[0]
        assert not leader.is_leader()
        api.allow(rule)
        time.sleep(1.5)  # healed: the old leader sees the new holder and stays a standby
    assert sampler.overlaps == []
    assert leaders(nodes) == [standby]
    assert spec(api)["holderIdentity"] == standby.identity
    assert spec(api)["leaseTransitions"] == 1
    assert len(leader.started) == 1


def test_server_errors_while_leading_end_leadership_only_after_the_deadline(
    api: FakeKubeAPI, nodes: list[Node]
) -> None:
    node = Node(api, "a").start()
    nodes.append(node)
    wait_for(node.is_leader, what="a to lead")
    api.fail_next(2, status=500, resource="leases")  # a short blip: fewer than renew_deadline / retry_period
    time.sleep(0.5)
    assert node.stopped == []
    api.set_down(True)
    wait_for(lambda: bool(node.stopped), what="a to stop leading while the API server is down")
    assert not node.is_leader()
    api.set_down(False)
    wait_for(node.is_leader, what="a to lead again")
    assert spec(api)["holderIdentity"] == "a"
    assert spec(api)["leaseTransitions"] == 0  # same holder: no transition


class RacingClient(Client):
    """A client that lets another writer change the Lease between our read and our write."""

    race: Callable[[], None] | None = None

    def replace(self, *args: Any, **kwargs: Any) -> Any:
        if self.race is not None:
            race, self.race = self.race, None
            race()
        return super().replace(*args, **kwargs)


def test_stale_resource_version_loses_the_race(api: FakeKubeAPI, nodes: list[Node]) -> None:
    api.put_object(
        {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": LEASE, "namespace": NS},
            "spec": {"holderIdentity": "", "leaseDurationSeconds": 1, "leaseTransitions": 4},
        }
    )
    client = RacingClient(config=api.client_config(user="a"), trust_env=False)

    def competitor() -> None:
        lease = api.get_object("leases", NS, LEASE)
        assert lease is not None
        lease["spec"].update(holderIdentity="z", leaseDurationSeconds=1, leaseTransitions=5)
        api.put_object(lease)

    client.race = competitor
    node = Node(api, "a", client=client).start()
    nodes.append(node)

    def refused() -> bool:
        return 409 in [r.status for r in api.requests_by(user="a", verb="update")]

    wait_for(refused, what="a's stale update to be refused")
    assert not node.is_leader()
    assert spec(api)["holderIdentity"] == "z"
    # z never renews: a takes over once z's record has been unchanged for its lease duration.
    wait_for(node.is_leader, what="a to take over from z")
    assert spec(api)["leaseTransitions"] == 6


def test_candidates_racing_for_a_released_lease(api: FakeKubeAPI, nodes: list[Node]) -> None:
    api.put_object(
        {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": LEASE, "namespace": NS},
            "spec": {"holderIdentity": "", "leaseDurationSeconds": 1, "leaseTransitions": 7},
        }
    )
    mark = time.monotonic()
    nodes.extend(Node(api, name).start() for name in "abc")
    with Sampler(nodes) as sampler:
        leader = one_leader(nodes)
        time.sleep(0.5)
    assert sampler.overlaps == []
    assert spec(api)["leaseTransitions"] == 8  # one takeover, whoever won
    # Losers got 409 Conflict (or saw the new holder first) and wrote nothing.
    assert {w.user for w in api.writes("leases") if w.time > mark} == {leader.identity}


def test_never_two_leaders_through_kills_partitions_and_sigterm(api: FakeKubeAPI, nodes: list[Node]) -> None:
    """Chaos run with a fake publisher per node: a ConfigMap write only while is_leader()."""
    nodes.extend(Node(api, name).start() for name in "abc")
    done = threading.Event()
    publish_client = {n.identity: api.client(user=n.identity) for n in nodes}

    def publish(node: Node) -> None:
        client = publish_client[node.identity]
        count = 0
        while not done.is_set():
            if node.is_leader():
                count += 1
                with contextlib.suppress(Exception):  # partitioned: the write fails, as in a cluster
                    client.apply(_configmap(node.identity, count), field_manager=node.identity)
            done.wait(0.02)

    publishers = [threading.Thread(target=publish, args=(n,), daemon=True) for n in nodes]
    for thread in publishers:
        thread.start()
    transitions = []

    def published_by(node: Node) -> None:
        def last_writer() -> str | None:
            writes = api.writes("configmaps", NS, "carbon-intensity")
            return writes[-1].user if writes else None

        wait_for(lambda: last_writer() == node.identity, what=f"{node.identity} to publish")
        transitions.append(spec(api)["leaseTransitions"])

    with Sampler(nodes) as sampler:
        first = one_leader(nodes)
        published_by(first)
        rule = api.deny(user=first.identity)
        second = one_leader([n for n in nodes if n is not first])
        published_by(second)
        api.allow(rule)
        second.kill()
        third = one_leader([n for n in nodes if n is not second])
        published_by(third)
        third.terminate()
        (fourth,) = (n for n in nodes if n not in (second, third))
        wait_for(fourth.is_leader, what="the last node to lead")
        published_by(fourth)
    done.set()
    for thread in publishers:
        thread.join(WAIT)
    assert sampler.overlaps == []
    assert transitions == [0, 1, 2, 3]
    # The ConfigMap write log: each change of writer is one takeover, never an interleaving of two writers.
    writers = [w.user for w in api.writes("configmaps", NS, "carbon-intensity")]
    changes = [b for a, b in itertools.pairwise(writers) if a != b]
    assert [writers[0], *changes] == [first.identity, second.identity, third.identity, fourth.identity]


def _configmap(writer: str, count: int) -> ConfigMap:
    return ConfigMap(
        metadata=ObjectMeta(name="carbon-intensity", namespace=NS), data={"writer": writer, "n": str(count)}
    )
