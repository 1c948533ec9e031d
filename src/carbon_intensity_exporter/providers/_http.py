"""HTTP plumbing shared by the networked providers: one place for timeouts, retries, rate limits and errors.

Why one module: every provider must behave the same under outages (bounded retries with backoff and
jitter, ``Retry-After`` honoured, a client-side rate limit) and must produce the same kind of one-line
:class:`FetchError` — naming the provider and the URL *path* only, never a query string, a header or a
secret. Providers keep only what is specific to them (status meanings, response shapes).
"""

from __future__ import annotations

import email.utils
import json
import math
import os
import re
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import certifi
import httpx
import tenacity

from ..model import Forecast, InvalidForecastError, parse_time
from ..settings import ConfigurationError
from .base import FailureReason, FetchError

try:  # pragma: no cover - trivial
    from importlib.metadata import version as _version

    _VERSION = _version("carbon-intensity-exporter")
except Exception:  # pragma: no cover - not installed (running from a checkout)
    _VERSION = "0"

USER_AGENT = f"carbon-intensity-exporter/{_VERSION}"
DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_READ_TIMEOUT = 10.0
_DETAIL_LIMIT = 200


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard one request tries. No attempt starts after ``deadline`` seconds, so with the default
    timeouts a request with all its retries ends within about 45 s.

    ``sleep`` is injectable so tests run without real waiting.
    """

    attempts: int = 3
    initial_delay: float = 1.0
    max_delay: float = 4.0
    jitter: float = 1.0
    max_retry_after: float = 10.0
    deadline: float = 30.0
    sleep: Callable[[float], None] = time.sleep


class TokenBucket:
    """A small client-side rate limiter (``rate`` requests per second, bursts of ``burst``), thread-safe.

    It keeps us under a provider's published limit (WattTime: 3,000 per 5 minutes, about 10 per second)
    rather than learning it from 429s.
    """

    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.capacity = burst if burst is not None else max(1.0, rate)
        self._tokens = self.capacity
        self._clock = clock
        self._sleep = sleep
        self._updated = clock()
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Take one token, sleeping until one is available; returns the seconds waited."""
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
                self._updated = now
                if self._tokens >= 1 - 1e-9:  # tolerance: float rounding must not spin forever
                    self._tokens = max(0.0, self._tokens - 1)
                    return waited
                delay = (1 - self._tokens) / self.rate
            self._sleep(delay)
            waited += delay


def tls_context() -> ssl.SSLContext:
    """Certificate verification always on; ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` replace the certifi bundle.

    httpx >= 0.28 does the same when ``trust_env`` is on; building it here makes the behaviour explicit,
    independent of the httpx version, and turns an unreadable bundle into a configuration error.
    """
    cafile = os.environ.get("SSL_CERT_FILE") or None
    capath = os.environ.get("SSL_CERT_DIR") or None
    try:
        if cafile or capath:
            return ssl.create_default_context(cafile=cafile, capath=capath)
        return ssl.create_default_context(cafile=certifi.where())
    except (OSError, ssl.SSLError) as exc:
        name = "SSL_CERT_FILE" if cafile else "SSL_CERT_DIR"
        raise ConfigurationError(
            f"{name}={cafile or capath}: cannot load CA certificates "
            f"({getattr(exc, 'strerror', None) or exc}); point it at a PEM bundle or unset it"
        ) from None


