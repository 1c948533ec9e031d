"""What the carbon-aware KEDA operator does with our ConfigMap (reference/consumers.md), in Python.

It reads only ``binaryData[data]``, decodes it with Go's ``encoding/json`` into
``[]struct{Location string; Timestamp time.Time; Duration int32; Value float64}`` and picks the first
record with ``timestamp <= now < timestamp + duration``. Go's decoder is stricter than Python's about
types: a ``duration`` of ``5.0`` does not decode into an int32, a string does not decode into float64.
"""

from __future__ import annotations

import base64
import json
import re
from datetime import datetime, timedelta
from typing import Any

_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")


class GoDecodeError(ValueError):
    pass


def go_decode(payload: bytes) -> list[dict[str, Any]]:
    """Decode like ``json.Unmarshal(data, &[]EmissionsData{})``: raise where Go would return an error."""
    decoded = json.loads(payload, parse_float=lambda text: ("float", text), parse_int=lambda text: ("int", text))
    if not isinstance(decoded, list):
        raise GoDecodeError("cannot unmarshal into []EmissionsData")
    records = []
    for item in decoded:
        if not isinstance(item, dict):
            raise GoDecodeError("cannot unmarshal a non-object into EmissionsData")
        location = item.get("location", "")
        timestamp = item.get("timestamp")
        duration = item.get("duration", ("int", "0"))
        value = item.get("value", ("int", "0"))
        if not isinstance(location, str):
            raise GoDecodeError("location is not a string")
        if not isinstance(timestamp, str) or not _RFC3339.fullmatch(timestamp):
            raise GoDecodeError(f"timestamp {timestamp!r} is not RFC 3339")
        if not (isinstance(duration, tuple) and duration[0] == "int") or not -(2**31) <= int(duration[1]) < 2**31:
            raise GoDecodeError(f"duration {duration!r} does not fit int32")
        if not isinstance(value, tuple):
            raise GoDecodeError(f"value {value!r} is not a number")
        records.append(
            {
                "location": location,
                "timestamp": datetime.fromisoformat(timestamp),
                "duration": int(duration[1]),
                "value": float(value[1]),
            }
        )
    return records


def current_record(configmap: dict[str, Any], now: datetime, key: str = "data") -> dict[str, Any] | None:
    """The record the operator would use now, or None (eco mode off)."""
    payload = base64.b64decode(configmap["binaryData"][key])
    for record in go_decode(payload):
        if record["timestamp"] <= now < record["timestamp"] + timedelta(minutes=record["duration"]):
            return record
    return None
