"""Shared fixtures: a fake Kubernetes API server and a kubeconfig pointing at it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.kubeapi import FakeKubeAPI


@pytest.fixture
def kubeapi() -> Iterator[FakeKubeAPI]:
    with FakeKubeAPI() as api:
        yield api


@pytest.fixture
def kubeconfig(kubeapi: FakeKubeAPI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """KUBECONFIG for the exporter under test (the real lightkube client reads it)."""
    path = kubeapi.kubeconfig(tmp_path / "kubeconfig")
    monkeypatch.setenv("KUBECONFIG", str(path))
    return path
