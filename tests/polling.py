"""Polling helpers shared by tests that watch a process or a server change state (generous timeouts)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from tests.fakes.kubeapi import FakeKubeAPI


def wait_for(condition: Callable[[], bool], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def stored(api: FakeKubeAPI, name: str = "carbon-intensity", namespace: str = "kube-system") -> dict[str, Any] | None:
    """The ConfigMap as the fake API server holds it."""
    return api.get_object("configmaps", namespace, name)
