"""Run the fault-injection suite and print its results as a markdown table (for the README).

    python -m tests.faults.table [extra pytest arguments]

Each test of ``tests/faults`` records one row (fault, what the exporter did, the worst ConfigMap absence
measured by the fake API server, whether data was lost); rows of expected failures (``xfail``: known gaps)
are recorded before their failing assertion, so they appear too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.faults.harness import RESULTS_ENV

ROOT = Path(__file__).resolve().parents[2]


def render(rows: list[dict[str, object]]) -> str:
    lines = [
        "| fault | what the exporter did | ConfigMap absent (worst ms) | data lost |",
        "|---|---|---|---|",
    ]
    for row in rows:
        worst = row.get("worst_absence_ms")
        absent = "—" if worst is None else f"{float(str(worst)):.1f}"
        lines.append(f"| {row['fault']} | {row['did']} | {absent} | {row['data_lost']} |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    with tempfile.TemporaryDirectory() as directory:
        results = Path(directory) / "results.jsonl"
        env = {**os.environ, RESULTS_ENV: str(results)}
        started = time.monotonic()
        run = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/faults", *argv],
            cwd=ROOT, env=env, capture_output=True, text=True,
        )
        took = time.monotonic() - started
        rows = [json.loads(line) for line in results.read_text().splitlines()] if results.exists() else []
    summary = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else "(no pytest output)"
    print(render(rows))
    print()
    print(f"pytest tests/faults: {summary} (wall {took:.0f} s, {time.strftime('%Y-%m-%d')})")
    if run.returncode != 0:
        print(run.stdout[-4000:], file=sys.stderr)
    return run.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
