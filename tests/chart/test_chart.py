"""The Helm chart, rendered and linted by real Helm (helm-python-sdk, in process, no cluster).

Every scenario renders the chart as `helm install carbon-intensity-exporter ... ./charts/...` would with no
`-n` (release namespace "default"); every rendered manifest is validated against the Kubernetes schemas of
the latest release kubernetes-validate knows, in strict mode. The env names the Deployment sets are checked
against the program's Settings fields, and the rendered env values are fed to Settings, so the chart and the
program cannot drift apart.
"""

from __future__ import annotations

import base64
import json
import re
import shlex
import string
from collections.abc import Iterator
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

from carbon_intensity_exporter.settings import ProviderName, Settings

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "carbon-intensity-exporter"
RELEASE = "carbon-intensity-exporter"
NAMESPACE = "kube-system"
K8S_VERSION = kubernetes_validate.utils.latest_version()
RESTRICTED_UID = 10001

Doc = dict[str, Any]

# The documented commands (reference/seed-commands.md), verbatim, with the environment the docs export.
SEED_COMMANDS: dict[str, tuple[dict[str, str], str]] = {
    "WattTime": (
        {"WT_USERNAME": "XXXX", "WT_PASSWORD": "YYYY", "REGION": "westus"},
        """helm install carbon-intensity-exporter \\
      --set carbonDataExporter.region=$REGION \\
      --set wattTime.username=$WT_USERNAME \\
      --set wattTime.password=$WT_PASSWORD \\
      ./charts/carbon-intensity-exporter""",
    ),
    "ElectricityMaps": (
        {
            "EM_API_TOKEN": "XXXX",
            "EM_API_TOKEN_HEADER": "auth-token",
            "EM_BASE_URL": "https://api.electricitymap.org/v3/",
            "PROVIDER": "ElectricityMaps",
            "REGION": "westus",
        },
        """helm install carbon-intensity-exporter \\
      --set carbonDataExporter.region=$REGION \\
      --set providerName=$PROVIDER \\
      --set electricityMaps.apiToken=$EM_API_TOKEN \\
      --set electricityMaps.apiTokenHeader=$EM_API_TOKEN_HEADER \\
      --set electricityMaps.baseURL=$EM_BASE_URL \\
      ./charts/carbon-intensity-exporter""",
    ),
}

FORECAST_JSON = json.dumps(
    [{"location": "CAISO_NORTH", "timestamp": "2026-12-04T13:00:00Z", "duration": 5, "value": 234.5612}]
)


