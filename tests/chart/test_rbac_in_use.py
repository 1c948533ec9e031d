"""The chart's Role is enough for what the exporter really does: run the wired exporter (publish, recreate
after deletion, Events, leader election, shutdown) against the fake API server, then check every request it
made against the rules the chart renders. A request the Role would not allow fails the test."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import helm_python as helm
import yaml

from carbon_intensity_exporter.app import run_exporter
from carbon_intensity_exporter.settings import load_settings
from tests.fakes.kubeapi import FakeKubeAPI
from tests.polling import wait_for

CHART = Path(__file__).resolve().parents[2] / "charts" / "carbon-intensity-exporter"


def role_rules(values: str) -> list[dict[str, Any]]:
    with helm.Chart.load(str(CHART)) as chart:
        rendered = chart.render(values=helm.parse_set_string(values), name="carbon-intensity-exporter",
                                namespace="default", is_install=True)
    texts = [text for path, text in rendered.items() if path.endswith((".yaml", ".yml"))]
    docs = [doc for text in texts for doc in yaml.safe_load_all(text) if doc]
    assert not [doc for doc in docs if doc["kind"] in ("ClusterRole", "ClusterRoleBinding")]
    (role,) = [doc for doc in docs if doc["kind"] == "Role"]
    rules: list[dict[str, Any]] = role["rules"]
    return rules


def allowed(rules: list[dict[str, Any]], verb: str, resource: str, name: str | None) -> bool:
    plural, _, group = resource.partition(".")
    for rule in rules:
        if group not in rule["apiGroups"] or plural not in rule["resources"] or verb not in rule["verbs"]:
            continue
        if "resourceNames" in rule and name not in rule["resourceNames"]:
            continue
        return True
    return False


def test_the_role_covers_every_request_of_a_leader_elected_exporter(kubeapi: FakeKubeAPI) -> None:
    rules = role_rules("providerName=Sample,replicaCount=2,carbonDataExporter.additionalRegions={eastus}")
    settings = load_settings(provider="Sample", region="westus", additional_regions="eastus", leader_election=True,
                             lease_duration="1.5s", refresh_interval="1s", metrics_port=0, pod_name="exporter-0")
    stop = threading.Event()
    thread = threading.Thread(target=run_exporter, args=(settings,),
                              kwargs={"once": False, "dry_run": False, "stop": stop, "client": kubeapi.client()})
    thread.start()
    try:
        assert wait_for(lambda: kubeapi.get_object("configmaps", "kube-system", "carbon-intensity-eastus") is not None)
        kubeapi.delete_object("configmaps", "kube-system", "carbon-intensity")
        assert wait_for(lambda: kubeapi.get_object("configmaps", "kube-system", "carbon-intensity") is not None)
        time.sleep(1.5)  # a refresh and a few Lease renewals
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()
    requests = [r for r in kubeapi.requests if r.resource is not None and r.user == "exporter"]
    verbs_seen = {(r.verb, r.resource) for r in requests}
    assert {("create", "configmaps"), ("delete", "configmaps"), ("watch", "configmaps"), ("get", "configmaps"),
            ("update", "leases.coordination.k8s.io"), ("create", "events.events.k8s.io")} <= verbs_seen
    refused = [(r.verb, r.resource, r.name) for r in requests
               if r.resource is not None and not allowed(rules, r.verb, r.resource, r.name)]
    assert refused == []
