"""Shared by the bench scripts: the repo root on sys.path (for tests.fakes), statistics, process helpers."""

from __future__ import annotations

import os
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def summary(values: Sequence[float], unit: str = "ms", scale: float = 1000.0) -> str:
    ordered = sorted(values)
    return (
        f"median {statistics.median(ordered) * scale:8.1f} {unit}   worst {ordered[-1] * scale:8.1f} {unit}"
        f"   best {ordered[0] * scale:8.1f} {unit}   (n={len(ordered)})"
    )


def exporter_env(kubeconfig: Path, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("WT_", "EM_"))}
    env.update({"KUBECONFIG": str(kubeconfig), "LOG_FORMAT": "json", "METRICS_PORT": "0"})
    env.update(extra)
    return env


def rss_mb(pid: int) -> float:
    """Resident set size of a running process, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")
