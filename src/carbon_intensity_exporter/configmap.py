"""The ConfigMap contract (DESIGN.md §2): render it, read it back, and keep it present in the cluster.

``render`` and ``read`` are pure and exact to the contract; ``ConfigMapPublisher`` owns every call to the API
server about ConfigMaps: replace (delete then create back to back, because the ConfigMap is immutable),
load the existing one at start, and a watch that recreates it from memory when someone deletes it.
"""

from __future__ import annotations

import base64
import binascii
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .model import Forecast, InvalidForecastError, format_time, parse_time, records_from_json

log = logging.getLogger(__name__)

APP_NAME = "carbon-intensity-exporter"
LABEL_SELECTOR = {"app.kubernetes.io/name": APP_NAME}
LABELS = {**LABEL_SELECTOR, "app.kubernetes.io/managed-by": APP_NAME}
ANNOTATION_PREFIX = "carbon-intensity-exporter.io"
DATA_KEYS = ("lastHeartbeatTime", "message", "numOfRecords", "forecastDateTime", "minForecast", "maxForecast")
BINARY_KEY = "data"


def _annotation(key: str) -> str:
    return f"{ANNOTATION_PREFIX}/{key}"


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.6f}"


def render(
    *,
    name: str,
    namespace: str,
    region: str,
    forecast: Forecast | None,
    heartbeat: datetime,
    message: str,
    provider: str,
) -> dict[str, Any]:
    """The exact ConfigMap for ``forecast`` (None: no data was ever seen, so an empty array and a reason)."""
    records = forecast.records if forecast is not None else ()
    forecast_time = forecast.forecast_time if forecast is not None else None
    annotations = {
        _annotation("provider"): forecast.provider if forecast is not None else provider,
        _annotation("region"): region,
        _annotation("location"): forecast.location if forecast is not None else "",
        _annotation("units"): forecast.units if forecast is not None else "gCO2eq/kWh",
        _annotation("signal-type"): forecast.signal_type if forecast is not None else "",
    }
    if forecast is not None and forecast.sample:
        annotations[_annotation("sample")] = "true"
    payload = forecast.to_json() if forecast is not None else b"[]"
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(LABELS), "annotations": annotations},
        "immutable": True,
        "data": {
            "lastHeartbeatTime": format_time(heartbeat.replace(microsecond=0)),
            "message": message,
            "numOfRecords": str(len(records)),
            "forecastDateTime": format_time(forecast_time) if forecast_time is not None else "",
            "minForecast": _number(forecast.min_value if forecast is not None else None),
            "maxForecast": _number(forecast.max_value if forecast is not None else None),
        },
        "binaryData": {BINARY_KEY: base64.b64encode(payload).decode()},
    }


@dataclass(frozen=True, slots=True)
class Published:
    """What a ConfigMap in the cluster says, read back (for restarts, ``read_forecast`` and ``wait``)."""

    forecast: Forecast | None
    heartbeat: datetime | None
    message: str


def read(configmap: Mapping[str, Any], region: str | None = None) -> Published:
    """Parse a ConfigMap (as a dict) written by us or by the Go exporter; InvalidForecastError if unusable."""
    binary = configmap.get("binaryData") or {}
    data = configmap.get("data") or {}
    metadata = configmap.get("metadata") or {}
    annotations = metadata.get("annotations") or {}
    encoded = binary.get(BINARY_KEY)
    if encoded is None:
        raise InvalidForecastError(f"ConfigMap {metadata.get('name', '?')} has no binaryData.{BINARY_KEY}")
    try:
        payload = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidForecastError(f"binaryData.{BINARY_KEY} is not base64") from None
    records = records_from_json(payload)
    heartbeat_text = data.get("lastHeartbeatTime") or ""
    heartbeat = parse_time(heartbeat_text) if heartbeat_text else None
    if not records:
        return Published(None, heartbeat, data.get("message", ""))
    forecast_text = data.get("forecastDateTime") or ""
    forecast = Forecast(
        records=records,
        provider=annotations.get(_annotation("provider"), ""),
        region=region or annotations.get(_annotation("region"), ""),
        location=annotations.get(_annotation("location")) or records[0].location,
        signal_type=annotations.get(_annotation("signal-type"), ""),
        units=annotations.get(_annotation("units")) or "gCO2eq/kWh",
        generated_at=parse_time(forecast_text) if forecast_text else None,
        sample=annotations.get(_annotation("sample")) == "true",
    )
    return Published(forecast, heartbeat, data.get("message", ""))


