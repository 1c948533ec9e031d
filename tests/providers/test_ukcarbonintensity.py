"""UK Carbon Intensity over real HTTP against the local fake: national, regional (array and object), failures."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from carbon_intensity_exporter.model import InvalidForecastError, validate_records
from carbon_intensity_exporter.providers import build_provider
from carbon_intensity_exporter.providers.ukcarbonintensity import UKCarbonIntensityProvider, parse_forecast
from carbon_intensity_exporter.settings import ConfigurationError, Settings
from tests.fakes.providers import FakeUKCarbonIntensity, Reply, html_page, truncated_json, ukci_periods

from .conftest import ClientFactory, fetch_error

NOW = dt.datetime(2026, 12, 4, 13, 17, 42, tzinfo=dt.UTC)
SLOT = dt.datetime(2026, 12, 4, 13, 0, tzinfo=dt.UTC)


def make_provider(
    server: FakeUKCarbonIntensity, make_client: ClientFactory, horizon: int = 24
) -> UKCarbonIntensityProvider:
    return UKCarbonIntensityProvider(
        base_url=server.url, horizon_hours=horizon, client=make_client("UKCarbonIntensity"), clock=lambda: NOW
    )


def test_national_forecast(ukci_server: FakeUKCarbonIntensity, make_client: ClientFactory) -> None:
    forecast = make_provider(ukci_server, make_client).fetch("westus", "national")
    assert forecast.location == "GB" and forecast.provider == "UKCarbonIntensity"
    assert len(forecast.records) == 48
    assert forecast.records[0].timestamp == SLOT
    assert forecast.records[0].duration == 30
    assert [record.value for record in forecast.records[:2]] == [266.0, 180.0]
    assert ukci_server.requests[0].path == "/intensity/2026-12-04T13:01Z/fw24h"
    assert ukci_server.requests[0].headers["accept"] == "application/json"


def test_longer_horizon_uses_fw48h_and_is_trimmed(
    ukci_server: FakeUKCarbonIntensity, make_client: ClientFactory
) -> None:
    forecast = make_provider(ukci_server, make_client, horizon=30).fetch("westus", "national")
    assert ukci_server.requests[0].path.endswith("/fw48h")
    assert len(forecast.records) == 60
    short = make_provider(ukci_server, make_client, horizon=2).fetch("westus", "national")
    assert len(short.records) == 4


@pytest.mark.parametrize("as_object", [True, False])
def test_regional_forecast_from_a_uk_cloud_region(
    ukci_server: FakeUKCarbonIntensity, make_client: ClientFactory, as_object: bool
) -> None:
    ukci_server.regional_as_object = as_object
    forecast = make_provider(ukci_server, make_client).fetch("uksouth", None)
    assert forecast.location == "13" and forecast.region == "uksouth"
    assert len(forecast.records) == 48
    assert ukci_server.requests[0].path == "/regional/intensity/2026-12-04T13:01Z/fw24h/regionid/13"


@pytest.mark.parametrize(("region", "provider_region", "path_end"), [
    ("westus", "17", "regionid/17"), ("aws:eu-west-2", None, "regionid/13"), ("gcp:europe-west2", None, "regionid/13"),
    ("ukwest", None, "regionid/7"), ("westus", "18", "regionid/18"),
])
def test_region_selection(
    ukci_server: FakeUKCarbonIntensity, make_client: ClientFactory, region: str, provider_region: str | None,
    path_end: str,
) -> None:
    make_provider(ukci_server, make_client).fetch(region, provider_region)
    assert ukci_server.requests[0].path.endswith(path_end)


def test_region_errors_are_configuration_errors(make_client: ClientFactory) -> None:
    provider = UKCarbonIntensityProvider(client=make_client("UKCarbonIntensity"))
    with pytest.raises(ConfigurationError, match="not in Great Britain"):
        provider.check_region("westus", None)
    with pytest.raises(ConfigurationError, match="1-18"):
        provider.check_region("westus", "19")
    with pytest.raises(ConfigurationError, match="1-18"):
        provider.check_region("westus", "london")
    with pytest.raises(ConfigurationError, match="not a known"):
        provider.check_region("uk-south", None)
    provider.check_region("uksouth", None)
    provider.check_region("westus", "National")


def _periods(*pairs: tuple[str, str, Any]) -> dict[str, Any]:
    return {"data": [{"from": start, "to": end, "intensity": {"forecast": value, "index": "low"}}
                     for start, end, value in pairs]}


FAILURES: list[tuple[str, Reply, str, str]] = [
    ("400", Reply(400, {"error": {"code": "400 Bad Request", "message": "Please enter a valid date"}}),
     "client_error", "valid date"),
    ("error-200", Reply(200, {"error": {"code": "400 Bad Request", "message": "Invalid region"}}),
     "client_error", "Invalid region"),
    ("500", Reply(500, "Internal Server Error"), "server_error", "500"),
    ("html", html_page(200, "Service Unavailable"), "invalid_response", "HTML"),
    ("truncated", truncated_json('{"data":[{"from":"2018-01-20T12:00Z","to'), "invalid_response", "not valid JSON"),
    ("empty", Reply(200, {"data": []}), "no_data", "no periods"),
    ("null-forecast", Reply(200, _periods(("2026-12-04T13:00Z", "2026-12-04T13:30Z", None))),
     "invalid_response", "not a number"),
    ("negative", Reply(200, _periods(("2026-12-04T13:00Z", "2026-12-04T13:30Z", -1))), "invalid_response", "-1"),
    ("zero-length", Reply(200, _periods(("2026-12-04T13:00Z", "2026-12-04T13:00Z", 1))),
     "invalid_response", "minutes"),
    ("unsorted", Reply(200, _periods(("2026-12-04T13:30Z", "2026-12-04T14:00Z", 1),
                                     ("2026-12-04T13:00Z", "2026-12-04T13:30Z", 2))), "invalid_response", "sorted"),
    ("duplicate", Reply(200, _periods(("2026-12-04T13:00Z", "2026-12-04T13:30Z", 1),
                                      ("2026-12-04T13:00Z", "2026-12-04T13:30Z", 2))), "invalid_response", "duplicate"),
    ("no-intensity", Reply(200, {"data": [{"from": "2026-12-04T13:00Z", "to": "2026-12-04T13:30Z"}]}),
     "invalid_response", "intensity"),
]


@pytest.mark.parametrize(("name", "reply", "reason", "words"), FAILURES, ids=[f[0] for f in FAILURES])
def test_failure_shapes(
    ukci_server: FakeUKCarbonIntensity, make_client: ClientFactory, name: str, reply: Reply, reason: str,
    words: str,
) -> None:
    ukci_server.route(r"/.*", reply)
    error = fetch_error(lambda: make_provider(ukci_server, make_client).fetch("westus", "national"))
    assert error.reason == reason, error.message
    assert words in error.message
    assert "/intensity/" in error.message


def test_from_settings(ukci_server: FakeUKCarbonIntensity) -> None:
    with pytest.raises(ConfigurationError, match="UKCI_BASE_URL"):
        UKCarbonIntensityProvider.from_settings(Settings(ukci_base_url="carbonintensity.org.uk"))
    provider = build_provider(Settings(provider="UKCarbonIntensity", ukci_base_url=ukci_server.url))
    try:
        forecast = provider.fetch("uksouth", None)
        assert forecast.records[0].timestamp <= dt.datetime.now(dt.UTC) < forecast.records[0].end
    finally:
        provider.close()


@settings(max_examples=200, deadline=None)
@given(st.one_of(
    st.builds(lambda periods, wrap: {"data": {"regionid": 13, "data": periods} if wrap == "object" else
              [{"regionid": 13, "data": periods}] if wrap == "array" else periods},
              st.lists(st.fixed_dictionaries({
                  "from": st.sampled_from(["2026-12-04T13:00Z", "2026-12-04T13:30Z", "x", "2026-12-04T13:00"]),
                  "to": st.sampled_from(["2026-12-04T13:30Z", "2026-12-04T14:00Z", None]),
                  "intensity": st.one_of(st.none(), st.fixed_dictionaries(
                      {"forecast": st.one_of(st.integers(-3, 500), st.floats(), st.none(), st.text(max_size=3))}))}),
                  max_size=4),
              st.sampled_from(["object", "array", "flat"])),
    st.recursive(st.none() | st.integers() | st.text(max_size=6),
                 lambda c: st.lists(c, max_size=3) | st.dictionaries(st.sampled_from(["data", "from", "x"]), c)),
))
def test_parser_never_crashes(body: Any) -> None:
    try:
        forecast = parse_forecast(body, region="uksouth", location="13")
    except InvalidForecastError:
        return
    assert forecast.records
    validate_records(forecast.records)


def test_documented_period_shape() -> None:
    forecast = parse_forecast({"data": ukci_periods(SLOT, 2)}, region="westus", location="GB")
    assert [record.value for record in forecast.records] == [266.0, 180.0]
