"""What every provider offers, and the one error type the loop needs to understand.

A provider turns a cloud region into a :class:`~carbon_intensity_exporter.model.Forecast`. It owns its HTTP
client, credentials and region lookup; the loop only calls :meth:`Provider.fetch` and reads
:class:`FetchError` (whose ``reason`` is a small fixed vocabulary, safe as a metric label).
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, ClassVar, Literal

if TYPE_CHECKING:
    from ..model import Forecast
    from ..settings import Settings

FailureReason = Literal[
    "auth",  # credentials refused
    "not_in_plan",  # the account's plan does not cover this region / endpoint
    "rate_limited",  # 429 or the provider's equivalent
    "timeout",
    "connection",  # refused, DNS, TLS
    "server_error",  # 5xx
    "client_error",  # other 4xx: our request was wrong
    "invalid_response",  # not JSON, wrong shape, wrong units, bad values
    "no_data",  # a valid answer with nothing in it
    "no_coverage",  # the provider has no region for these coordinates
    "file",  # File provider: unreadable or malformed file
]

FAILURE_REASONS: tuple[FailureReason, ...] = FailureReason.__args__  # type: ignore[attr-defined]


class FetchError(Exception):
    """A fetch that produced no usable forecast. The last good data stays published.

    ``message`` is the one line that goes into the ConfigMap's ``message`` key and the logs: it names the
    provider and what to do, and never contains a secret.
    """

    def __init__(
        self, provider: str, reason: FailureReason, message: str, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.reason: FailureReason = reason
        self.message = message
        #: Seconds the provider asked us to wait (429 / 503 Retry-After): the loop waits at least this long.
        self.retry_after = retry_after

    def __str__(self) -> str:
        return f"{self.provider}: {self.message}"


class Provider(abc.ABC):
    """One forecast source. Built from :class:`Settings`; a missing setting raises ConfigurationError there."""

    name: ClassVar[str]
    #: The signal this provider reports (``co2_moer`` for WattTime, ``""`` when the provider has one only).
    signal_type: str = ""

    @classmethod
    @abc.abstractmethod
    def from_settings(cls, settings: Settings) -> Provider:
        """Check the settings this provider needs (ConfigurationError names the missing one)."""

    def check_region(self, region: str, provider_region: str | None) -> None:  # noqa: B027 - optional hook
        """Raise ConfigurationError when ``region`` can never work with this provider (before any call)."""

    @abc.abstractmethod
    def fetch(self, region: str, provider_region: str | None) -> Forecast:
        """The forecast for a cloud region (or the provider's own code): FetchError when there is none."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections; called once at shutdown."""
