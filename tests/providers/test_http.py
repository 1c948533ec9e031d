"""The shared HTTP plumbing over real HTTP: retries, Retry-After, timeouts, TLS, error mapping."""

from __future__ import annotations

import datetime as dt
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from carbon_intensity_exporter.providers._http import (
    HttpClient,
    RetryPolicy,
    TokenBucket,
    check_url,
    retry_after_seconds,
    tls_context,
)
from carbon_intensity_exporter.settings import ConfigurationError
from tests.fakes.providers import (
    FakeServer,
    Reply,
    html_page,
    self_signed_cert,
    server_tls_context,
    truncated_json,
)

from .conftest import ClientFactory, Sleeps, assert_no_secret, fetch_error


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with FakeServer() as fake:
        fake.route(r"/ok", Reply(200, {"fine": True}))
        yield fake


def test_success_returns_json(server: FakeServer, make_client: ClientFactory) -> None:
    client = make_client("Test")
    assert client.get_json(server.url + "/ok") == {"fine": True}
    assert server.requests[0].headers["accept"] == "application/json"
    assert server.requests[0].headers["user-agent"].startswith("carbon-intensity-exporter/")


def test_5xx_is_retried_with_growing_backoff(server: FakeServer, make_client: ClientFactory, sleeps: Sleeps) -> None:
    server.queue(r"/ok", Reply(500, {"error": "boom"}), Reply(502, "bad gateway"))
    client = make_client("Test", attempts=3)
    assert client.get_json(server.url + "/ok") == {"fine": True}
    assert len(server.requests) == 3
    assert len(sleeps) == 2
    assert 1.0 <= sleeps[0] <= 2.0  # initial 1 s + up to 1 s jitter
    assert 2.0 <= sleeps[1] <= 3.0


def test_5xx_exhausted_is_server_error_naming_the_path_only(
    server: FakeServer, make_client: ClientFactory
) -> None:
    server.route(r"/v3/forecast", Reply(503, {"error": "maintenance"}))
    client = make_client("WattTime", attempts=2)
    error = fetch_error(
        lambda: client.get_json(server.url + "/v3/forecast", params={"region": "X", "token": "Zq9-secret-query"})
    )
    assert error.reason == "server_error"
    assert error.provider == "WattTime"
    assert "/v3/forecast" in error.message and "503" in error.message and "maintenance" in error.message
    assert "?" not in error.message and "region=" not in error.message
    assert_no_secret(error, "Zq9-secret-query")
    assert len(server.requests) == 2


def test_429_honours_retry_after(server: FakeServer, make_client: ClientFactory, sleeps: Sleeps) -> None:
    server.queue(r"/ok", Reply(429, {"error": "slow down"}, headers={"Retry-After": "3"}))
    client = make_client("Test")
    assert client.get_json(server.url + "/ok") == {"fine": True}
    assert sleeps == [3.0]


def test_429_with_a_long_retry_after_gives_up_at_once(
    server: FakeServer, make_client: ClientFactory, sleeps: Sleeps
) -> None:
    server.route(r"/limited", Reply(429, {"error": "slow down"}, headers={"Retry-After": "3600"}))
    client = make_client("Test", max_retry_after=10)
    error = fetch_error(lambda: client.get_json(server.url + "/limited"))
    assert error.reason == "rate_limited"
    assert "3600" in error.message
    assert sleeps == []
    assert len(server.requests) == 1


def test_429_exhausted_is_rate_limited(server: FakeServer, make_client: ClientFactory, sleeps: Sleeps) -> None:
    server.route(r"/limited", Reply(429, {"error": "slow down"}))
    error = fetch_error(lambda: make_client("Test", attempts=3).get_json(server.url + "/limited"))
    assert error.reason == "rate_limited"
    assert len(server.requests) == 3 and len(sleeps) == 2


def test_retry_after_as_http_date() -> None:
    now = dt.datetime(2026, 12, 4, 13, 0, 0, tzinfo=dt.UTC)
    assert retry_after_seconds("Fri, 04 Dec 2026 13:00:30 GMT", now) == 30.0
    assert retry_after_seconds("7", now) == 7.0
    assert retry_after_seconds("soon", now) is None
    assert retry_after_seconds(None, now) is None


def test_slow_response_times_out(server: FakeServer, make_client: ClientFactory, sleeps: Sleeps) -> None:
    server.route(r"/slow", Reply(200, {"late": True}, delay=1.0))
    client = make_client("Test", attempts=2, read_timeout=0.2)
    error = fetch_error(lambda: client.get_json(server.url + "/slow"))
    assert error.reason == "timeout"
    assert "/slow" in error.message and "timed out" in error.message
    assert len(sleeps) == 1


def test_slow_then_fast_succeeds(server: FakeServer, make_client: ClientFactory) -> None:
    server.queue(r"/ok", Reply(200, {"late": True}, delay=1.0))
    assert make_client("Test", read_timeout=0.2).get_json(server.url + "/ok") == {"fine": True}


