"""Proves the fake API server's semantics with the real lightkube client (what the exporter will use)."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx2
import lightkube
import pytest
from lightkube import Client
from lightkube.core.exceptions import ApiError
from lightkube.models.coordination_v1 import LeaseSpec
from lightkube.models.core_v1 import ObjectReference
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.coordination_v1 import Lease
from lightkube.resources.core_v1 import ConfigMap
from lightkube.resources.core_v1 import Event as CoreEvent
from lightkube.resources.events_v1 import Event as EventsEvent
from lightkube.types import PatchType, on_error_raise, on_error_retry

from .kubeapi import FakeKubeAPI, fake_kube_api

NS = "kube-system"
WAIT = 10.0  # generous: only bounds a hang, never measures speed


@pytest.fixture
def api() -> Iterator[FakeKubeAPI]:
    with fake_kube_api() as server:
        yield server


@pytest.fixture
def client(api: FakeKubeAPI) -> Client:
    return api.client(namespace=NS)  # its connections are cut when the server stops


def cm(name: str = "carbon-intensity", data: dict[str, str] | None = None, **kw: Any) -> ConfigMap:
    return ConfigMap(metadata=ObjectMeta(name=name, namespace=NS, labels=kw.pop("labels", None)), data=data, **kw)


def status_of(exc: pytest.ExceptionInfo[ApiError]) -> tuple[int | None, str | None, str | None]:
    s = exc.value.status
    return s.code, s.reason, s.message


def stream(events: Iterable[Any]) -> queue.Queue[Any]:
    """Consume a blocking lightkube watch in a daemon thread; items or the final exception go to a queue."""
    q: queue.Queue[Any] = queue.Queue()

    def run() -> None:
        try:
            for ev in events:
                q.put(ev)
        except Exception as e:
            q.put(e)

    threading.Thread(target=run, daemon=True).start()
    return q


def take(q: queue.Queue[Any], n: int) -> list[Any]:
    out = [q.get(timeout=WAIT) for _ in range(n)]
    for item in out:
        if isinstance(item, Exception):
            raise item
    return out


def wait_for(cond: Any) -> None:
    deadline = time.monotonic() + WAIT
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


# ---------------------------------------------------------------- basics


def test_create_get_list_and_system_fields(api: FakeKubeAPI, client: Client) -> None:
    a = client.create(cm("a", {"k": "v"}, labels={"app": "x", "tier": "1"}))
    b = client.create(cm("b", {"k": "w"}, labels={"app": "y"}))
    assert a.metadata is not None and b.metadata is not None
    assert a.metadata.uid and a.metadata.uid != b.metadata.uid
    assert a.metadata.namespace == NS
    assert isinstance(a.metadata.creationTimestamp, datetime)
    assert int(b.metadata.resourceVersion or 0) > int(a.metadata.resourceVersion or 0)
    got = client.get(ConfigMap, "a")
    assert got.data == {"k": "v"} and got.metadata is not None and got.metadata.uid == a.metadata.uid

    assert [c.metadata.name for c in client.list(ConfigMap) if c.metadata] == ["a", "b"]
    assert [c.metadata.name for c in client.list(ConfigMap, labels={"app": "x"}) if c.metadata] == ["a"]
    sel = client.list(ConfigMap, labels={"app": "x", "tier": "1"})
    assert len(list(sel)) == 1
    assert [c.metadata.name for c in client.list(ConfigMap, fields={"metadata.name": "b"}) if c.metadata] == ["b"]
    assert list(client.list(ConfigMap, namespace="other")) == []
    listing = client.list(ConfigMap)
    list(listing)
    assert listing.resourceVersion == str(api.resource_version)


def test_not_found_is_a_typed_status(client: Client) -> None:
    with pytest.raises(ApiError) as exc:
        client.get(ConfigMap, "missing")
    assert status_of(exc) == (404, "NotFound", 'configmaps "missing" not found')
    assert exc.value.status.details is not None and exc.value.status.details.name == "missing"
    assert exc.value.response is not None and exc.value.response.headers["Content-Type"] == "application/json"
    with pytest.raises(ApiError) as exc:
        client.delete(ConfigMap, "missing")
    assert exc.value.status.code == 404


def test_already_exists(client: Client) -> None:
    client.create(cm("a"))
    with pytest.raises(ApiError) as exc:
        client.create(cm("a"))
    assert status_of(exc) == (409, "AlreadyExists", 'configmaps "a" already exists')


def test_create_with_resource_version_fails_like_the_real_server(client: Client) -> None:
    created = client.create(cm("a", {"k": "v"}))
    client.delete(ConfigMap, "a")
    with pytest.raises(ApiError) as exc:
        client.create(created)  # re-creating a fetched object verbatim is a classic bug
    assert exc.value.status.code == 500
    assert exc.value.status.message == "resourceVersion should not be set on objects to be created"


def test_stale_resource_version_conflicts(client: Client) -> None:
    first = client.create(cm("a", {"k": "1"}))
    fresh = client.get(ConfigMap, "a")
    fresh.data = {"k": "2"}
    updated = client.replace(fresh)
    assert updated.metadata is not None and first.metadata is not None
    assert int(updated.metadata.resourceVersion or 0) > int(first.metadata.resourceVersion or 0)
    first.data = {"k": "3"}
    with pytest.raises(ApiError) as exc:
        client.replace(first)
    code, reason, message = status_of(exc)
    assert (code, reason) == (409, "Conflict")
    assert message == (
        'Operation cannot be fulfilled on configmaps "a": the object has been modified; '
        "please apply your changes to the latest version and try again"
    )
    assert client.get(ConfigMap, "a").data == {"k": "2"}


def test_lease_optimistic_concurrency(api: FakeKubeAPI, client: Client) -> None:
    now = datetime.now(UTC)
    spec = LeaseSpec(
        holderIdentity="pod-a", leaseDurationSeconds=15, acquireTime=now, renewTime=now, leaseTransitions=0
    )
    lease = client.create(Lease(metadata=ObjectMeta(name="carbon-intensity-exporter", namespace=NS), spec=spec))
    assert api.get_object("leases", NS, "carbon-intensity-exporter") is not None
    assert api.get_object("leases.coordination.k8s.io", NS, "carbon-intensity-exporter") is not None
    mine = client.get(Lease, "carbon-intensity-exporter")
    theirs = client.get(Lease, "carbon-intensity-exporter")
    assert mine.spec is not None and theirs.spec is not None
    mine.spec.holderIdentity = "pod-b"
    mine.spec.leaseTransitions = 1
    client.replace(mine)
    theirs.spec.renewTime = datetime.now(UTC)
    with pytest.raises(ApiError) as exc:
        client.replace(theirs)
    assert exc.value.status.code == 409
    assert exc.value.status.message is not None
    assert exc.value.status.message.startswith("Operation cannot be fulfilled on leases.coordination.k8s.io")
    got = client.get(Lease, "carbon-intensity-exporter")
    assert got.spec is not None and got.spec.holderIdentity == "pod-b" and got.spec.leaseTransitions == 1
    assert lease.metadata is not None and got.metadata is not None and got.metadata.uid == lease.metadata.uid


def test_immutable_configmap_rejects_changes(client: Client) -> None:
    client.create(cm("a", {"k": "v"}, binaryData={"data": "W10="}, immutable=True))
    obj = client.get(ConfigMap, "a")
    obj.data = {"k": "changed"}
    with pytest.raises(ApiError) as exc:
        client.replace(obj)
    assert status_of(exc) == (
        422,
        "Invalid",
        'ConfigMap "a" is invalid: data: Forbidden: field is immutable when `immutable` is set',
    )
    with pytest.raises(ApiError) as exc:
        client.patch(ConfigMap, "a", {"binaryData": {"data": "e30="}}, patch_type=PatchType.MERGE)
    assert exc.value.status.code == 422
    assert "binaryData: Forbidden" in (exc.value.status.message or "")
    with pytest.raises(ApiError) as exc:
        client.patch(ConfigMap, "a", {"immutable": False})
    assert "immutable: Forbidden" in (exc.value.status.message or "")
    # metadata stays mutable, like on a real cluster
    patched = client.patch(ConfigMap, "a", {"metadata": {"labels": {"x": "y"}}})
    assert patched.metadata is not None and patched.metadata.labels == {"x": "y"}
    # the only way to change it: delete and create
    client.delete(ConfigMap, "a")
    client.create(cm("a", {"k": "new"}, immutable=True))
    assert client.get(ConfigMap, "a").data == {"k": "new"}


def test_configmap_validation(client: Client) -> None:
    with pytest.raises(ApiError) as exc:
        client.create(cm("a", {"bad key": "v"}))
    assert exc.value.status.code == 422
    with pytest.raises(ApiError) as exc:
        client.create(cm("Bad_Name"))
    assert exc.value.status.code == 422
    with pytest.raises(ApiError) as exc:
        client.create(cm("big", {"k": "x" * (1024 * 1024 + 1)}))
    assert exc.value.status.code == 422
    assert "Too long: must have at most 1048576 bytes" in (exc.value.status.message or "")


def test_patch_kinds_and_delete_status(api: FakeKubeAPI, client: Client) -> None:
    client.create(cm("a", {"k": "v", "drop": "me"}))
    out = client.patch(ConfigMap, "a", {"data": {"drop": None, "n": "1"}}, patch_type=PatchType.MERGE)
    assert out.data == {"k": "v", "n": "1"}
    out = client.patch(ConfigMap, "a", [{"op": "replace", "path": "/data/k", "value": "w"}], patch_type=PatchType.JSON)
    assert out.data == {"k": "w", "n": "1"}
    out = client.patch(ConfigMap, "a", {"data": {"m": "2"}})  # strategic, handled as a merge patch
    assert out.data == {"k": "w", "n": "1", "m": "2"}
    applied = client.apply(cm("b", {"x": "1"}), field_manager="test")
    assert applied.data == {"x": "1"}

    # delete answers a Success Status with Content-Type application/json, like the real server
    r = httpx2.delete(
        f"{api.url}/api/v1/namespaces/{NS}/configmaps/a",
        headers={"Authorization": "Bearer exporter"},
        trust_env=False,
    )
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/json"
    body = r.json()
    assert (body["kind"], body["status"], body["details"]["name"]) == ("Status", "Success", "a")


def test_events_core_and_events_api(client: Client) -> None:
    ref = ObjectReference(kind="ConfigMap", name="a", namespace=NS)
    client.create(
        CoreEvent(
            metadata=ObjectMeta(generateName="a.", namespace=NS),
            involvedObject=ref,
            reason="Published",
            message="ok",
            type="Normal",
        )
    )
    client.create(
        EventsEvent(
            metadata=ObjectMeta(name="e1", namespace=NS),
            eventTime=datetime.now(UTC),
            reportingController="x/y",
            reportingInstance="p",
            action="Publish",
            reason="Published",
            regarding=ref,
            type="Normal",
        )
    )
    core = list(client.list(CoreEvent))
    assert len(core) == 1 and core[0].metadata is not None and (core[0].metadata.name or "").startswith("a.")
    assert [e.reason for e in client.list(EventsEvent)] == ["Published"]


# ---------------------------------------------------------------- auth


def test_deny_rules_give_forbidden(api: FakeKubeAPI, client: Client) -> None:
    client.create(cm("a"))
    rule = api.deny(user="exporter", verb="delete", resource="configmaps")
    with pytest.raises(ApiError) as exc:
        client.delete(ConfigMap, "a")
    assert status_of(exc) == (
        403,
        "Forbidden",
        'configmaps "a" is forbidden: User "exporter" cannot delete resource "configmaps" in API group "" '
        'in the namespace "kube-system"',
    )
    client.get(ConfigMap, "a")  # other verbs still allowed
    other = api.client(user="admin", namespace=NS)
    other.delete(ConfigMap, "a")  # other users too
    api.allow(rule)
    client.create(cm("a"))
    client.delete(ConfigMap, "a")

    api.deny(verb="list", resource="leases", namespace=NS)
    with pytest.raises(ApiError) as exc:
        list(client.list(Lease))
    assert exc.value.status.code == 403
    assert 'in API group "coordination.k8s.io"' in (exc.value.status.message or "")


def test_kubeconfig_file_and_missing_token(api: FakeKubeAPI, tmp_path: Path) -> None:
    path = api.kubeconfig(tmp_path / "kubeconfig", user="system:serviceaccount:kube-system:cie")
    c = Client(config=lightkube.KubeConfig.from_file(path), namespace=NS, trust_env=False)
    c.create(cm("a"))
    assert api.requests[-1].user == "system:serviceaccount:kube-system:cie"
    assert api.writes("configmaps")[-1].user == "system:serviceaccount:kube-system:cie"
    r = httpx2.get(f"{api.url}/api/v1/namespaces/{NS}/configmaps/a", trust_env=False)
    assert r.status_code == 401 and r.json()["reason"] == "Unauthorized"


# ---------------------------------------------------------------- watch


def test_watch_sends_current_objects_then_live_events(api: FakeKubeAPI, client: Client) -> None:
    client.create(cm("a", {"k": "1"}))
    q = stream(client.watch(ConfigMap, namespace=NS))
    [(t, obj)] = take(q, 1)
    assert (t, obj.metadata.name) == ("ADDED", "a")
    client.patch(ConfigMap, "a", {"data": {"k": "2"}})
    client.delete(ConfigMap, "a")
    client.create(cm("a", {"k": "3"}))
    events = take(q, 3)
    assert [(t, o.data) for t, o in events] == [
        ("MODIFIED", {"k": "2"}),
        ("DELETED", {"k": "2"}),
        ("ADDED", {"k": "3"}),
    ]
    rvs = [int(o.metadata.resourceVersion) for _, o in events]
    assert rvs == sorted(rvs) and len(set(rvs)) == 3  # DELETED carries its own, newer resourceVersion


def test_watch_selectors_and_replay_from_resource_version(api: FakeKubeAPI, client: Client) -> None:
    client.create(cm("other", labels={"app": "no"}))
    start = api.resource_version
    client.create(cm("a", {"k": "1"}, labels={"app": "cie"}))
    client.create(cm("b", labels={"app": "no"}))
    client.patch(ConfigMap, "a", {"metadata": {"labels": {"app": "gone"}}})  # leaves the selection
    q = stream(client.watch(ConfigMap, namespace=NS, labels={"app": "cie"}, resource_version=str(start)))
    assert [(t, o.metadata.name) for t, o in take(q, 2)] == [("ADDED", "a"), ("DELETED", "a")]
    q2 = stream(client.watch(ConfigMap, namespace=NS, fields={"metadata.name": "b"}, resource_version=str(start)))
    assert [(t, o.metadata.name) for t, o in take(q2, 1)] == [("ADDED", "b")]


def test_watch_ends_at_timeout_and_lightkube_resumes(api: FakeKubeAPI, client: Client) -> None:
    q = stream(client.watch(ConfigMap, namespace=NS, server_timeout=1))
    wait_for(lambda: api.open_watches == 1)
    client.create(cm("a"))
    assert take(q, 1)[0][0] == "ADDED"
    wait_for(lambda: len([r for r in api.requests if r.verb == "watch"]) >= 2)  # reconnected after timeout
    client.delete(ConfigMap, "a")
    assert take(q, 1)[0][0] == "DELETED"
    watches = [r for r in api.requests if r.verb == "watch"]
    assert "resourceVersion" not in watches[0].query and "resourceVersion=" in watches[1].query
    assert q.empty()


def test_too_old_resource_version_gives_410(api: FakeKubeAPI, client: Client) -> None:
    client.create(cm("a"))
    old = str(api.resource_version)
    client.create(cm("b"))
    api.compact()
    with pytest.raises(ApiError) as exc:
        for _ in client.watch(ConfigMap, namespace=NS, resource_version=old, on_error=on_error_raise):
            pass
    assert (exc.value.status.code, exc.value.status.reason) == (410, "Expired")
    assert (exc.value.status.message or "").startswith(f"too old resource version: {old} (")
    # lightkube's retry handler drops the resourceVersion on 410 and re-lists through ADDED events
    q = stream(client.watch(ConfigMap, namespace=NS, resource_version=old, on_error=on_error_retry))
    assert sorted(o.metadata.name for _, o in take(q, 2)) == ["a", "b"]


def test_drop_watches_and_resume_without_losing_events(api: FakeKubeAPI, client: Client) -> None:
    q = stream(client.watch(ConfigMap, namespace=NS, on_error=on_error_retry))
    wait_for(lambda: api.open_watches == 1)
    client.create(cm("a"))
    assert take(q, 1)[0][0] == "ADDED"
    api.drop_watches()  # cut mid-stream: lightkube's on_error sees it and re-watches from the last version
    api.put_object({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b", "namespace": NS}})
    assert [(t, o.metadata.name) for t, o in take(q, 1)] == [("ADDED", "b")]  # replayed or live, exactly once
    wait_for(lambda: api.open_watches == 1)
    client.delete(ConfigMap, "a")
    assert [(t, o.metadata.name) for t, o in take(q, 1)] == [("DELETED", "a")]
    assert q.empty()

    strict = stream(client.watch(ConfigMap, namespace=NS, resource_version=str(api.resource_version)))
    wait_for(lambda: api.open_watches == 2)
    api.drop_watches()
    err = strict.get(timeout=WAIT)
    assert isinstance(err, httpx2.TransportError)  # with on_error_raise the cut surfaces to the caller


def test_watch_reconnect_failure_escapes_on_error(api: FakeKubeAPI, client: Client) -> None:
    """lightkube quirk: on_error only covers errors after the response started; a failed reconnect raises."""
    q = stream(client.watch(ConfigMap, namespace=NS, on_error=on_error_retry))
    wait_for(lambda: api.open_watches == 1)
    api.set_down(True)
    err = q.get(timeout=WAIT)
    assert isinstance(err, httpx2.TransportError)
    api.set_down(False)


# ---------------------------------------------------------------- faults and observation


def test_fail_next(api: FakeKubeAPI, client: Client) -> None:
    client.create(cm("a"))
    api.fail_next(2, status=500, verb="get", resource="configmaps")
    for _ in range(2):
        with pytest.raises(ApiError) as exc:
            client.get(ConfigMap, "a")
        assert (exc.value.status.code, exc.value.status.reason) == (500, "InternalError")
    client.get(ConfigMap, "a")
    api.fail_next(1, status=503, verb="create")
    client.get(ConfigMap, "a")  # not matching: unaffected
    with pytest.raises(ApiError) as exc:
        client.create(cm("b"))
    assert exc.value.status.code == 503
    client.create(cm("b"))
    assert [r.status for r in api.requests_by(verb="create")] == [201, 503, 201]


def test_set_down_refuses_connections_then_recovers_on_same_port(api: FakeKubeAPI, client: Client) -> None:
    client.create(cm("a"))
    url = api.url
    api.set_down(True)
    with pytest.raises(httpx2.TransportError):
        client.get(ConfigMap, "a")
    with pytest.raises(httpx2.ConnectError):
        httpx2.get(f"{url}/api/v1/namespaces/{NS}/configmaps/a", trust_env=False)
    api.set_down(False)
    assert api.url == url
    assert client.get(ConfigMap, "a").metadata is not None  # the same client reconnects


def test_latency(api: FakeKubeAPI, client: Client) -> None:
    api.latency = 0.2
    t0 = time.monotonic()
    with pytest.raises(ApiError):
        client.get(ConfigMap, "a")
    assert time.monotonic() - t0 >= 0.2


def test_write_log_absence_windows_and_direct_state(api: FakeKubeAPI, client: Client) -> None:
    seeded = api.put_object(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "carbon-intensity", "namespace": NS},
            "data": {"k": "0"},
        }
    )
    assert seeded["metadata"]["resourceVersion"] == str(api.resource_version)
    assert client.get(ConfigMap, "carbon-intensity").data == {"k": "0"}
    for i in range(2):
        client.delete(ConfigMap, "carbon-intensity")
        client.create(cm("carbon-intensity", {"k": str(i)}))
    windows = api.absence_windows("configmaps", NS, "carbon-intensity")
    assert len(windows) == 2 and all(0 <= w < WAIT for w in windows)
    verbs = [(w.user, w.verb) for w in api.writes("configmaps", NS, "carbon-intensity")]
    assert verbs == [(None, "create")] + [("exporter", "delete"), ("exporter", "create")] * 2
    assert api.delete_object("configmaps", NS, "carbon-intensity")
    assert api.get_object("configmaps", NS, "carbon-intensity") is None
    assert not api.delete_object("configmaps", NS, "carbon-intensity")