def _merge(into: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value
    return into


def parse_helm_command(command: str, env: dict[str, str]) -> tuple[str, dict[str, Any], str]:
    """(release name, values, chart path) of a `helm install` line, `--set` applied in order like Helm."""
    words = shlex.split(string.Template(command.replace("\\\n", " ")).substitute(env))
    assert words[:2] == ["helm", "install"], words
    assert "-n" not in words and "--namespace" not in words  # the documented commands have no -n
    values: dict[str, Any] = {}
    positional: list[str] = []
    rest = iter(words[2:])
    for word in rest:
        if word == "--set":
            _merge(values, helm.parse_set_string(next(rest)))
        else:
            assert not word.startswith("-"), f"unexpected flag {word}"
            positional.append(word)
    name, chart = positional
    return name, values, chart


def _set(*expressions: str) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for expression in expressions:
        _merge(values, helm.parse_set_string(expression))
    return values


SCENARIOS: dict[str, dict[str, Any]] = {
    **{f"seed-{name}": parse_helm_command(cmd, env)[1] for name, (env, cmd) in SEED_COMMANDS.items()},
    "UKCarbonIntensity": _set("providerName=UKCarbonIntensity", "carbonDataExporter.providerRegion=13"),
    "CarbonAwareSDK": _set("providerName=CarbonAwareSDK", "carbonAwareSDK.url=http://carbon-aware-sdk:8080"),
    "File-inline": {"providerName": "File", "file": {"forecast": FORECAST_JSON}},
    "File-existing": _set("providerName=File", "file.existingConfigMap=my-forecast", "file.key=data.json"),
    "Sample": _set("providerName=Sample"),
    "existingSecret-WattTime": _set("existingSecret=wt-credentials"),
    "existingSecret-ElectricityMaps": _set("providerName=ElectricityMaps", "existingSecret=em-credentials"),
    "replicaCount-2": _set("providerName=Sample", "replicaCount=2"),
    "serviceMonitor": _set("providerName=Sample", "serviceMonitor.enabled=true", "serviceMonitor.labels.release=kps"),
    "grafanaDashboard": _set("providerName=Sample", "grafanaDashboard.enabled=true"),
    "additionalRegions": _set(
        "providerName=Sample",
        "carbonDataExporter.region=westus",
        "carbonDataExporter.additionalRegions={eastus,aws:eu-west-1,westus}",
    ),
    "scheduling": _set(
        "providerName=Sample",
        "nodeSelector.kubernetes\\.io/os=linux",
        "tolerations[0].key=CriticalAddonsOnly,tolerations[0].operator=Exists",
        # one --set, as list items given in separate --set flags are not merged by _merge
        ",".join(
            f"affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0]"
            f".matchExpressions[0].{item}"
            for item in ("key=kubernetes.io/arch", "operator=In", "values={amd64,arm64}")
        ),
        "podAnnotations.example\\.com/team=platform",
        "imagePullSecrets[0].name=regcred",
        "image.repository=ghcr.io/example/carbon-intensity-exporter,image.tag=1.2.3,image.pullPolicy=Always",
        "logFormat=text,logLevel=DEBUG,metrics.port=9200",
    ),
}


@pytest.fixture(scope="module")
def chart() -> Iterator[helm.Chart]:
    with helm.Chart.load(str(CHART)) as loaded:
        yield loaded


_RENDERED: dict[str, dict[str, str]] = {}


def render(chart: helm.Chart, values: dict[str, Any]) -> dict[str, str]:
    """{template path: YAML} as `helm install carbon-intensity-exporter` without -n renders it."""
    key = json.dumps(values, sort_keys=True)
    if key not in _RENDERED:
        _RENDERED[key] = chart.render(values=values, name=RELEASE, namespace="default", is_install=True)
    return _RENDERED[key]


def manifests(chart: helm.Chart, values: dict[str, Any]) -> list[Doc]:
    docs: list[Doc] = []
    for path, text in sorted(render(chart, values).items()):
        if path.endswith("NOTES.txt"):
            continue
        docs.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return docs


def one(docs: list[Doc], kind: str) -> Doc:
    found = [doc for doc in docs if doc["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def container(docs: list[Doc]) -> Doc:
    containers = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1  # one container: the exporter talks to the providers itself
    result: Doc = containers[0]
    return result


def env_of(docs: list[Doc]) -> dict[str, Doc]:
    return {entry["name"]: entry for entry in container(docs)["env"]}


@cache
def schema_of_servicemonitor() -> Doc:
    """The parts of the monitoring.coreos.com/v1 ServiceMonitor CRD schema the chart uses (operator 0.84)."""
    duration = {"type": "string", "pattern": r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?"
                r"(([0-9]+)s)?(([0-9]+)ms)?)$"}
    labels = {"type": "object", "additionalProperties": {"type": "string"}}
    return {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "additionalProperties": False,
        "properties": {
            "apiVersion": {"const": "monitoring.coreos.com/v1"},
            "kind": {"const": "ServiceMonitor"},
            "metadata": {"type": "object", "required": ["name", "namespace"],
                         "properties": {"name": {"type": "string"}, "namespace": {"type": "string"},
                                        "labels": labels}},
            "spec": {
                "type": "object",
                "required": ["selector", "endpoints"],
                "additionalProperties": False,
                "properties": {
                    "selector": {"type": "object", "additionalProperties": False,
                                 "properties": {"matchLabels": labels}},
                    "namespaceSelector": {"type": "object", "additionalProperties": False,
                                          "properties": {"matchNames": {"type": "array",
                                                                        "items": {"type": "string"}}}},
                    "endpoints": {"type": "array", "minItems": 1, "items": {
                        "type": "object", "additionalProperties": False,
                        "properties": {"port": {"type": "string"}, "path": {"type": "string"},
                                       "interval": duration, "scrapeTimeout": duration}}},
                },
            },
        },
    }


def validate(doc: Doc) -> None:
    if doc["apiVersion"].startswith("monitoring.coreos.com/"):
        import jsonschema  # type: ignore[import-untyped]

        jsonschema.validate(doc, schema_of_servicemonitor())
        return
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


# --------------------------------------------------------------------------------------------------------
# The documented commands


@pytest.mark.parametrize("provider", sorted(SEED_COMMANDS))
def test_documented_command_installs_one_exporter_into_kube_system(chart: helm.Chart, provider: str) -> None:
    env, command = SEED_COMMANDS[provider]
    name, values, chart_path = parse_helm_command(command, env)
    assert name == RELEASE
    assert (ROOT / chart_path).resolve() == CHART
    docs = manifests(chart, values)

    kinds = sorted(doc["kind"] for doc in docs)
    assert kinds == ["Deployment", "Role", "RoleBinding", "Secret", "Service", "ServiceAccount"]
    assert {doc["metadata"]["namespace"] for doc in docs} == {NAMESPACE}
    deployment = one(docs, "Deployment")
    assert deployment["metadata"]["name"] == RELEASE  # pods: carbon-intensity-exporter-XXXXXXX-XXXXX
    assert deployment["spec"]["replicas"] == 1
    exporter = container(docs)
    assert exporter["args"] == ["run"]
    assert "command" not in exporter  # the image's ENTRYPOINT is carbon-intensity-exporter
    env_vars = env_of(docs)
    assert env_vars["PROVIDER"]["value"] == provider
    assert env_vars["REGION"]["value"] == env["REGION"]
    assert env_vars["NAMESPACE"]["value"] == NAMESPACE
    assert env_vars["CONFIGMAP_NAME"]["value"] == "carbon-intensity"
    assert env_vars["REFRESH_INTERVAL"]["value"] == "12h"

    secret = one(docs, "Secret")
    decoded = {key: base64.b64decode(value).decode() for key, value in secret["data"].items()}
    if provider == "WattTime":
        assert decoded == {"wt-username": env["WT_USERNAME"], "wt-password": env["WT_PASSWORD"]}
        assert env_vars["WT_USERNAME"]["valueFrom"]["secretKeyRef"] == {"name": RELEASE, "key": "wt-username"}
        assert env_vars["WT_PASSWORD_FILE"]["value"] == "/var/run/secrets/carbon-intensity-exporter/wt-password"
    else:
        assert decoded == {"em-api-token": env["EM_API_TOKEN"]}
        assert env_vars["EM_API_TOKEN_FILE"]["value"] == "/var/run/secrets/carbon-intensity-exporter/em-api-token"
        assert env_vars["EM_API_TOKEN_HEADER"]["value"] == env["EM_API_TOKEN_HEADER"]
        assert env_vars["EM_BASE_URL"]["value"] == env["EM_BASE_URL"]


def test_notes_tell_the_user_how_to_see_the_configmap_and_metrics(chart: helm.Chart) -> None:
    notes = render(chart, SCENARIOS["seed-WattTime"])[f"{RELEASE}/templates/NOTES.txt"]
    assert "kubectl get configmap -n kube-system carbon-intensity -o yaml" in notes
    assert "kubectl port-forward -n kube-system svc/carbon-intensity-exporter 9102:9102" in notes
    assert "/metrics" in notes
    assert "helm -n default" in notes  # the release record stays in the release namespace


# --------------------------------------------------------------------------------------------------------
# Every scenario: schemas, pod security, secrets, namespace, program settings


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_every_manifest_validates_against_the_kubernetes_schemas(chart: helm.Chart, scenario: str) -> None:
    docs = manifests(chart, SCENARIOS[scenario])
    assert docs
    for doc in docs:
        validate(doc)


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_everything_lands_in_kube_system_without_dash_n(chart: helm.Chart, scenario: str) -> None:
    for doc in manifests(chart, SCENARIOS[scenario]):
        assert doc["metadata"]["namespace"] == NAMESPACE, doc["kind"]
    binding = one(manifests(chart, SCENARIOS[scenario]), "RoleBinding")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": RELEASE, "namespace": NAMESPACE}]


def test_namespace_value_moves_everything(chart: helm.Chart) -> None:
    docs = manifests(chart, _set("providerName=Sample", "namespace=carbon", "grafanaDashboard.enabled=true"))
    assert {doc["metadata"]["namespace"] for doc in docs} == {"carbon"}
    assert env_of(docs)["NAMESPACE"]["value"] == "carbon"


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_pod_meets_the_restricted_pod_security_standard(chart: helm.Chart, scenario: str) -> None:
    docs = manifests(chart, SCENARIOS[scenario])
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == RESTRICTED_UID
    assert pod["securityContext"]["runAsGroup"] == RESTRICTED_UID
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is True  # it talks to the API server
    assert "hostNetwork" not in pod and "hostPID" not in pod and "hostIPC" not in pod
    assert not pod.get("initContainers") and not pod.get("ephemeralContainers")
    exporter = container(docs)
    security = exporter["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["runAsUser"] == RESTRICTED_UID
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["privileged"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    assert "ports" not in exporter or all("hostPort" not in port for port in exporter["ports"])
    # restricted allows only these volume types; /tmp is a writable emptyDir under the read-only root
    allowed = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
               "projected", "secret"}
    for volume in pod["volumes"]:
        assert set(volume) - {"name"} <= allowed, volume
    mounts = {mount["mountPath"]: mount["name"] for mount in exporter["volumeMounts"]}
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_probes_resources_and_port(chart: helm.Chart, scenario: str) -> None:
    docs = manifests(chart, SCENARIOS[scenario])
    exporter = container(docs)
    port = int(env_of(docs)["METRICS_PORT"]["value"])
    assert exporter["ports"] == [{"name": "metrics", "containerPort": port, "protocol": "TCP"}]
    assert exporter["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert exporter["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert exporter["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert exporter["resources"] == {"requests": {"cpu": "10m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}}
    service = one(docs, "Service")
    assert service["spec"]["ports"] == [{"name": "metrics", "port": port, "targetPort": "metrics", "protocol": "TCP"}]
    assert service["spec"]["selector"] == one(docs, "Deployment")["spec"]["selector"]["matchLabels"]


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_env_names_are_settings_fields_and_values_are_valid_settings(
    chart: helm.Chart, scenario: str, tmp_path: Path
) -> None:
    """The chart's env names are the program's settings, and the program accepts the chart's values."""
    docs = manifests(chart, SCENARIOS[scenario])
    fields = {name.upper() for name in Settings.model_fields}
    env_vars = env_of(docs)
    unknown = sorted(set(env_vars) - fields)
    assert not unknown, f"the Deployment sets env vars the program does not read: {unknown}"

    given: dict[str, Any] = {}
    for name, entry in env_vars.items():
        if "value" in entry:
            value = entry["value"]
            if name.endswith("_FILE"):  # a mounted file: stand in a local one
                stand_in = tmp_path / name.lower()
                stand_in.write_text("secret-from-file\n")
                value = str(stand_in)
            given[name.lower()] = value
        else:
            source = entry["valueFrom"]
            assert set(source) <= {"secretKeyRef", "fieldRef"}, source
            given[name.lower()] = "from-" + next(iter(source))
    settings = Settings(**given)
    assert settings.provider == ProviderName.parse(SCENARIOS[scenario].get("providerName", "WattTime"))
    assert settings.namespace == NAMESPACE
    assert settings.refresh_interval == timedelta(hours=12)
    assert settings.leader_election is (int(SCENARIOS[scenario].get("replicaCount", 1)) > 1)
    assert settings.pod_name == "from-fieldRef"
    if settings.provider is ProviderName.WATTTIME:
        assert settings.wt_username == "from-secretKeyRef"
        assert settings.wt_password is not None
        assert settings.wt_password.get_secret_value() == "secret-from-file"
    if settings.provider is ProviderName.ELECTRICITY_MAPS:
        assert settings.em_api_token is not None
        assert settings.em_api_token.get_secret_value() == "secret-from-file"


def _plain_secrets(values: dict[str, Any]) -> list[str]:
    return [
        str(value)
        for value in (
            values.get("wattTime", {}).get("username"),
            values.get("wattTime", {}).get("password"),
            values.get("electricityMaps", {}).get("apiToken"),
        )
        if value
    ]


@pytest.mark.parametrize(
    "values",
    [
        _set("wattTime.username=wt-user-7f3a", "wattTime.password=wt-pass-9c1e"),
        _set("providerName=ElectricityMaps", "electricityMaps.apiToken=em-token-5b2d"),
    ],
    ids=["WattTime", "ElectricityMaps"],
)
def test_credentials_live_only_in_the_secret(chart: helm.Chart, values: dict[str, Any]) -> None:
    secrets = _plain_secrets(values)
    docs = manifests(chart, values)
    for entry in env_of(docs).values():
        assert entry.get("value") not in secrets
        assert "value" in entry or set(entry["valueFrom"]) <= {"secretKeyRef", "fieldRef"}
    rendered = render(chart, values)
    for path, text in rendered.items():
        for secret in secrets:
            assert secret not in text, f"{secret!r} in plain text in {path}"
            if not path.endswith("secret.yaml"):
                assert base64.b64encode(secret.encode()).decode() not in text, path
    secret_doc = one(docs, "Secret")
    assert "stringData" not in secret_doc
    assert sorted(base64.b64decode(v).decode() for v in secret_doc["data"].values()) == sorted(secrets)
    # the password/token is a read-only mounted file, readable by the pod's group only
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    credentials = next(volume for volume in pod["volumes"] if volume["name"] == "credentials")
    assert credentials["secret"]["defaultMode"] == 0o440
    assert pod["securityContext"]["fsGroup"] == RESTRICTED_UID
    mount = next(m for m in container(docs)["volumeMounts"] if m["name"] == "credentials")
    assert mount["readOnly"] is True


def test_numeric_credentials_from_set_are_kept_as_given(chart: helm.Chart) -> None:
    """`--set wattTime.password=00123456` and `=12345678` (Helm parses the second as an integer)."""
    for password in ("00123456", "12345678"):
        values = _set("wattTime.username=4242", f"wattTime.password={password}")
        secret = one(manifests(chart, values), "Secret")
        assert base64.b64decode(secret["data"]["wt-password"]).decode() == password
        assert base64.b64decode(secret["data"]["wt-username"]).decode() == "4242"


@pytest.mark.parametrize("provider", ["WattTime", "ElectricityMaps"])
def test_existing_secret_is_used_and_no_secret_is_created(chart: helm.Chart, provider: str) -> None:
    docs = manifests(chart, SCENARIOS[f"existingSecret-{provider}"])
    existing = "wt-credentials" if provider == "WattTime" else "em-credentials"
    assert not [doc for doc in docs if doc["kind"] == "Secret"]
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    credentials = next(volume for volume in pod["volumes"] if volume["name"] == "credentials")
    assert credentials["secret"]["secretName"] == existing
    keys = [item["key"] for item in credentials["secret"]["items"]]
    env_vars = env_of(docs)
    if provider == "WattTime":
        assert keys == ["wt-password"]
        assert env_vars["WT_USERNAME"]["valueFrom"]["secretKeyRef"] == {"name": existing, "key": "wt-username"}
    else:
        assert keys == ["em-api-token"]


@pytest.mark.parametrize("provider", ["UKCarbonIntensity", "CarbonAwareSDK", "File-inline", "Sample"])
def test_providers_without_credentials_get_no_secret(chart: helm.Chart, provider: str) -> None:
    docs = manifests(chart, SCENARIOS[provider])
    assert not [doc for doc in docs if doc["kind"] == "Secret"]
    assert not [name for name in env_of(docs) if name.startswith(("WT_", "EM_"))]


def test_each_provider_gets_its_own_settings(chart: helm.Chart) -> None:
    uk = env_of(manifests(chart, SCENARIOS["UKCarbonIntensity"]))
    assert uk["UKCI_BASE_URL"]["value"] == "https://api.carbonintensity.org.uk"
    assert uk["PROVIDER_REGION"]["value"] == "13"
    sdk = env_of(manifests(chart, SCENARIOS["CarbonAwareSDK"]))
    assert sdk["CARBON_AWARE_SDK_URL"]["value"] == "http://carbon-aware-sdk:8080"
    wt = env_of(manifests(chart, _set("wattTime.username=u,wattTime.password=p,wattTime.signalType=co2_aoer")))
    assert wt["WT_SIGNAL_TYPE"]["value"] == "co2_aoer"
    assert wt["WT_BASE_URL"]["value"] == "https://api.watttime.org/v3/"
    assert wt["WT_LOGIN_URL"]["value"] == "https://api.watttime.org/login"


@pytest.mark.parametrize("scenario", ["File-inline", "File-existing"])
def test_file_provider_mounts_the_forecast(chart: helm.Chart, scenario: str) -> None:
    docs = manifests(chart, SCENARIOS[scenario])
    env_vars = env_of(docs)
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    volume = next(volume for volume in pod["volumes"] if volume["name"] == "forecast")
    mount = next(m for m in container(docs)["volumeMounts"] if m["name"] == "forecast")
    key = volume["configMap"]["items"][0]["path"]
    assert env_vars["FORECAST_FILE"]["value"] == f"{mount['mountPath']}/{key}"
    configmaps = [doc for doc in docs if doc["kind"] == "ConfigMap"]
    if scenario == "File-inline":
        (forecast,) = configmaps
        assert forecast["metadata"]["name"] == volume["configMap"]["name"]
        assert json.loads(forecast["data"][key]) == json.loads(FORECAST_JSON)
        # not mistaken for a published forecast: the exporter watches app.kubernetes.io/name=<ours>
        assert "app.kubernetes.io/name" not in forecast["metadata"]["labels"]
    else:
        assert not configmaps
        assert volume["configMap"]["name"] == "my-forecast"
        assert key == "data.json"


def test_additional_regions_are_passed_comma_separated(chart: helm.Chart) -> None:
    env_vars = env_of(manifests(chart, SCENARIOS["additionalRegions"]))
    assert env_vars["ADDITIONAL_REGIONS"]["value"] == "eastus,aws:eu-west-1,westus"


# --------------------------------------------------------------------------------------------------------
# RBAC: exactly what the exporter does


def _rules(docs: list[Doc]) -> list[Doc]:
    rules: list[Doc] = one(docs, "Role")["rules"]
    return rules


def test_rbac_is_a_namespaced_role_with_exactly_the_exporters_verbs(chart: helm.Chart) -> None:
    docs = manifests(chart, SCENARIOS["seed-WattTime"])
    assert not [doc for doc in docs if doc["kind"] in {"ClusterRole", "ClusterRoleBinding"}]
    assert _rules(docs) == [
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create", "list", "watch"]},
        {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["carbon-intensity"],
         "verbs": ["get", "delete"]},
        {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]},
    ]
    binding = one(docs, "RoleBinding")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": RELEASE}
    deployment = one(docs, "Deployment")
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == RELEASE
    assert one(docs, "ServiceAccount")["metadata"]["name"] == RELEASE


def test_replica_count_2_turns_on_leader_election_with_lease_rules(chart: helm.Chart) -> None:
    docs = manifests(chart, SCENARIOS["replicaCount-2"])
    deployment = one(docs, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"] == {
        "type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    assert env_of(docs)["LEADER_ELECTION"]["value"] == "true"
    assert env_of(docs)["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert _rules(docs)[3:] == [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "resourceNames": ["carbon-intensity-leader"],
         "verbs": ["get", "update"]},
    ]


def test_single_replica_has_no_lease_rights_and_never_two_writers(chart: helm.Chart) -> None:
    docs = manifests(chart, SCENARIOS["Sample"])
    assert env_of(docs)["LEADER_ELECTION"]["value"] == "false"
    assert one(docs, "Deployment")["spec"]["strategy"] == {"type": "Recreate"}
    assert not [rule for rule in _rules(docs) if "coordination.k8s.io" in rule["apiGroups"]]


def test_configmap_rights_name_exactly_the_configmaps_the_program_publishes(chart: helm.Chart) -> None:
    values = SCENARIOS["additionalRegions"]
    docs = manifests(chart, values)
    env_vars = env_of(docs)
    settings = Settings(
        region=env_vars["REGION"]["value"],
        additional_regions=env_vars["ADDITIONAL_REGIONS"]["value"],
        configmap_name=env_vars["CONFIGMAP_NAME"]["value"],
        provider="Sample",
    )
    published = [settings.configmap_name_for(region) for region in settings.regions]
    assert published == ["carbon-intensity", "carbon-intensity-eastus", "carbon-intensity-aws-eu-west-1"]
    assert _rules(docs)[1]["resourceNames"] == published


# --------------------------------------------------------------------------------------------------------
# Optional objects


def test_service_monitor_scrapes_the_metrics_port(chart: helm.Chart) -> None:
    docs = manifests(chart, SCENARIOS["serviceMonitor"])
    monitor = one(docs, "ServiceMonitor")
    service = one(docs, "Service")
    assert monitor["metadata"]["labels"]["release"] == "kps"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    assert monitor["spec"]["endpoints"] == [
        {"port": "metrics", "path": "/metrics", "interval": "1m", "scrapeTimeout": "10s"}]
    assert not [doc for doc in manifests(chart, SCENARIOS["Sample"]) if doc["kind"] == "ServiceMonitor"]


def test_grafana_dashboard_configmap_holds_a_dashboard_of_our_metrics(chart: helm.Chart) -> None:
    docs = manifests(chart, SCENARIOS["grafanaDashboard"])
    configmap = one(docs, "ConfigMap")
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert "app.kubernetes.io/name" not in configmap["metadata"]["labels"]
    dashboard = json.loads(configmap["data"]["carbon-intensity-exporter.json"])
    assert dashboard["uid"] == "carbon-intensity-exporter"
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    joined = "\n".join(exprs)
    for metric in ("carbon_intensity_grams_per_kwh", "carbon_intensity_last_success_timestamp_seconds",
                   "carbon_intensity_fetch_errors_total"):
        assert re.search(rf"\b{metric}\b", joined), metric
    assert re.search(r'carbon_intensity_forecast_grams_per_kwh\{horizon="1h"', joined)
    assert len({panel["id"] for panel in dashboard["panels"]}) == len(dashboard["panels"])
    assert not [doc for doc in manifests(chart, SCENARIOS["Sample"]) if doc["kind"] == "ConfigMap"]


def test_scheduling_and_image_values_reach_the_pod(chart: helm.Chart) -> None:
    docs = manifests(chart, SCENARIOS["scheduling"])
    pod_template = one(docs, "Deployment")["spec"]["template"]
    pod = pod_template["spec"]
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert pod["tolerations"] == [{"key": "CriticalAddonsOnly", "operator": "Exists"}]
    terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms[0]["matchExpressions"][0]["values"] == ["amd64", "arm64"]
    assert pod_template["metadata"]["annotations"]["example.com/team"] == "platform"
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    exporter = container(docs)
    assert exporter["image"] == "ghcr.io/example/carbon-intensity-exporter:1.2.3"
    assert exporter["imagePullPolicy"] == "Always"
    env_vars = env_of(docs)
    assert (env_vars["LOG_FORMAT"]["value"], env_vars["LOG_LEVEL"]["value"]) == ("text", "DEBUG")


# --------------------------------------------------------------------------------------------------------
# Bad values fail at install time, with a message that names the value


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("providerName=Foo", "at '/providerName': value must be one of 'WattTime', 'ElectricityMaps'"),
        ("carbonDataExporter.regoin=x", "at '/carbonDataExporter': additional properties 'regoin' not allowed"),
        ("wattTim.username=x", "additional properties 'wattTim' not allowed"),
        ("carbonDataExporter.patrolInterval=12hours", "at '/carbonDataExporter/patrolInterval': '12hours' does "
         "not match pattern"),
        ("carbonDataExporter.patrolInterval=30", "at '/carbonDataExporter/patrolInterval': got number, want string"),
        ("replicaCount=0", "at '/replicaCount': minimum: got 0, want 1"),
        ("wattTime.signalType=moer", "at '/wattTime/signalType': value must be one of 'co2_moer', 'co2_aoer'"),
        ("logLevel=verbose", "at '/logLevel': value must be one of"),
        ("carbonDataExporter.configmapName=Carbon_Intensity", "at '/carbonDataExporter/configmapName'"),
    ],
)
def test_a_bad_value_is_rejected_by_the_schema(chart: helm.Chart, expression: str, message: str) -> None:
    values = _merge(_set("wattTime.username=u,wattTime.password=p"), helm.parse_set_string(expression))
    with pytest.raises(helm.HelmError) as caught:
        chart.render(values=values, name=RELEASE, namespace="default", is_install=True)
    assert "values don't meet the specifications of the schema" in str(caught.value)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("expressions", "message"),
    [
        ((), "providerName=WattTime needs credentials: --set wattTime.username=... --set wattTime.password=..."),
        (("wattTime.username=u",), "providerName=WattTime needs credentials"),
        (("providerName=ElectricityMaps",), "providerName=ElectricityMaps needs a token"),
        (("providerName=CarbonAwareSDK",), "providerName=CarbonAwareSDK needs --set carbonAwareSDK.url="),
        (("providerName=File",), "providerName=File needs the forecast"),
        (("existingSecret=s", "wattTime.password=p"), "set either existingSecret or the inline credentials"),
    ],
)
def test_missing_provider_settings_fail_with_what_to_set(
    chart: helm.Chart, expressions: tuple[str, ...], message: str
) -> None:
    with pytest.raises(helm.HelmError) as caught:
        chart.render(values=_set(*expressions), name=RELEASE, namespace="default", is_install=True)
    assert message in str(caught.value)


