"""Read a published forecast back, for Python consumers (carbon-aware jobs, notebooks) and ``wait``.

    from carbon_intensity_exporter import read_forecast
    forecast = read_forecast()                     # kube-system/carbon-intensity, in-cluster or kubeconfig
    forecast = read_forecast(file="cm.yaml")       # `kubectl get cm -o yaml` output, or JSON
    forecast = read_forecast(data=payload)         # the binaryData.data bytes (a JSON EmissionsData array)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .model import Forecast, InvalidForecastError, records_from_json

DEFAULT_CONFIGMAP = "kube-system/carbon-intensity"


class ForecastUnavailableError(Exception):
    """The ConfigMap is missing or unreadable (the message says which and why)."""


def split_configmap(reference: str) -> tuple[str, str]:
    """``namespace/name`` (or just ``name`` in kube-system)."""
    namespace, _, name = reference.rpartition("/")
    return namespace or "kube-system", name


def _from_configmap(configmap: dict[str, Any]) -> Forecast:
    from .configmap import read

    published = read(configmap)
    if published.forecast is not None:
        return published.forecast
    annotations = (configmap.get("metadata") or {}).get("annotations") or {}
    return Forecast(records=(), provider=annotations.get("carbon-intensity-exporter.io/provider", ""),
                    region=annotations.get("carbon-intensity-exporter.io/region", ""), location="")


def read_forecast(
    configmap: str = DEFAULT_CONFIGMAP,
    *,
    file: str | Path | None = None,
    data: bytes | str | None = None,
    client: Any = None,
) -> Forecast:
    """The published Forecast (possibly with no records: check ``is_stale(now)``).

    Raises ForecastUnavailableError when the ConfigMap is absent or cannot be read, and
    InvalidForecastError when it holds something that is not a valid EmissionsData array.
    """
    if data is not None:
        records = records_from_json(data)
        location = records[0].location if records else ""
        return Forecast(records=records, provider="", region="", location=location)
    if file is not None:
        import yaml

        try:
            text = Path(file).read_text()
        except OSError as exc:
            raise ForecastUnavailableError(f"cannot read {file}: {exc.strerror or exc}") from None
        try:
            document = yaml.safe_load(text)  # JSON is YAML
        except yaml.YAMLError as exc:
            raise InvalidForecastError(f"{file} is not YAML or JSON: {exc}") from None
        if isinstance(document, list):  # a bare EmissionsData array
            return read_forecast(data=json.dumps(document))
        if not isinstance(document, dict):
            raise InvalidForecastError(f"{file} holds neither a ConfigMap nor an EmissionsData array")
        return _from_configmap(document)
    namespace, name = split_configmap(configmap)
    return _from_configmap(fetch_configmap(namespace, name, client))


def fetch_configmap(namespace: str, name: str, client: Any = None) -> dict[str, Any]:
    """The ConfigMap as a dict, through lightkube (in-cluster service account or kubeconfig)."""
    from lightkube.core.exceptions import ApiError, ConfigError
    from lightkube.resources.core_v1 import ConfigMap

    if client is None:
        from .configmap import kube_client

        try:
            client = kube_client(timeout=10)
        except ConfigError as exc:
            raise ForecastUnavailableError(f"no Kubernetes configuration: {exc}") from None
    try:
        obj = client.get(ConfigMap, name, namespace=namespace)
    except ApiError as exc:
        raise ForecastUnavailableError(
            f"ConfigMap {namespace}/{name}: {exc.status.code} {exc.status.reason}: {exc.status.message}"
        ) from None
    except Exception as exc:
        raise ForecastUnavailableError(f"ConfigMap {namespace}/{name}: API server unreachable: {exc}") from None
    document: dict[str, Any] = obj.to_dict()  # binaryData stays base64 text, as the API sends it
    return document


__all__ = ["DEFAULT_CONFIGMAP", "ForecastUnavailableError", "read_forecast", "split_configmap"]