def check_url(setting: str, url: str) -> str:
    """A base URL must be absolute http(s): caught at start-up (exit code 2), not at the first fetch."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        raise ConfigurationError(f"{setting}={url!r}: not a valid URL") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ConfigurationError(f"{setting}={url!r}: must be an absolute http:// or https:// URL")
    if parsed.query or parsed.userinfo:
        raise ConfigurationError(f"{setting}: must not carry a query string or credentials")
    return url


def join_url(base: str, path: str) -> str:
    """``base`` + ``path`` with exactly one slash between them (base URLs are given with or without one)."""
    return base.rstrip("/") + "/" + path.lstrip("/")


def _attempts_text(count: int) -> str:
    return f"{count} attempt{'s' if count != 1 else ''}"


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds: delta-seconds or an HTTP date; None when absent or unreadable."""
    if value is None:
        return None
    text = value.strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _is_tls_error(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            break
        if isinstance(seen, ssl.SSLError | ssl.CertificateError):
            return True
        seen = seen.__cause__ or seen.__context__
    text = str(exc)
    return "CERTIFICATE_VERIFY_FAILED" in text or "SSL" in text


def _tls_detail(exc: BaseException) -> str:
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            break
        if isinstance(seen, ssl.SSLCertVerificationError) and seen.verify_message:
            return str(seen.verify_message)
        seen = seen.__cause__ or seen.__context__
    return str(exc)


def looks_like_html(response: httpx.Response) -> bool:
    content_type = response.headers.get("content-type", "").lower()
    if "html" in content_type:
        return True
    head = response.content[:200].lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html", b"<head", b"<body"))


def html_title(response: httpx.Response) -> str:
    match = re.search(rb"<title[^>]*>(.*?)</title>", response.content[:4000], re.IGNORECASE | re.DOTALL)
    if match:
        return " ".join(match.group(1).decode("utf-8", "replace").split())
    return "an HTML page"


def _error_text(body: Any) -> str:
    """The provider's own words from the error shapes we know (``error``, ``message``, ``detail``...)."""
    if isinstance(body, str):
        return body
    if isinstance(body, list):
        return "; ".join(_error_text(item) for item in body[:3])
    if not isinstance(body, dict):
        return ""
    parts: list[str] = []
    for key in ("error", "title", "message", "msg", "detail"):
        value = body.get(key)
        if value is None or value == "":
            continue
        if isinstance(value, dict):
            text = str(value.get("message") or value.get("code") or "")
        elif isinstance(value, list):
            text = "; ".join(
                str(item.get("msg", item)) if isinstance(item, dict) else str(item) for item in value[:3]
            )
        else:
            text = str(value)
        if text and text not in parts:
            parts.append(text)
    errors = body.get("errors")
    if isinstance(errors, dict):
        for key, value in list(errors.items())[:3]:
            parts.append(f"{key}: {value[0] if isinstance(value, list) and value else value}")
    return "; ".join(parts)


@dataclass(slots=True)
class HttpClient:
    """A provider's HTTP client: ``request`` retries what is worth retrying, the rest maps to FetchError.

    ``secrets`` are scrubbed from every message this client builds (belt and braces: messages are built
    from paths and the provider's error text, which should never echo them anyway).
    """

    provider: str
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    read_timeout: float = DEFAULT_READ_TIMEOUT
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    rate_limiter: TokenBucket | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    secrets: list[str] = field(default_factory=list)
    _client: httpx.Client = field(init=False, repr=False)

    def __post_init__(self) -> None:
        timeout = httpx.Timeout(self.read_timeout, connect=self.connect_timeout)
        self._client = httpx.Client(
            timeout=timeout,
            verify=tls_context(),
            follow_redirects=False,
            headers={"User-Agent": USER_AGENT, "Accept": "application/json", **self.headers},
            trust_env=True,
        )

    def add_secrets(self, values: Iterable[str | None]) -> None:
        self.secrets.extend(value for value in values if value)

    def replace_secret(self, old: str | None, new: str) -> None:
        """Swap a rotating secret (a renewed token) so the list does not grow for ever."""
        if old in self.secrets:
            self.secrets.remove(old)
        self.add_secrets([new])

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            if len(secret) >= 3:
                text = text.replace(secret, "***")
        return text

    def error(self, reason: FailureReason, message: str) -> FetchError:
        """A FetchError for this provider, with any secret scrubbed from the message."""
        return FetchError(self.provider, reason, self.scrub(message))

    def close(self) -> None:
        self._client.close()

    # -- sending -----------------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str | int | float] | None = None,
        headers: Mapping[str, str] | None = None,
        auth: tuple[str, str] | None = None,
    ) -> httpx.Response:
        """Send, retrying 5xx, 429, timeouts and connection errors; return the final non-retryable response.

        Raises FetchError when the retries run out (``server_error``, ``rate_limited``, ``timeout``,
        ``connection``). Any other status (2xx, 3xx, 4xx) is returned for the caller to interpret.
        """
        policy = self.retry
        path = httpx.URL(url).path or "/"
        backoff = tenacity.wait_exponential_jitter(
            initial=policy.initial_delay, max=policy.max_delay, jitter=policy.jitter
        )

        made = 0

        def attempt() -> httpx.Response:
            nonlocal made
            made += 1
            if self.rate_limiter is not None:
                self.rate_limiter.acquire()
            return self._client.request(method, url, params=params, headers=headers, auth=auth)

        def retryable(state: tenacity.RetryCallState) -> bool:
            outcome = state.outcome
            if outcome is None:
                return False
            if outcome.failed:
                exc = outcome.exception()
                return isinstance(exc, httpx.TransportError) and not _is_tls_error(exc)
            response: httpx.Response = outcome.result()
            return response.status_code >= 500 or response.status_code == 429

        def server_wait(state: tenacity.RetryCallState) -> float | None:
            outcome = state.outcome
            if outcome is None or outcome.failed:
                return None
            response: httpx.Response = outcome.result()
            if response.status_code in (429, 503):
                return retry_after_seconds(response.headers.get("retry-after"))
            return None

        def stop(state: tenacity.RetryCallState) -> bool:
            elapsed = state.seconds_since_start or 0.0
            if state.attempt_number >= policy.attempts or elapsed >= policy.deadline:
                return True
            asked = server_wait(state)
            return asked is not None and asked > policy.max_retry_after

        def wait(state: tenacity.RetryCallState) -> float:
            asked = server_wait(state)
            if asked is not None:
                return min(asked, policy.max_retry_after)
            return float(backoff(state))

        retrying = tenacity.Retrying(
            sleep=policy.sleep,
            stop=stop,
            wait=wait,
            retry=retryable,
            retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
        )
        try:
            response: httpx.Response = retrying(attempt)
        except httpx.TimeoutException:
            raise self.error(
                "timeout",
                f"{method} {path} timed out ({_attempts_text(made)}, connect {self.connect_timeout:g}s / "
                f"read {self.read_timeout:g}s); the provider is slow or unreachable, it will be tried again",
            ) from None
        except httpx.TransportError as exc:
            host = httpx.URL(url).host
            if _is_tls_error(exc):
                detail = _tls_detail(exc)
                what = (
                    f"TLS certificate of {host} could not be verified"
                    if "certificate" in detail.lower() or "CERTIFICATE" in str(exc)
                    else f"TLS handshake with {host} failed"
                )
                raise self.error(
                    "connection",
                    f"{method} {path}: {what} ({detail}); "
                    "if a proxy re-signs TLS, point SSL_CERT_FILE at its CA bundle",
                ) from None
            raise self.error(
                "connection",
                f"{method} {path}: cannot reach {host} ({type(exc).__name__}: "
                f"{str(exc)[:120] or 'no detail'}; {_attempts_text(made)}); "
                "check the network, proxy and base URL",
            ) from None
        except httpx.DecodingError as exc:
            raise self.error(
                "invalid_response", f"{method} {path}: the body could not be decoded ({str(exc)[:120]})"
            ) from None
        except httpx.HTTPError as exc:
            raise self.error("connection", f"{method} {path}: request failed ({type(exc).__name__})") from None
        if response.status_code == 429:
            asked = retry_after_seconds(response.headers.get("retry-after"))
            wait_text = f"; it asks to wait {asked:g}s" if asked is not None else ""
            error = self.error(
                "rate_limited",
                f"{method} {path}: rate limited (HTTP 429{wait_text}); it will be tried again later",
            )
            error.retry_after = asked
            raise error
        if response.status_code >= 500:
            error = self.error(
                "server_error",
                f"{method} {path}: server error HTTP {response.status_code}{self._detail(response)} "
                f"({_attempts_text(made)}); the provider has a problem, it will be tried again",
            )
            if response.status_code == 503:
                error.retry_after = retry_after_seconds(response.headers.get("retry-after"))
            raise error
        return response

    # -- interpreting --------------------------------------------------------------------------------------

    def detail(self, response: httpx.Response) -> str:
        """The provider's own error text (JSON error fields or an HTML page's title), short and scrubbed."""
        if looks_like_html(response):
            text = f"HTML page {html_title(response)!r}"
        else:
            try:
                text = _error_text(json.loads(response.content))
            except ValueError:
                text = response.content[:_DETAIL_LIMIT].decode("utf-8", "replace")
        text = " ".join(text.split())
        if len(text) > _DETAIL_LIMIT:
            text = text[: _DETAIL_LIMIT - 1] + "…"
        return self.scrub(text)

    def _detail(self, response: httpx.Response) -> str:
        text = self.detail(response)
        return f" ({text})" if text else ""

    def raise_for_status(self, response: httpx.Response, hint: str = "") -> None:
        """Default meaning of a non-2xx answer; providers check their special cases first."""
        status = response.status_code
        if 200 <= status < 300:
            return
        path = response.request.url.path
        method = response.request.method
        suffix = f"; {hint}" if hint else ""
        if 300 <= status < 400:
            raise self.error(
                "client_error",
                f"{method} {path}: unexpected redirect (HTTP {status}); check the base URL{suffix}",
            )
        if status in (401, 403):
            raise self.error(
                "auth", f"{method} {path}: access refused (HTTP {status}{self._detail(response)}){suffix}"
            )
        raise self.error(
            "client_error",
            f"{method} {path}: request refused (HTTP {status}{self._detail(response)}){suffix}",
        )

    def parse(self, response: httpx.Response, parser: Callable[[Any], Forecast], no_data_hint: str = "") -> Forecast:
        """Decode the JSON body and turn it into a Forecast; shape problems become FetchErrors naming the path."""
        body = self.decode_json(response)
        path = f"{response.request.method} {response.request.url.path}"
        try:
            return parser(body)
        except NoDataError as exc:
            raise self.error("no_data", f"{path}: {exc}{no_data_hint}") from None
        except InvalidForecastError as exc:
            raise self.error("invalid_response", f"{path}: {exc}") from None

    def decode_json(self, response: httpx.Response) -> Any:
        """The body as JSON; an HTML page, a truncated body or NaN literals are ``invalid_response``."""
        path = response.request.url.path
        method = response.request.method
        if looks_like_html(response):
            raise self.error(
                "invalid_response",
                f"{method} {path}: answered with {html_title(response)!r} (HTML) instead of JSON; "
                "check the base URL and any proxy in between",
            )

        def refuse_constant(name: str) -> Any:
            raise ValueError(f"{name} is not valid JSON")

        try:
            return json.loads(response.content, parse_constant=refuse_constant)
        except (ValueError, UnicodeDecodeError) as exc:
            raise self.error(
                "invalid_response",
                f"{method} {path}: the body is not valid JSON ({str(exc)[:80]}); "
                f"got {len(response.content)} bytes, possibly truncated",
            ) from None

    def get_json(
        self,
        url: str,
        *,
        params: Mapping[str, str | int | float] | None = None,
        headers: Mapping[str, str] | None = None,
        hint: str = "",
    ) -> Any:
        """GET, default status handling, then JSON: for endpoints with no special status meanings."""
        response = self.request("GET", url, params=params, headers=headers)
        self.raise_for_status(response, hint)
        return self.decode_json(response)