class PublishError(Exception):
    """The API server refused or could not be reached; the data stays in memory and is published later."""


def _describe(exc: Exception) -> str:
    from lightkube.core.exceptions import ApiError

    if isinstance(exc, ApiError):
        status = exc.status
        hint = {
            403: "; grant the exporter's ServiceAccount this verb on configmaps in this namespace (the chart's Role)",
            401: "; the ServiceAccount token was refused",
        }.get(status.code or 0, "")
        return f"API server answered {status.code} {status.reason}: {status.message}{hint}"
    return f"API server unreachable: {type(exc).__name__}: {exc}"


class ConfigMapPublisher:
    """Publishes ConfigMaps in one namespace and keeps them present while ``active()`` says we lead."""

    def __init__(
        self,
        client: Any,
        namespace: str,
        *,
        create_attempts: int = 6,
        retry_delay: float = 0.1,
        active: Callable[[], bool] = lambda: True,
        on_recreated: Callable[[str], None] | None = None,
    ) -> None:
        self._client = client
        self._namespace = namespace
        self._create_attempts = create_attempts
        self._retry_delay = retry_delay
        self._lock = threading.Lock()
        # What to recreate on deletion: a renderer rather than the manifest, so 1,000 regions do not keep
        # 1,000 base64 copies of data the exporter already holds as records.
        self._desired: dict[str, Callable[[], dict[str, Any]]] = {}
        self.active = active
        self._on_recreated = on_recreated
        self.writes: dict[str, int] = {"success": 0, "error": 0}

    def load(self, name: str, region: str) -> Published | None:
        """The ConfigMap already in the cluster, or None (absent, unreadable, or not a valid forecast)."""
        from lightkube.core.exceptions import ApiError
        from lightkube.resources.core_v1 import ConfigMap

        try:
            existing = self._client.get(ConfigMap, name, namespace=self._namespace)
        except ApiError as exc:
            if exc.status.code == 404:
                return None
            raise PublishError(f"cannot read ConfigMap {self._namespace}/{name}: {_describe(exc)}") from None
        except Exception as exc:
            raise PublishError(f"cannot read ConfigMap {self._namespace}/{name}: {_describe(exc)}") from None
        try:
            return read(existing.to_dict(), region)
        except InvalidForecastError as exc:
            log.warning("ignoring the existing ConfigMap %s/%s: %s", self._namespace, name, exc)
            return None

    def publish(self, manifest: dict[str, Any], rerender: Callable[[], dict[str, Any]] | None = None) -> None:
        """Replace the ConfigMap: delete then create, back to back, the create retried; PublishError if not.

        ``rerender`` renders the same data again (with a new heartbeat) if the ConfigMap must be recreated.
        """
        name: str = manifest["metadata"]["name"]
        with self._lock:
            self._desired[name] = rerender or (lambda: manifest)
            if not self.active():
                # Leadership lost while this cycle was fetching: the new leader publishes, not us.
                raise PublishError(f"not publishing ConfigMap {self._namespace}/{name}: not the leader")
            try:
                self._preflight(manifest)
                self._delete(name)
                self._create(manifest, retries=self._create_attempts)
            except PublishError:
                self.writes["error"] += 1
                raise
            self.writes["success"] += 1

    def _preflight(self, manifest: dict[str, Any]) -> None:
        """A dry-run create before the delete: if we could not create, do not delete what is there.

        The API server checks permission and validity before existence, so 409 AlreadyExists means "would be
        allowed"; 403, 422 or an unreachable server means the replacement would leave nothing behind.
        """
        self._create(manifest, retries=3, exist_ok=True, dry_run=True)

    def _delete(self, name: str) -> None:
        from lightkube.core.exceptions import ApiError
        from lightkube.resources.core_v1 import ConfigMap

        try:
            self._client.delete(ConfigMap, name, namespace=self._namespace)
        except ApiError as exc:
            if exc.status.code != 404:
                raise PublishError(f"cannot delete ConfigMap {self._namespace}/{name}: {_describe(exc)}") from None
        except Exception as exc:
            raise PublishError(f"cannot delete ConfigMap {self._namespace}/{name}: {_describe(exc)}") from None

    def _create(self, manifest: dict[str, Any], retries: int, exist_ok: bool = False, dry_run: bool = False) -> bool:
        """Create, retrying with backoff; True when created, False when it existed and ``exist_ok``."""
        from lightkube.core.exceptions import ApiError
        from lightkube.resources.core_v1 import ConfigMap

        name = manifest["metadata"]["name"]
        delay = self._retry_delay
        for attempt in range(1, retries + 1):
            if attempt > 1 and not self.active():
                raise PublishError(f"not creating ConfigMap {self._namespace}/{name}: leadership lost")
            try:
                self._client.create(ConfigMap.from_dict(manifest), namespace=self._namespace, dry_run=dry_run)
                return True
            except ApiError as exc:
                if exc.status.code == 409 and exist_ok:
                    return False
                error: Exception = exc
                if exc.status.code == 409:
                    # Someone created it between our delete and create (another writer): replace theirs.
                    self._delete(name)
            except Exception as exc:
                error = exc
            if attempt == retries:
                what = "not replacing ConfigMap" if dry_run else "cannot create ConfigMap"
                raise PublishError(f"{what} {self._namespace}/{name}: {_describe(error)}")
            log.warning("create of ConfigMap %s/%s failed (%s), retrying", self._namespace, name, _describe(error))
            time.sleep(delay * random.uniform(0.5, 1.5))
            delay = min(delay * 2, 5.0)
        return False  # pragma: no cover - the loop always returns or raises

    def stop_publishing(self) -> None:
        """At shutdown: wait for an in-flight replace to finish, then refuse new ones (before the Lease goes)."""
        with self._lock:
            self.active = lambda: False

    def forget(self, name: str) -> None:
        with self._lock:
            self._desired.pop(name, None)

    def ensure_present(self) -> list[str]:
        """Recreate every desired ConfigMap that is missing (after a deletion or a lost watch)."""
        recreated: list[str] = []
        if not self.active():
            return recreated
        with self._lock:
            for name, rerender in self._desired.items():
                try:
                    if self._create(rerender(), retries=1, exist_ok=True):
                        recreated.append(name)
                except PublishError as exc:
                    log.warning("%s", exc)
        for name in recreated:
            log.info("recreated ConfigMap %s/%s after it was deleted", self._namespace, name)
            if self._on_recreated is not None:
                self._on_recreated(name)
        return recreated

    def watch(self, stop: threading.Event, server_timeout: int = 300) -> None:
        """Until ``stop``: list, recreate what is missing, then watch and recreate on every DELETED.

        Any error (watch dropped, API server down) restarts from the list, so a deletion during an outage
        is repaired as soon as the API server is back.
        """
        from lightkube.resources.core_v1 import ConfigMap

        backoff = 0.2
        while not stop.is_set():
            try:
                listing = self._client.list(ConfigMap, namespace=self._namespace, labels=LABEL_SELECTOR)
                present = {item.metadata.name for item in listing}
                version = listing.resourceVersion
                with self._lock:
                    missing = [name for name in self._desired if name not in present]
                if missing:
                    self.ensure_present()
                for event, obj in self._client.watch(
                    ConfigMap,
                    namespace=self._namespace,
                    labels=LABEL_SELECTOR,
                    resource_version=version,
                    server_timeout=server_timeout,
                ):
                    backoff = 0.2
                    if stop.is_set():
                        return
                    if event == "DELETED" and obj.metadata.name in self._desired:
                        self.ensure_present()
            except Exception as exc:
                if stop.is_set():
                    return
                log.debug("ConfigMap watch interrupted (%s); listing again", _describe(exc))
                stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)

    def close(self) -> None:
        close = getattr(self._client, "close", None)
        if close is not None:
            close()


def kube_client(timeout: float = 10.0) -> Any:
    """A lightkube client from the in-cluster service account or the kubeconfig (KUBECONFIG, ~/.kube)."""
    import httpx2
    from lightkube import Client, KubeConfig

    return Client(config=KubeConfig.from_env(), timeout=httpx2.Timeout(timeout), field_manager=APP_NAME)


__all__ = [
    "ANNOTATION_PREFIX",
    "DATA_KEYS",
    "LABELS",
    "ConfigMapPublisher",
    "PublishError",
    "Published",
    "kube_client",
    "read",
    "render",
]


class DryRunSink:
    """``--dry-run``: print each ConfigMap as a YAML document on stdout instead of writing it."""

    def __init__(self, stream: Any = None) -> None:
        self._stream = stream

    def load(self, name: str, region: str) -> Published | None:
        return None

    def publish(self, manifest: dict[str, Any], rerender: Callable[[], dict[str, Any]] | None = None) -> None:
        import sys

        import yaml

        stream = self._stream or sys.stdout
        stream.write("---\n" + yaml.safe_dump(manifest, sort_keys=False, width=1000))
        stream.flush()