# --------------------------------------------------------------------------------------------------------
# Lint, schema and README


@pytest.mark.parametrize("scenario", [None, "seed-WattTime", "seed-ElectricityMaps", "replicaCount-2"])
def test_helm_lint_reports_no_errors(scenario: str | None) -> None:
    values = SCENARIOS[scenario] if scenario else None
    report = helm.lint(str(CHART), values, strict=True)  # strict: warnings count too
    errors = [message for message in report["messages"] if message["severity"] >= 2]
    assert not errors, errors
    assert not report["errors"], report["errors"]


def _leaf_paths(node: Any, prefix: str = "") -> Iterator[str]:
    if isinstance(node, dict) and node:
        for key, value in node.items():
            yield from _leaf_paths(value, f"{prefix}.{key}" if prefix else key)
    else:
        yield prefix


def test_every_value_is_in_the_schema_and_the_readme() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    schema = json.loads((CHART / "values.schema.json").read_text())
    readme = (CHART / "README.md").read_text()
    for path in _leaf_paths(values):
        node, documented = schema, path
        for depth, part in enumerate(path.split(".")):
            if "properties" not in node:  # a free-form map (labels, annotations): document the map
                documented = ".".join(path.split(".")[:depth])
                break
            assert part in node["properties"], f"{path} is not in values.schema.json"
            node = node["properties"][part]
        assert node.get("description"), f"{path} has no description in values.schema.json"
        if not documented.startswith("resources."):
            assert f"`{documented}`" in readme, f"{documented} is not documented in the chart README"


def test_schema_closes_every_object_level() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    free_form = {"podAnnotations", "podLabels", "nodeSelector", "affinity", "labels", "annotations", "global"}

    def walk(node: Doc, name: str) -> None:
        if node.get("type") == "object" and "properties" in node:
            assert node.get("additionalProperties") is False, f"{name} accepts unknown keys"
            for key, child in node["properties"].items():
                walk(child, key)
        elif node.get("type") == "object":
            assert name in free_form, f"{name} is an open object"

    walk(schema, "values")
