"""Carbon Aware SDK WebAPI over real HTTP against the local fake."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from carbon_intensity_exporter.model import InvalidForecastError, validate_records
from carbon_intensity_exporter.providers import build_provider
from carbon_intensity_exporter.providers.carbonawaresdk import CarbonAwareSDKProvider, parse_forecast
from carbon_intensity_exporter.settings import ConfigurationError, Settings
from tests.fakes.providers import FakeCarbonAwareSDK, Reply, cas_forecast, html_page, truncated_json

from .conftest import ClientFactory, fetch_error

START = dt.datetime(2022, 7, 19, 14, 0, tzinfo=dt.UTC)


def make_provider(server: FakeCarbonAwareSDK, make_client: ClientFactory) -> CarbonAwareSDKProvider:
    return CarbonAwareSDKProvider(server.url, client=make_client("CarbonAwareSDK"))


def test_forecast_for_westus(cas_server: FakeCarbonAwareSDK, make_client: ClientFactory) -> None:
    forecast = make_provider(cas_server, make_client).fetch("westus", None)
    assert forecast.provider == "CarbonAwareSDK" and forecast.region == "westus"
    assert forecast.location == "CAISO_NORTH"
    assert len(forecast.records) == 12
    assert forecast.records[0].duration == 5
    assert forecast.records[0].value == pytest.approx(532.02293146)
    assert forecast.generated_at == forecast.records[0].timestamp - dt.timedelta(minutes=2)
    assert cas_server.requests[0].query == {"location": "westus"}
    assert cas_server.requests[0].path == "/emissions/forecasts/current"


def test_documented_example_is_taken_as_is() -> None:
    body = [{"requestedAt": "2022-07-19T13:37:49+00:00", "generatedAt": "2022-07-19T13:35:00+00:00",
             "location": "northeurope", "dataStartAt": "2022-07-19T14:00:00Z", "dataEndAt": "2022-07-20T04:38:00Z",
             "windowSize": 10, "optimalDataPoint": {"location": "IE", "timestamp": "2022-07-19T18:45:00+00:00",
                                                    "duration": 10, "value": 448.4451043375},
             "forecastData": [{"location": "IE", "timestamp": "2022-07-19T14:00:00+00:00", "duration": 10,
                               "value": 532.02293146}]}]
    forecast = parse_forecast(body, region="northeurope", location="northeurope")
    assert forecast.location == "IE"
    assert forecast.records[0].value == 532.02293146 and forecast.records[0].duration == 10
    assert forecast.generated_at == dt.datetime(2022, 7, 19, 13, 35, tzinfo=dt.UTC)


def test_provider_region_is_passed_as_location(cas_server: FakeCarbonAwareSDK, make_client: ClientFactory) -> None:
    cas_server.locations["my-dc"] = "IE"
    forecast = make_provider(cas_server, make_client).fetch("westus", "my-dc")
    assert forecast.location == "IE"
    assert cas_server.requests[0].query == {"location": "my-dc"}


def test_unknown_location_is_explained(cas_server: FakeCarbonAwareSDK, make_client: ClientFactory) -> None:
    error = fetch_error(lambda: make_provider(cas_server, make_client).fetch("westus", "atlantis"))
    assert error.reason == "client_error"
    assert "Unknown location" in error.message and "atlantis" in error.message


FAILURES: list[tuple[str, Reply, str, str]] = [
    ("500", Reply(500, {"title": "Internal Server Error", "detail": "WattTime said no"}), "server_error",
     "WattTime said no"),
    ("html", html_page(200, "Login"), "invalid_response", "HTML"),
    ("truncated", truncated_json('[{"forecastData":[{"loc'), "invalid_response", "not valid JSON"),
    ("empty-array", Reply(200, []), "no_data", "no forecast"),
    ("empty-data", Reply(200, cas_forecast(START, values=[])), "no_data", "no points"),
    ("object", Reply(200, {"forecastData": []}), "invalid_response", "not a JSON array"),
    ("negative", Reply(200, cas_forecast(START, values=[-5])), "invalid_response", "-5"),
    ("zero-duration", Reply(200, cas_forecast(START, duration=0)), "invalid_response", "duration"),
    ("nan", Reply(200, b'[{"forecastData":[{"location":"X","timestamp":"2022-07-19T14:00:00Z","duration":5,'
                       b'"value":NaN}]}]'), "invalid_response", "NaN"),
]


@pytest.mark.parametrize(("name", "reply", "reason", "words"), FAILURES, ids=[f[0] for f in FAILURES])
def test_failure_shapes(
    cas_server: FakeCarbonAwareSDK, make_client: ClientFactory, name: str, reply: Reply, reason: str, words: str
) -> None:
    cas_server.route(r"/.*", reply)
    error = fetch_error(lambda: make_provider(cas_server, make_client).fetch("westus", None))
    assert error.reason == reason, error.message
    assert words in error.message
    assert "/emissions/forecasts/current" in error.message and "location=" not in error.message


def test_unsorted_and_duplicate_points_are_refused() -> None:
    points = cas_forecast(START, count=2)
    points[0]["forecastData"].reverse()
    with pytest.raises(InvalidForecastError, match="sorted"):
        parse_forecast(points, region="westus", location="westus")
    points[0]["forecastData"][1] = dict(points[0]["forecastData"][0])
    with pytest.raises(InvalidForecastError, match="duplicate"):
        parse_forecast(points, region="westus", location="westus")


def test_from_settings(cas_server: FakeCarbonAwareSDK) -> None:
    with pytest.raises(ConfigurationError, match="CARBON_AWARE_SDK_URL"):
        CarbonAwareSDKProvider.from_settings(Settings(provider="CarbonAwareSDK"))
    provider = build_provider(Settings(provider="CarbonAwareSDK", carbon_aware_sdk_url=cas_server.url))
    try:
        with pytest.raises(ConfigurationError):
            provider.check_region("westuss", None)
        assert provider.fetch("azure:westus", None).location == "CAISO_NORTH"
    finally:
        provider.close()


@settings(max_examples=200, deadline=None)
@given(st.one_of(
    st.lists(st.fixed_dictionaries({"location": st.sampled_from(["westus", "x"]), "forecastData": st.lists(
        st.fixed_dictionaries({"location": st.one_of(st.text(max_size=3), st.none()),
                               "timestamp": st.one_of(st.datetimes(timezones=st.just(dt.UTC)).map(
                                   lambda d: d.isoformat()), st.text(max_size=5)),
                               "duration": st.one_of(st.integers(-1, 60), st.floats(), st.text(max_size=2)),
                               "value": st.one_of(st.floats(), st.integers(-3, 900), st.none())}), max_size=4)},
        optional={"generatedAt": st.one_of(st.none(), st.text(max_size=4))}), max_size=2),
    st.recursive(st.none() | st.integers() | st.text(max_size=6),
                 lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=3)),
))
def test_parser_never_crashes(body: Any) -> None:
    try:
        forecast = parse_forecast(body, region="westus", location="westus")
    except InvalidForecastError:
        return
    assert forecast.records
    validate_records(forecast.records)
