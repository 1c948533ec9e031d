"""The cloud region catalogue: lookups, near-name suggestions, the shipped data and its sources."""

from __future__ import annotations

import json
import math
from importlib import resources

import pytest

from carbon_intensity_exporter.regions import Region, all_regions, format_table, lookup
from carbon_intensity_exporter.settings import ConfigurationError


def test_azure_westus_maps_to_caiso() -> None:
    region = lookup("westus")
    assert region.cloud == "azure" and region.display_name == "West US"
    assert (region.latitude, region.longitude) == (37.783, -122.417)
    assert region.code("WattTime") == "CAISO_NORTH"
    assert region.code("ElectricityMaps") == "US-CAL-CISO"
    assert region.key == "azure:westus"


@pytest.mark.parametrize(
    ("given", "key"),
    [
        ("WestUS", "azure:westus"),
        (" westus2 ", "azure:westus2"),
        ("West US 2", "azure:westus2"),
        ("azure:uksouth", "azure:uksouth"),
        ("AWS:us-west-2", "aws:us-west-2"),
        ("us-east-1", "aws:us-east-1"),
        ("gcp:europe-west1", "gcp:europe-west1"),
        ("europe-west1", "gcp:europe-west1"),
    ],
)
def test_lookup_is_case_insensitive_and_takes_prefixes(given: str, key: str) -> None:
    assert lookup(given).key == key


def test_unknown_region_suggests_near_names() -> None:
    with pytest.raises(ConfigurationError) as info:
        lookup("wetsus")
    assert "westus" in str(info.value) and "did you mean" in str(info.value)
    with pytest.raises(ConfigurationError) as info:
        lookup("aws:us-west-3")
    assert "aws:us-west-2" in str(info.value)
    with pytest.raises(ConfigurationError, match="PROVIDER_REGION"):
        lookup("mars-central")


def test_wrong_prefix() -> None:
    with pytest.raises(ConfigurationError, match="azure:, aws: or gcp:"):
        lookup("oci:us-ashburn-1")
    with pytest.raises(ConfigurationError):
        lookup("gcp:westus")  # an Azure name under the wrong cloud


def test_catalogue_contents() -> None:
    regions = all_regions()
    clouds = {cloud: [r for r in regions if r.cloud == cloud] for cloud in ("azure", "aws", "gcp")}
    assert len(clouds["azure"]) == 54  # the SDK's 55 minus brazilus, whose (0, 0) is a placeholder
    assert len(clouds["aws"]) >= 20 and len(clouds["gcp"]) >= 30
    assert len({region.key for region in regions}) == len(regions)
    assert len({region.name for region in regions}) == len(regions)  # no bare name is ambiguous today
    for region in regions:
        assert -90 <= region.latitude <= 90 and -180 <= region.longitude <= 180
        assert not (math.isclose(region.latitude, 0) and math.isclose(region.longitude, 0))
        assert region.display_name or region.cloud == "azure"
    assert lookup("aws:us-east-1").location.startswith("Ashburn")
    assert lookup("gcp:europe-west1").location.startswith("St. Ghislain")
    assert {lookup(name).code("UKCarbonIntensity") for name in ("uksouth", "aws:eu-west-2", "gcp:europe-west2")} == {
        "13"
    }


def test_azure_coordinates_match_the_licensed_source() -> None:
    """Azure entries are the Carbon Aware SDK's file, unchanged (its MIT licence is in REGIONS-SOURCES.md)."""
    data = json.loads(resources.files("carbon_intensity_exporter").joinpath("data/regions.json").read_text())
    azure = {item["name"]: item for item in data["regions"] if item["cloud"] == "azure"}
    assert azure["uksouth"]["latitude"] == 50.941 and azure["uksouth"]["longitude"] == -0.799
    sources = resources.files("carbon_intensity_exporter").joinpath("data/REGIONS-SOURCES.md").read_text()
    assert "MIT License" in sources and "Green Software Foundation" in sources
    assert "AGPL" in sources  # says what was deliberately not copied


def test_format_table() -> None:
    table = format_table([lookup("westus"), lookup("aws:eu-west-2")])
    lines = table.splitlines()
    assert lines[0].split() == ["REGION", "NAME", "LATITUDE", "LONGITUDE", "PROVIDER", "CODES"]
    assert lines[1].startswith("azure:westus") and "WattTime=CAISO_NORTH" in lines[1]
    assert "37.7830" in lines[1] and "-122.4170" in lines[1]
    assert "UKCarbonIntensity=13" in lines[2]
    assert not table.endswith("\n")  # click.echo adds the newline
    assert len(format_table(all_regions()).splitlines()) == len(all_regions()) + 1


def test_region_is_immutable() -> None:
    region = lookup("westus")
    with pytest.raises(AttributeError):
        region.name = "eastus"  # type: ignore[misc]
    with pytest.raises(TypeError):
        region.codes["WattTime"] = "X"  # type: ignore[index]
    assert isinstance(region, Region)
