"""Shared fixtures: a fake Kubernetes API server and a kubeconfig pointing at it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from tests.fakes.kubeapi import FakeKubeAPI

# Shared machines are noisy: no per-example deadline. CI (HYPOTHESIS_PROFILE=ci) also derandomizes, so a red
# run is reproducible; local runs keep exploring new examples.
settings.register_profile("default", deadline=None)
settings.register_profile("ci", deadline=None, derandomize=True, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


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