# -- validation helpers shared by the parsers ---------------------------------------------------------------


class NoDataError(InvalidForecastError):
    """A well-formed answer with no points in it: ``no_data`` rather than ``invalid_response``."""


def intensity(value: object, where: str) -> float:
    """A finite, non-negative number (JSON int or float, never bool or string)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidForecastError(f"{where}: value {value!r} is not a number")
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise InvalidForecastError(f"{where}: value {value!r} is not a finite, non-negative intensity")
    return number


def timestamp(value: object, where: str) -> datetime:
    """An RFC 3339 string with an offset, as UTC (anything else is InvalidForecastError)."""
    if not isinstance(value, str):
        raise InvalidForecastError(f"{where}: time {value!r} is not a string")
    return parse_time(value)


def expect_dict(value: object, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidForecastError(f"{what} is not a JSON object (got {type(value).__name__})")
    return value


def expect_list(value: object, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise InvalidForecastError(f"{what} is not a JSON array (got {type(value).__name__})")
    return value


def whole_minutes(seconds: float, what: str) -> int:
    if seconds <= 0 or seconds % 60:
        raise InvalidForecastError(f"{what} of {seconds:g}s is not a positive whole number of minutes")
    return int(seconds // 60)


__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_READ_TIMEOUT",
    "HttpClient",
    "NoDataError",
    "RetryPolicy",
    "TokenBucket",
    "check_url",
    "expect_dict",
    "expect_list",
    "intensity",
    "join_url",
    "looks_like_html",
    "retry_after_seconds",
    "timestamp",
    "tls_context",
    "whole_minutes",
]
