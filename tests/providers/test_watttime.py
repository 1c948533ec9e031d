"""WattTime v3 over real HTTP against the local fake: login, token renewal, region lookup, units, failures."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from carbon_intensity_exporter.model import InvalidForecastError, validate_records
from carbon_intensity_exporter.providers import build_provider
from carbon_intensity_exporter.providers.watttime import WattTimeProvider, parse_forecast
from carbon_intensity_exporter.settings import ConfigurationError, Settings
from tests.fakes.providers import FakeWattTime, Reply, html_page, truncated_json, watttime_forecast

from .conftest import ClientFactory, Sleeps, assert_no_secret, fetch_error

G_PER_KWH_870 = 870 * 0.45359237  # 394.6253619 g/kWh, the docs' example value


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_provider(
    server: FakeWattTime, make_client: ClientFactory, clock: Clock | None = None, **kwargs: Any
) -> WattTimeProvider:
    return WattTimeProvider(
        server.username,
        server.password,
        base_url=server.base_url,
        login_url=server.login_url,
        client=make_client("WattTime", **kwargs),
        clock=clock or Clock(),
    )


def secrets_of(server: FakeWattTime) -> list[str]:
    return [server.password, *(f"wt-token-{n}-0123456789abcdef" for n in range(1, server.tokens_issued + 2))]


def test_forecast_for_westus(watttime_server: FakeWattTime, make_client: ClientFactory) -> None:
    provider = make_provider(watttime_server, make_client)
    forecast = provider.fetch("westus", None)
    assert forecast.provider == "WattTime"
    assert forecast.region == "westus"
    assert forecast.location == "CAISO_NORTH"
    assert forecast.signal_type == "co2_moer"
    assert len(forecast.records) == 288
    first = forecast.records[0]
    assert first.duration == 5
    assert first.location == "CAISO_NORTH"
    assert first.value == 394.625362  # 870 lbs/MWh x 0.45359237, to 6 decimals
    assert first.value == pytest.approx(G_PER_KWH_870, abs=1e-6)
    assert forecast.generated_at == first.timestamp
    lookup = watttime_server.requests_to(r"/v3/region-from-loc")[0]
    assert lookup.query == {"latitude": "37.783", "longitude": "-122.417", "signal_type": "co2_moer"}
    request = watttime_server.requests_to(r"/v3/forecast")[0]
    assert request.query == {"region": "CAISO_NORTH", "signal_type": "co2_moer", "horizon_hours": "24"}
    assert request.headers["authorization"].startswith("Bearer wt-token-1-")


def test_token_and_region_are_cached(watttime_server: FakeWattTime, make_client: ClientFactory) -> None:
    provider = make_provider(watttime_server, make_client)
    provider.fetch("westus", None)
    provider.fetch("westus", None)
    assert len(watttime_server.requests_to(r"/login")) == 1
    assert len(watttime_server.requests_to(r"/v3/region-from-loc")) == 1
    assert len(watttime_server.requests_to(r"/v3/forecast")) == 2


def test_token_renewed_before_expiry(watttime_server: FakeWattTime, make_client: ClientFactory) -> None:
    clock = Clock()
    provider = make_provider(watttime_server, make_client, clock)
    provider.fetch("westus", "CAISO_NORTH")
    clock.now += 24 * 60
    provider.fetch("westus", "CAISO_NORTH")
    assert provider.logins == 1
    clock.now += 2 * 60  # 26 minutes: renewed before WattTime's 30
    provider.fetch("westus", "CAISO_NORTH")
    assert provider.logins == 2
    assert watttime_server.requests_to(r"/v3/forecast")[-1].headers["authorization"].startswith("Bearer wt-token-2-")


@pytest.mark.parametrize("style", ["401", "403html"])
def test_token_expiry_mid_run_logs_in_again_once(
    watttime_server: FakeWattTime, make_client: ClientFactory, style: str
) -> None:
    provider = make_provider(watttime_server, make_client)
    provider.fetch("westus", "CAISO_NORTH")
    watttime_server.expired_style = style
    watttime_server.expire_tokens()
    forecast = provider.fetch("westus", "CAISO_NORTH")
    assert len(forecast.records) == 288
    assert provider.logins == 2


def test_refused_even_after_a_fresh_login(watttime_server: FakeWattTime, make_client: ClientFactory) -> None:
    watttime_server.queue(r"/v3/forecast", html_page(403, "403 Forbidden"), html_page(403, "403 Forbidden"))
    provider = make_provider(watttime_server, make_client)
    error = fetch_error(lambda: provider.fetch("westus", "CAISO_NORTH"))
    assert error.reason == "auth"
    assert provider.logins == 2
    assert "even after a fresh login" in error.message
    assert_no_secret(error, *secrets_of(watttime_server))


def test_wrong_password(watttime_server: FakeWattTime, make_client: ClientFactory) -> None:
    provider = WattTimeProvider(
        watttime_server.username,
        "wrong-Pa55word-xyz",
        base_url=watttime_server.base_url,
        login_url=watttime_server.login_url,
        client=make_client("WattTime"),
    )
    error = fetch_error(lambda: provider.fetch("westus", None))
    assert error.reason == "auth"
    assert "WT_USERNAME" in error.message and "WT_PASSWORD" in error.message
    assert "/login" in error.message
    assert_no_secret(error, "wrong-Pa55word-xyz", watttime_server.password)


def test_region_outside_the_free_plan(watttime_server: FakeWattTime, make_client: ClientFactory) -> None:
    provider = make_provider(watttime_server, make_client)
    error = fetch_error(lambda: provider.fetch("eastus", "PJM_DC"))
    assert error.reason == "not_in_plan"
    assert "CAISO_NORTH" in error.message and "westus" in error.message and "free" in error.message
    assert "Invalid scope" in error.message
    assert_no_secret(error, *secrets_of(watttime_server))


def test_no_coverage_for_the_coordinates(watttime_server: FakeWattTime, make_client: ClientFactory) -> None:
    watttime_server.default_region = ""
    error = fetch_error(lambda: make_provider(watttime_server, make_client).fetch("aws:ap-south-1", None))
    assert error.reason == "no_coverage"
    assert "PROVIDER_REGION" in error.message and "aws:ap-south-1" in error.message


def _body(**changes: Any) -> dict[str, Any]:
    start = dt.datetime(2026, 12, 4, 13, 0, tzinfo=dt.UTC)
    body = watttime_forecast(start, 6)
    body["meta"].update(changes.pop("meta", {}))
    body.update(changes)
    return body


def _points(*values: Any, times: list[str] | None = None) -> list[dict[str, Any]]:
    times = times or [f"2026-12-04T13:{5 * index:02d}:00+00:00" for index in range(len(values))]
    return [{"point_time": when, "value": value} for when, value in zip(times, values, strict=True)]


FAILURES: list[tuple[str, Reply, str, str]] = [
    ("500", Reply(500, {"error": "internal"}), "server_error", "500"),
    ("429", Reply(429, {"error": "rate"}, headers={"Retry-After": "1"}), "rate_limited", "429"),
    ("truncated", truncated_json(), "invalid_response", "not valid JSON"),
    ("html-200", html_page(200, "Maintenance"), "invalid_response", "HTML"),
    ("empty", Reply(200, _body(data=[])), "no_data", "no points"),
    ("percentile", Reply(200, _body(meta={"units": "percentile"})), "invalid_response", "percentile"),
    ("wrong-units", Reply(200, _body(meta={"units": "kg_co2_per_mwh"})), "invalid_response", "kg_co2_per_mwh"),
    ("nan", Reply(200, json.dumps(_body()).replace("870", "NaN", 1).encode()), "invalid_response", "NaN"),
    ("negative", Reply(200, _body(data=_points(870, -1))), "invalid_response", "-1"),
    ("string", Reply(200, _body(data=_points(870, "high"))), "invalid_response", "not a number"),
    ("null", Reply(200, _body(data=_points(None))), "invalid_response", "not a number"),
    ("unsorted", Reply(200, _body(data=_points(1, 2, times=["2026-12-04T13:05:00+00:00",
                                                            "2026-12-04T13:00:00+00:00"]))),
     "invalid_response", "sorted"),
    ("duplicate", Reply(200, _body(data=_points(1, 2, times=["2026-12-04T13:00:00+00:00"] * 2))),
     "invalid_response", "duplicate"),
    ("naive-time", Reply(200, _body(data=_points(1, times=["2026-12-04T13:00:00"]))), "invalid_response", "offset"),
    ("bad-period", Reply(200, _body(meta={"data_point_period_seconds": 90})), "invalid_response", "minutes"),
    ("no-meta", Reply(200, {"data": []}), "invalid_response", "meta"),
    ("list", Reply(200, [1, 2]), "invalid_response", "not a JSON object"),
    ("400", Reply(400, {"error": "INVALID_QUERY_PARAMS", "msg": "You've provided invalid parameters"}),
     "client_error", "invalid parameters"),
    ("422", Reply(422, {"detail": [{"loc": ["query", "horizon_hours"], "msg": "bad horizon", "type": "x"}]}),
     "client_error", "bad horizon"),
]


@pytest.mark.parametrize(("name", "reply", "reason", "words"), FAILURES, ids=[f[0] for f in FAILURES])
def test_forecast_failure_shapes(
    watttime_server: FakeWattTime, make_client: ClientFactory, sleeps: Sleeps,
    name: str, reply: Reply, reason: str, words: str,
) -> None:
    watttime_server.route(r"/v3/forecast", reply)
    provider = make_provider(watttime_server, make_client)
    error = fetch_error(lambda: provider.fetch("westus", "CAISO_NORTH"))
    assert error.provider == "WattTime"
    assert error.reason == reason, error.message
    assert words in error.message
    assert "/v3/forecast" in error.message
    assert "?" not in error.message and "horizon_hours=" not in error.message
    assert_no_secret(error, *secrets_of(watttime_server))


def test_from_settings_and_region_checks(watttime_server: FakeWattTime) -> None:
    with pytest.raises(ConfigurationError, match="WT_USERNAME and WT_PASSWORD"):
        WattTimeProvider.from_settings(Settings(provider="WattTime", wt_username=None, wt_password=None))
    with pytest.raises(ConfigurationError, match="WT_SIGNAL_TYPE"):
        WattTimeProvider.from_settings(Settings(wt_username="a", wt_password="b", wt_signal_type="co2_index"))
    with pytest.raises(ConfigurationError, match="WT_BASE_URL"):
        WattTimeProvider.from_settings(Settings(wt_username="a", wt_password="b", wt_base_url="not a url"))
    settings = Settings(
        provider="WattTime", wt_username=watttime_server.username, wt_password=watttime_server.password,
        wt_base_url=watttime_server.base_url, wt_login_url=watttime_server.login_url, forecast_horizon_hours=1,
    )
    provider = build_provider(settings)
    try:
        assert isinstance(provider, WattTimeProvider)
        with pytest.raises(ConfigurationError, match="wetsus"):
            provider.check_region("wetsus", None)
        provider.check_region("wetsus", "CAISO_NORTH")
        provider.check_region("westus", None)
        forecast = provider.fetch("westus", None)
        assert len(forecast.records) == 12  # horizon_hours=1 → 12 five-minute points
        assert watttime_server.requests_to(r"/v3/forecast")[0].query["horizon_hours"] == "1"
    finally:
        provider.close()


def test_default_client_limits_to_ten_requests_per_second() -> None:
    provider = WattTimeProvider("u", "p")
    try:
        limiter = provider._client.rate_limiter
        assert limiter is not None and limiter.rate == 10
    finally:
        provider.close()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)
point = st.fixed_dictionaries(
    {"point_time": st.one_of(st.datetimes(timezones=st.just(dt.UTC)).map(lambda d: d.isoformat()), st.text()),
     "value": st.one_of(st.integers(-5, 5000), st.floats(), st.text(max_size=5))}
)
forecast_bodies = st.fixed_dictionaries(
    {"data": st.lists(point, max_size=6),
     "meta": st.fixed_dictionaries({"units": st.sampled_from(["lbs_co2_per_mwh", "percentile"]),
                                    "data_point_period_seconds": st.sampled_from([300, 60, 0, 90, "x"])})}
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(json_values, forecast_bodies))
def test_parser_never_crashes_and_accepts_only_valid_forecasts(body: Any) -> None:
    try:
        forecast = parse_forecast(body, region="westus", location="CAISO_NORTH", signal_type="co2_moer")
    except InvalidForecastError:
        return
    assert forecast.records
    validate_records(forecast.records)
    assert all(record.value >= 0 and record.duration >= 1 for record in forecast.records)


def test_cloud_region_outside_the_free_plan(watttime_server: FakeWattTime, make_client: ClientFactory) -> None:
    """eastus resolves (region-from-loc) to a PJM region, which a free account may not read."""
    error = fetch_error(lambda: make_provider(watttime_server, make_client).fetch("eastus", None))
    assert error.reason == "not_in_plan"
    assert "PJM_DC" in error.message and "CAISO_NORTH" in error.message
    lookup = watttime_server.requests_to(r"/v3/region-from-loc")[0]
    assert lookup.query["latitude"] == "37.3719"


def test_slow_forecast_is_retried_then_times_out(
    watttime_server: FakeWattTime, make_client: ClientFactory, sleeps: Sleeps
) -> None:
    provider = WattTimeProvider(
        watttime_server.username, watttime_server.password, base_url=watttime_server.base_url,
        login_url=watttime_server.login_url, client=make_client("WattTime", read_timeout=0.2, attempts=2),
    )
    watttime_server.queue(r"/v3/forecast", Reply(200, {}, delay=0.6))
    assert len(provider.fetch("westus", "CAISO_NORTH").records) == 288  # one slow answer: retried
    watttime_server.route(r"/v3/forecast", Reply(200, {}, delay=0.6))
    error = fetch_error(lambda: provider.fetch("westus", "CAISO_NORTH"))
    assert error.reason == "timeout" and "/v3/forecast" in error.message


def test_429_on_forecast_waits_retry_after(
    watttime_server: FakeWattTime, make_client: ClientFactory, sleeps: Sleeps
) -> None:
    watttime_server.queue(r"/v3/forecast", Reply(429, {"error": "Too Many Requests"}, headers={"Retry-After": "2"}))
    assert make_provider(watttime_server, make_client).fetch("westus", "CAISO_NORTH").records
    assert sleeps == [2.0]


def test_renewed_tokens_do_not_pile_up_in_the_scrub_list(
    watttime_server: FakeWattTime, make_client: ClientFactory
) -> None:
    clock = Clock()
    provider = make_provider(watttime_server, make_client, clock)
    for _ in range(5):
        provider.fetch("westus", "CAISO_NORTH")
        clock.now += 26 * 60
    assert provider.logins == 5
    assert provider._client.secrets == [watttime_server.password, "wt-token-5-0123456789abcdef"]
