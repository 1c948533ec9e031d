"""The cloud region catalogue: Azure / AWS / GCP region name → coordinates and known provider grid codes.

Providers resolve a cluster's grid region from these coordinates (WattTime ``region-from-loc``,
Electricity Maps ``lat``/``lon``); ``PROVIDER_REGION`` always overrides. Sources and licences of the data
are in ``data/REGIONS-SOURCES.md``. An unknown region is a configuration error (exit code 2) that
suggests the nearest names, so a typo never reaches a provider.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import Any

from .settings import ConfigurationError

CLOUDS = ("azure", "aws", "gcp")


@dataclass(frozen=True, slots=True)
class Region:
    """One cloud region. ``codes`` maps a provider name (``WattTime``, ...) to its grid code, where known."""

    cloud: str
    name: str
    display_name: str
    latitude: float
    longitude: float
    location: str = ""
    codes: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def key(self) -> str:
        """``cloud:name``: unambiguous across clouds."""
        return f"{self.cloud}:{self.name}"

    def code(self, provider: str) -> str | None:
        return self.codes.get(provider)


def _normalise(name: str) -> str:
    return name.strip().lower()


@cache
def _catalogue() -> tuple[Region, ...]:
    text = resources.files("carbon_intensity_exporter").joinpath("data/regions.json").read_text("utf-8")
    document: dict[str, Any] = json.loads(text)
    return tuple(
        Region(
            cloud=item["cloud"],
            name=item["name"],
            display_name=item.get("display_name", ""),
            latitude=float(item["latitude"]),
            longitude=float(item["longitude"]),
            location=item.get("location", ""),
            codes=MappingProxyType(dict(item.get("codes", {}))),
        )
        for item in document["regions"]
    )


@cache
def _index() -> dict[str, list[Region]]:
    """Lookup keys → regions: the name, ``cloud:name`` and (Azure) the display name without spaces."""
    index: dict[str, list[Region]] = {}

    def add(key: str, region: Region) -> None:
        bucket = index.setdefault(key, [])
        if region not in bucket:
            bucket.append(region)

    for region in _catalogue():
        add(_normalise(region.name), region)
        add(f"{region.cloud}:{_normalise(region.name)}", region)
        if region.cloud == "azure" and region.display_name:
            alias = _normalise(region.display_name).replace(" ", "")
            add(alias, region)
            add(f"azure:{alias}", region)
    return index


def all_regions() -> list[Region]:
    """Every catalogued region, grouped by cloud (Azure, AWS, GCP) and sorted by name within each."""
    return sorted(_catalogue(), key=lambda region: (CLOUDS.index(region.cloud), region.name))


def lookup(region: str) -> Region:
    """The catalogue entry for ``region`` (``westus``, ``aws:us-west-2``, ``West US``; case-insensitive).

    Raises ConfigurationError naming near matches, or asking for a prefix when clouds share the name.
    """
    text = _normalise(region)
    prefixed = ":" in text
    if prefixed and text.partition(":")[0] not in CLOUDS:
        raise ConfigurationError(
            f"region {region!r}: unknown cloud prefix {text.partition(':')[0]!r}; "
            "use azure:, aws: or gcp: (or no prefix)"
        )
    index = _index()
    found = index.get(text) or index.get(text.replace(" ", ""), [])
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        choices = ", ".join(candidate.key for candidate in found)
        raise ConfigurationError(f"region {region!r} is in several clouds; choose one of {choices}")
    candidates = sorted({entry.key if prefixed else entry.name for entry in _catalogue()})
    near = difflib.get_close_matches(text, candidates, n=4, cutoff=0.6)
    hint = f"; did you mean {', '.join(near)}?" if near else ""
    raise ConfigurationError(
        f"region {region!r} is not a known Azure, AWS or GCP region{hint} (list them with "
        "`carbon-intensity-exporter regions`, or set PROVIDER_REGION to the provider's own code)"
    )


def format_table(regions: Iterable[Region]) -> str:
    """A plain-text table for the ``regions`` command: region, display name, coordinates, provider codes."""
    header = ("REGION", "NAME", "LATITUDE", "LONGITUDE", "PROVIDER CODES")
    rows = [
        (
            region.key,
            region.display_name,
            f"{region.latitude:.4f}",
            f"{region.longitude:.4f}",
            " ".join(f"{provider}={code}" for provider, code in sorted(region.codes.items())),
        )
        for region in regions
    ]
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(len(header))]
    lines = []
    for row in [header, *rows]:
        numeric = row is not header
        cells = [
            cell.rjust(widths[column]) if numeric and column in (2, 3) else cell.ljust(widths[column])
            for column, cell in enumerate(row)
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


__all__ = ["CLOUDS", "Region", "all_regions", "format_table", "lookup"]
