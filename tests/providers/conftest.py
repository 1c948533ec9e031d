"""Fixtures for the provider tests: fast HTTP clients (no real back-off sleeping) and the fake servers."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from carbon_intensity_exporter.providers._http import HttpClient, RetryPolicy, TokenBucket
from carbon_intensity_exporter.providers.base import FetchError
from tests.fakes.providers import (
    FakeCarbonAwareSDK,
    FakeElectricityMaps,
    FakeUKCarbonIntensity,
    FakeWattTime,
)


class Sleeps(list[float]):
    """Records the back-off delays instead of sleeping them."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)

    def clock(self) -> float:
        """Virtual time: advances only by what was "slept" (for the rate limiter)."""
        return sum(self)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


ClientFactory = Callable[..., HttpClient]


@pytest.fixture
def make_client(sleeps: Sleeps) -> Iterator[ClientFactory]:
    """``make_client("WattTime", attempts=3, read_timeout=0.3, rate=None)``: closed after the test."""
    made: list[HttpClient] = []

    def make(
        provider: str,
        *,
        attempts: int = 3,
        read_timeout: float = 2.0,
        connect_timeout: float = 2.0,
        max_retry_after: float = 20.0,
        rate: float | None = None,
    ) -> HttpClient:
        client = HttpClient(
            provider,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retry=RetryPolicy(attempts=attempts, max_retry_after=max_retry_after, sleep=sleeps),
            rate_limiter=TokenBucket(rate, clock=sleeps.clock, sleep=sleeps) if rate else None,
        )
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture
def watttime_server() -> Iterator[FakeWattTime]:
    with FakeWattTime() as server:
        yield server


@pytest.fixture
def em_server() -> Iterator[FakeElectricityMaps]:
    with FakeElectricityMaps() as server:
        yield server


@pytest.fixture
def ukci_server() -> Iterator[FakeUKCarbonIntensity]:
    with FakeUKCarbonIntensity() as server:
        yield server


@pytest.fixture
def cas_server() -> Iterator[FakeCarbonAwareSDK]:
    with FakeCarbonAwareSDK() as server:
        yield server


def assert_no_secret(error: BaseException, *secrets: str) -> None:
    """No secret in the message, the str() or the repr() of an error (nor in its chained causes)."""
    texts = [str(error), repr(error), getattr(error, "message", "")]
    cause = error.__cause__ or error.__context__
    while cause is not None:
        texts.append(str(cause))
        cause = cause.__cause__ or cause.__context__
    for secret in secrets:
        for text in texts:
            assert secret not in text, f"secret leaked into {text!r}"


def fetch_error(call: Callable[[], object]) -> FetchError:
    with pytest.raises(FetchError) as info:
        call()
    return info.value
