"""Electricity Maps over real HTTP against the local fake: zone or coordinates, plan errors, failures."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from carbon_intensity_exporter.model import InvalidForecastError, validate_records
from carbon_intensity_exporter.providers import build_provider
from carbon_intensity_exporter.providers.electricitymaps import ElectricityMapsProvider, parse_forecast
from carbon_intensity_exporter.settings import ConfigurationError, Settings
from tests.fakes.providers import FakeElectricityMaps, Reply, em_forecast, html_page, truncated_json

from .conftest import ClientFactory, assert_no_secret, fetch_error

START = dt.datetime(2023, 5, 2, 20, 0, tzinfo=dt.UTC)


def make_provider(server: FakeElectricityMaps, make_client: ClientFactory, **kwargs: Any) -> ElectricityMapsProvider:
    return ElectricityMapsProvider(
        server.token, token_header=server.header, base_url=server.base_url, client=make_client("ElectricityMaps"),
        **kwargs,
    )


def test_forecast_by_zone(em_server: FakeElectricityMaps, make_client: ClientFactory) -> None:
    forecast = make_provider(em_server, make_client).fetch("westeurope", "DE")
    assert forecast.location == "DE" and forecast.region == "westeurope" and forecast.provider == "ElectricityMaps"
    assert len(forecast.records) == 24
    assert [record.value for record in forecast.records[:2]] == [557.0, 552.5]  # ints and floats, g/kWh as is
    assert forecast.records[0].duration == 60
    assert forecast.generated_at == forecast.records[0].timestamp - dt.timedelta(minutes=8)
    request = em_server.requests[0]
    assert request.query == {"zone": "DE", "horizonHours": "24"}
    assert request.headers["auth-token"] == em_server.token


def test_forecast_by_coordinates_disables_caller_lookup(
    em_server: FakeElectricityMaps, make_client: ClientFactory
) -> None:
    forecast = make_provider(em_server, make_client).fetch("westus", None)
    assert forecast.location == "US-CAL-CISO"
    query = em_server.requests[0].query
    assert query["lat"] == "37.783" and query["lon"] == "-122.417" and query["disableCallerLookup"] == "true"
    assert "zone" not in query


def test_custom_token_header(make_client: ClientFactory) -> None:
    with FakeElectricityMaps(header="X-BLOBR-KEY") as server:
        forecast = make_provider(server, make_client).fetch("westus", "US-CAL-CISO")
        assert forecast.records
        assert server.requests[0].headers["x-blobr-key"] == server.token


@pytest.mark.parametrize(
    ("granularity", "step", "minutes"),
    [("5_minutes", 5, 5), ("15_minutes", 15, 15), ("hourly", 60, 60), (None, 15, 15), (None, 30, 30)],
)
def test_slot_length(
    em_server: FakeElectricityMaps, make_client: ClientFactory, granularity: str | None, step: int, minutes: int
) -> None:
    em_server.route(r"/v3/.*", Reply(200, em_forecast(START, 8, step_minutes=step, granularity=granularity)))
    forecast = make_provider(em_server, make_client).fetch("westeurope", "DE")
    assert {record.duration for record in forecast.records} == {minutes}


def test_invalid_token(em_server: FakeElectricityMaps, make_client: ClientFactory) -> None:
    provider = ElectricityMapsProvider(
        "em-wrong-token-999", base_url=em_server.base_url, client=make_client("ElectricityMaps")
    )
    error = fetch_error(lambda: provider.fetch("westeurope", "DE"))
    assert error.reason == "auth"
    assert "EM_API_TOKEN" in error.message and "Invalid auth-token" in error.message
    assert_no_secret(error, "em-wrong-token-999", em_server.token)


def test_zone_not_in_plan(em_server: FakeElectricityMaps, make_client: ClientFactory) -> None:
    em_server.plan_zones = {"DE"}
    error = fetch_error(lambda: make_provider(em_server, make_client).fetch("francecentral", "FR"))
    assert error.reason == "not_in_plan"
    assert "zone FR" in error.message and "one zone" in error.message
    assert_no_secret(error, em_server.token)


def test_forecast_endpoint_not_in_plan(em_server: FakeElectricityMaps, make_client: ClientFactory) -> None:
    em_server.forecast_in_plan = False
    error = fetch_error(lambda: make_provider(em_server, make_client).fetch("westeurope", "DE"))
    assert error.reason == "not_in_plan"
    assert "paid plan" in error.message
    assert_no_secret(error, em_server.token)


def test_no_zone_for_coordinates(em_server: FakeElectricityMaps, make_client: ClientFactory) -> None:
    em_server.route(r"/v3/.*", Reply(404, {"error": "No zone found for these coordinates"}))
    error = fetch_error(lambda: make_provider(em_server, make_client).fetch("aws:me-south-1", None))
    assert error.reason == "no_coverage"
    assert "PROVIDER_REGION" in error.message


def _points(*pairs: tuple[Any, str]) -> dict[str, Any]:
    return {"zone": "DE", "forecast": [{"carbonIntensity": value, "datetime": when} for value, when in pairs]}


FAILURES: list[tuple[str, Reply, str, str]] = [
    ("500", Reply(500, {"error": "oops"}), "server_error", "500"),
    ("429", Reply(429, {"error": "Too many requests"}), "rate_limited", "429"),
    ("html", html_page(200, "Cloudflare"), "invalid_response", "HTML"),
    ("truncated", truncated_json('{"zone":"DE","forecast":[{"carbonIn'), "invalid_response", "not valid JSON"),
    ("empty", Reply(200, {"zone": "DE", "forecast": []}), "no_data", "no points"),
    ("no-forecast-key", Reply(200, {"zone": "DE"}), "invalid_response", "forecast"),
    ("negative", Reply(200, _points((-3, "2023-05-02T20:00:00.000Z"))), "invalid_response", "-3"),
    ("string", Reply(200, _points(("557", "2023-05-02T20:00:00.000Z"))), "invalid_response", "not a number"),
    ("nan", Reply(200, b'{"zone":"DE","forecast":[{"carbonIntensity":NaN,"datetime":"2023-05-02T20:00:00Z"}]}'),
     "invalid_response", "NaN"),
    ("unsorted", Reply(200, _points((1, "2023-05-02T21:00:00.000Z"), (2, "2023-05-02T20:00:00.000Z"))),
     "invalid_response", "not sorted"),
    ("duplicate", Reply(200, _points((1, "2023-05-02T20:00:00.000Z"), (2, "2023-05-02T20:00:00.000Z"))),
     "invalid_response", "duplicate"),
    ("bad-granularity", Reply(200, {**_points((1, "2023-05-02T20:00:00.000Z")), "temporalGranularity": "daily"}),
     "invalid_response", "daily"),
    ("400", Reply(400, {"error": "Zone 'XX' does not exist"}), "client_error", "does not exist"),
]


@pytest.mark.parametrize(("name", "reply", "reason", "words"), FAILURES, ids=[f[0] for f in FAILURES])
def test_failure_shapes(
    em_server: FakeElectricityMaps, make_client: ClientFactory, name: str, reply: Reply, reason: str, words: str
) -> None:
    em_server.route(r"/v3/.*", reply)
    error = fetch_error(lambda: make_provider(em_server, make_client).fetch("westeurope", "DE"))
    assert error.reason == reason, error.message
    assert words in error.message
    assert "/v3/carbon-intensity/forecast" in error.message and "zone=" not in error.message
    assert_no_secret(error, em_server.token)


def test_from_settings(em_server: FakeElectricityMaps) -> None:
    with pytest.raises(ConfigurationError, match="EM_API_TOKEN"):
        ElectricityMapsProvider.from_settings(Settings(provider="ElectricityMaps"))
    with pytest.raises(ConfigurationError, match="EM_API_TOKEN_HEADER"):
        ElectricityMapsProvider.from_settings(Settings(em_api_token="t", em_api_token_header="bad header:"))
    provider = build_provider(
        Settings(provider="electricitymaps", em_api_token=em_server.token, em_base_url=em_server.base_url)
    )
    try:
        with pytest.raises(ConfigurationError, match="not a known"):
            provider.check_region("nowhere-1", None)
        provider.check_region("nowhere-1", "DE")
        assert provider.fetch("westus", None).location == "US-CAL-CISO"
    finally:
        provider.close()


bodies = st.fixed_dictionaries(
    {"zone": st.sampled_from(["DE", "", 5]),
     "forecast": st.lists(
         st.fixed_dictionaries({
             "carbonIntensity": st.one_of(st.integers(-5, 900), st.floats(), st.none(), st.text(max_size=3)),
             "datetime": st.one_of(st.datetimes(timezones=st.just(dt.UTC)).map(lambda d: d.isoformat()), st.text()),
         }), max_size=5)},
    optional={"temporalGranularity": st.sampled_from(["hourly", "5_minutes", "weekly"]),
              "updatedAt": st.one_of(st.text(max_size=5), st.just("2023-05-02T19:52:09.141Z"))},
)


@settings(max_examples=200, deadline=None)
@given(st.one_of(bodies, st.recursive(st.none() | st.integers() | st.text(max_size=8),
                                      lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c,
                                                                                          max_size=3))))
def test_parser_never_crashes(body: Any) -> None:
    try:
        forecast = parse_forecast(body, region="westus", zone="DE")
    except InvalidForecastError:
        return
    assert forecast.records
    validate_records(forecast.records)


def test_slow_and_rate_limited_answers(em_server: FakeElectricityMaps, make_client: ClientFactory) -> None:
    provider = ElectricityMapsProvider(
        em_server.token, base_url=em_server.base_url,
        client=make_client("ElectricityMaps", read_timeout=0.2, attempts=3),
    )
    em_server.queue(r"/v3/.*", Reply(200, {}, delay=0.6), Reply(429, {"error": "slow"}, headers={"Retry-After": "1"}))
    assert provider.fetch("westeurope", "DE").records
    assert len(em_server.requests) == 3
