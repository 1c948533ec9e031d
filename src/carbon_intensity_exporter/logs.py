"""Structured logs: one JSON object per line in a cluster, readable text on a terminal (DESIGN.md §4)."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

#: ``extra=`` fields the loop attaches to its one-line-per-cycle records.
EXTRA_FIELDS = ("region", "outcome", "reason", "records", "configmap")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace(
                "+00:00", "Z"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in EXTRA_FIELDS:
            if hasattr(record, name):
                entry[name] = getattr(record, name)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(message)s", "%H:%M:%S")


def configure(json_format: bool, level: str = "INFO") -> None:
    """Log to stderr (stdout stays clean for ``--dry-run`` YAML and ``-o json``)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_format else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Third-party request logs would print URLs with query strings; keep them out unless debugging.
    for noisy in ("httpx", "httpx2", "httpcore", "lightkube"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
