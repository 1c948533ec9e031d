"""The examples/ manifests are valid Kubernetes objects and call ``wait`` with arguments the CLI accepts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from click.testing import CliRunner

from carbon_intensity_exporter.cli import main

EXAMPLES = Path(__file__).parent.parent / "examples"


def documents(name: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all((EXAMPLES / name).read_text()) if doc]


@pytest.mark.parametrize("name", ["cronjob.yaml", "job.yaml", "wait-rbac.yaml"])
def test_examples_validate_against_the_kubernetes_schemas(name: str) -> None:
    version = kubernetes_validate.utils.latest_version()
    for document in documents(name):
        kubernetes_validate.validate(document, version, strict=True)


def _pod_spec(document: dict[str, Any]) -> dict[str, Any]:
    if document["kind"] == "CronJob":
        return document["spec"]["jobTemplate"]["spec"]["template"]["spec"]  # type: ignore[no-any-return]
    return document["spec"]["template"]["spec"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("name", ["cronjob.yaml", "job.yaml"])
def test_the_init_container_arguments_parse(name: str) -> None:
    (document,) = documents(name)
    (init,) = _pod_spec(document)["initContainers"]
    assert init["args"][0] == "wait"
    command = main.commands["wait"]
    context = command.make_context("wait", list(init["args"][1:]))  # raises on a bad flag
    assert context.params["duration"]


def test_the_reader_role_grants_get_on_one_configmap_only() -> None:
    role = next(doc for doc in documents("wait-rbac.yaml") if doc["kind"] == "Role")
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["carbon-intensity"], "verbs": ["get"]}
    ]


def test_wait_help() -> None:
    result = CliRunner().invoke(main, ["wait", "--help"])
    assert result.exit_code == 0
    assert "--max-delay" in result.output