def test_connection_refused_is_connection(make_client: ClientFactory, sleeps: Sleeps) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    error = fetch_error(lambda: make_client("Test", attempts=2).get_json(f"http://127.0.0.1:{port}/v3/x"))
    assert error.reason == "connection"
    assert "/v3/x" in error.message and "127.0.0.1" in error.message
    assert len(sleeps) == 1


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (html_page(200, "Captive portal"), "HTML"),
        (truncated_json(), "not valid JSON"),
        (Reply(200, b'{"value": NaN}'), "not valid JSON"),
        (Reply(200, b""), "not valid JSON"),
    ],
)
def test_bodies_that_are_not_json(
    server: FakeServer, make_client: ClientFactory, reply: Reply, expected: str
) -> None:
    server.route(r"/bad", reply)
    error = fetch_error(lambda: make_client("Test").get_json(server.url + "/bad"))
    assert error.reason == "invalid_response"
    assert expected in error.message and "/bad" in error.message


@pytest.mark.parametrize(
    ("reply", "reason", "words"),
    [
        (Reply(404, {"error": "not here"}), "client_error", "not here"),
        (Reply(400, {"detail": [{"loc": ["query", "region"], "msg": "field required", "type": "x"}]}),
         "client_error", "field required"),
        (Reply(401, {"error": "Unauthorized"}), "auth", "Unauthorized"),
        (html_page(403, "403 Forbidden"), "auth", "403 Forbidden"),
        (Reply(302, "", headers={"Location": "https://elsewhere.example/"}), "client_error", "redirect"),
    ],
)
def test_status_mapping(
    server: FakeServer, make_client: ClientFactory, reply: Reply, reason: str, words: str
) -> None:
    server.route(r"/status", reply)
    error = fetch_error(lambda: make_client("Test").get_json(server.url + "/status"))
    assert error.reason == reason
    assert words in error.message
    assert len(server.requests) == 1  # 4xx is never retried


def test_secrets_are_scrubbed_even_when_the_provider_echoes_them(
    server: FakeServer, make_client: ClientFactory
) -> None:
    server.route(r"/echo", Reply(400, {"error": "bad token hunter2-token-value"}))
    client = make_client("Test")
    client.add_secrets(["hunter2-token-value"])
    error = fetch_error(lambda: client.get_json(server.url + "/echo"))
    assert_no_secret(error, "hunter2-token-value")
    assert "***" in error.message


def test_token_bucket_limits_the_rate() -> None:
    now = [0.0]
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    bucket = TokenBucket(10, 10, clock=lambda: now[0], sleep=sleep)
    for _ in range(10):
        assert bucket.acquire() == 0.0
    waited = bucket.acquire()
    assert waited == pytest.approx(0.1)
    for _ in range(20):
        bucket.acquire()
    # 31 requests: 10 burst, then 10 per second.
    assert now[0] == pytest.approx(2.1)


def test_rate_limiter_is_used_per_request(server: FakeServer, make_client: ClientFactory, sleeps: Sleeps) -> None:
    client = make_client("Test", rate=1)  # burst 1, then 1 per second (the wait goes to ``sleeps``)
    client.get_json(server.url + "/ok")
    client.get_json(server.url + "/ok")
    assert sleeps and sleeps[0] > 0.5


def test_check_url() -> None:
    assert check_url("WT_BASE_URL", "https://api.watttime.org/v3/") == "https://api.watttime.org/v3/"
    for bad in ("api.watttime.org", "ftp://x/", "https://u:p@x/", "https://x/?token=1"):
        with pytest.raises(ConfigurationError) as info:
            check_url("WT_BASE_URL", bad)
        assert "WT_BASE_URL" in str(info.value)


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[FakeServer, Path]]:
    cert, key = self_signed_cert(tmp_path)
    with FakeServer(tls=server_tls_context(cert, key)) as fake:
        fake.route(r"/ok", Reply(200, {"tls": True}))
        yield fake, cert


def test_self_signed_tls_fails_clearly(
    tls_server: tuple[FakeServer, Path], make_client: ClientFactory, monkeypatch: pytest.MonkeyPatch,
    sleeps: Sleeps,
) -> None:
    server, _cert = tls_server
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    assert server.url.startswith("https://")
    error = fetch_error(lambda: make_client("Test").get_json(server.url + "/ok"))
    assert error.reason == "connection"
    assert "TLS" in error.message and "certificate" in error.message and "SSL_CERT_FILE" in error.message
    assert sleeps == []  # a certificate failure is not retried


def test_ssl_cert_file_trusts_the_local_ca(
    tls_server: tuple[FakeServer, Path], make_client: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, cert = tls_server
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    assert make_client("Test").get_json(server.url + "/ok") == {"tls": True}


def test_unreadable_ssl_cert_file_is_a_configuration_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "missing.pem"))
    with pytest.raises(ConfigurationError) as info:
        tls_context()
    assert "SSL_CERT_FILE" in str(info.value)


def test_defaults_keep_a_request_under_a_minute() -> None:
    policy = RetryPolicy()
    client = HttpClient("Test")
    try:
        per_attempt = client.connect_timeout + client.read_timeout
        by_attempts = policy.attempts * per_attempt + (policy.attempts - 1) * (policy.max_delay + policy.jitter)
        by_deadline = policy.deadline + policy.max_retry_after + per_attempt
        assert min(by_attempts, by_deadline) <= 60
    finally:
        client.close()


def test_undecodable_body_is_invalid_response(server: FakeServer, make_client: ClientFactory) -> None:
    server.route(r"/gzip", Reply(200, b"this is not gzip", headers={"Content-Encoding": "gzip"}))
    error = fetch_error(lambda: make_client("Test").get_json(server.url + "/gzip"))
    assert error.reason == "invalid_response" and "/gzip" in error.message
