"""The Dockerfile, read as text (no Docker engine here): the image the chart runs matches the chart.

What only a real build proves (the image builds, the venv runs on the final base) is in the chart README.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import helm_python as helm
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
CHART = ROOT / "charts" / "carbon-intensity-exporter"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    result = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            result.append((word.upper(), rest.strip()))
    return result


def stages() -> list[list[tuple[str, str]]]:
    found: list[list[tuple[str, str]]] = []
    for instruction in instructions():
        if instruction[0] == "FROM":
            found.append([])
        if found:
            found[-1].append(instruction)
    return found


def chart_pod_security() -> dict[str, object]:
    with helm.Chart.load(str(CHART)) as chart:
        rendered = chart.render(values={"providerName": "Sample"}, name="carbon-intensity-exporter",
                                namespace="default", is_install=True)
    deployment = yaml.safe_load(rendered["carbon-intensity-exporter/templates/deployment.yaml"])
    pod = deployment["spec"]["template"]["spec"]
    context: dict[str, object] = {**pod["securityContext"], **pod["containers"][0]["securityContext"]}
    return context


def test_final_stage_runs_as_the_charts_non_root_uid() -> None:
    final = stages()[-1]
    users = [args for word, args in final if word == "USER"]
    assert users, "the final stage must set USER"
    uid, _, gid = users[-1].partition(":")
    context = chart_pod_security()
    assert uid.isdigit(), "numeric USER, so the kubelet can verify runAsNonRoot"
    assert int(uid) == context["runAsUser"] == 10001
    assert int(gid) == context["runAsGroup"] == 10001
    assert any("--uid 10001" in args and "--gid 10001" in args for word, args in final if word == "RUN")


def test_multi_stage_slim_base_and_no_compilers_in_the_final_image() -> None:
    all_stages = stages()
    assert len(all_stages) == 2
    args = dict(arg.split("=", 1) for word, arg in instructions() if word == "ARG" and "=" in arg)
    bases = [args.get(stage[0][1].split()[0].strip("${}"), stage[0][1].split()[0]) for stage in all_stages]
    assert bases == ["python:3.11-slim", "python:3.11-slim"]
    final = all_stages[-1]
    final_text = " ".join(args for _, args in final)
    for tool in ("gcc", "build-essential", "make ", "apt-get install", "pip install"):
        assert tool not in final_text, f"{tool!r} in the final stage"
    assert ("COPY", "--from=builder /opt/venv /opt/venv") in final
    builder_text = " ".join(args for _, args in all_stages[0])
    assert "pip wheel" in builder_text and "venv" in builder_text


def test_entrypoint_is_the_exporter_and_the_chart_passes_run() -> None:
    final = dict(stages()[-1])
    assert json.loads(final["ENTRYPOINT"]) == ["carbon-intensity-exporter"]
    assert json.loads(final["CMD"]) == ["run"]
    assert final["EXPOSE"] == "9102"
    assert yaml.safe_load((CHART / "values.yaml").read_text())["metrics"]["port"] == 9102


def test_dockerignore_sends_only_the_package_sources() -> None:
    lines = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()]
    patterns = [line for line in lines if line and not line.startswith("#")]
    assert patterns[0] == "*"
    allowed = {line[1:].rstrip("/") for line in patterns if line.startswith("!")}
    copied: set[str] = set()
    for word, args in stages()[0]:
        if word == "COPY" and not args.startswith("--from"):
            copied.update(part.rstrip("/") for part in args.split()[:-1])
    assert copied == allowed == {"pyproject.toml", "README.md", "src"}
    for name in copied:
        assert (ROOT / name).exists(), name
