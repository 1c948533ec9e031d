"""WattTime API v3: marginal (``co2_moer``) or average (``co2_aoer``) emissions forecasts, 5-minute slots.

Login is HTTP Basic on ``/login`` and yields a bearer token that lives 30 minutes; we cache it and renew it
early, and on a 401 (or the nginx 403 HTML page WattTime serves for a stale token) log in once more and
retry. The grid region comes from ``PROVIDER_REGION`` or from ``/v3/region-from-loc`` with the cloud
region's coordinates (cached for a day). Values arrive in lbs CO2/MWh and are converted to g/kWh.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import httpx

from ..model import LBS_PER_MWH_TO_G_PER_KWH, EmissionsData, Forecast, InvalidForecastError
from ..regions import lookup
from ..settings import ConfigurationError, Settings
from ._http import (
    HttpClient,
    NoDataError,
    TokenBucket,
    check_url,
    expect_dict,
    expect_list,
    intensity,
    join_url,
    looks_like_html,
    timestamp,
    whole_minutes,
)
from .base import Provider

SIGNAL_TYPES = ("co2_moer", "co2_aoer")
LBS_UNITS = "lbs_co2_per_mwh"
#: Renew the 30-minute token after this many seconds, well before WattTime expires it.
TOKEN_TTL_SECONDS = 25 * 60
REGION_CACHE_SECONDS = 24 * 3600
PLAN_HINT = (
    "free WattTime accounts only cover CAISO_NORTH (cloud region westus): use REGION=westus or "
    "PROVIDER_REGION=CAISO_NORTH, or a plan that includes this region"
)


class WattTimeProvider(Provider):
    name = "WattTime"

    def __init__(
        self,
        username: str,
        password: str,
        *,
        base_url: str = "https://api.watttime.org/v3/",
        login_url: str = "https://api.watttime.org/login",
        signal_type: str = "co2_moer",
        horizon_hours: int = 24,
        client: HttpClient | None = None,
        token_ttl: float = TOKEN_TTL_SECONDS,
        region_cache_ttl: float = REGION_CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._username = username
        self._password = password
        self._base_url = base_url
        self._login_url = login_url
        self.signal_type = signal_type
        self._horizon_hours = horizon_hours
        self._client = client or HttpClient(self.name, rate_limiter=TokenBucket(rate=10, burst=10))
        self._client.add_secrets([password])
        self._token_ttl = token_ttl
        self._region_cache_ttl = region_cache_ttl
        self._clock = clock
        self._token: str | None = None
        self._last_token: str | None = None  # the newest token issued, scrubbed from messages
        self._token_expires = 0.0
        self._regions: dict[tuple[float, float, str], tuple[str, float]] = {}
        self._lock = threading.Lock()
        #: How many logins this provider made (observability and tests).
        self.logins = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> WattTimeProvider:
        username = settings.wt_username or ""
        password = settings.wt_password.get_secret_value() if settings.wt_password else ""
        missing = [name for name, value in (("WT_USERNAME", username), ("WT_PASSWORD", password)) if not value]
        if missing:
            raise ConfigurationError(
                f"{' and '.join(missing)}: not set; PROVIDER=WattTime needs a WattTime account "
                "(register at https://watttime.org; or use WT_PASSWORD_FILE for a mounted Secret)"
            )
        if settings.wt_signal_type not in SIGNAL_TYPES:
            raise ConfigurationError(
                f"WT_SIGNAL_TYPE={settings.wt_signal_type!r}: choose {' or '.join(SIGNAL_TYPES)}"
            )
        return cls(
            username,
            password,
            base_url=check_url("WT_BASE_URL", settings.wt_base_url),
            login_url=check_url("WT_LOGIN_URL", settings.wt_login_url),
            signal_type=settings.wt_signal_type,
            horizon_hours=settings.forecast_horizon_hours,
        )

    def check_region(self, region: str, provider_region: str | None) -> None:
        if provider_region is not None and not provider_region.strip():
            raise ConfigurationError(
                "PROVIDER_REGION: empty; unset it or give a WattTime region such as CAISO_NORTH"
            )
        if not provider_region:
            lookup(region)

    def close(self) -> None:
        self._client.close()

    # -- login -------------------------------------------------------------------------------------------

    def _login(self) -> str:
        response = self._client.request("GET", self._login_url, auth=(self._username, self._password))
        self.logins += 1
        path = response.request.url.path
        if response.status_code in (401, 403):
            raise self._client.error(
                "auth",
                f"GET {path}: login refused (HTTP {response.status_code}); check WT_USERNAME and WT_PASSWORD",
            )
        self._client.raise_for_status(response)
        body = self._client.decode_json(response)
        token = body.get("token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise self._client.error("invalid_response", f"GET {path}: the login answer has no token")
        self._client.replace_secret(self._last_token, token)
        self._token = self._last_token = token
        self._token_expires = self._clock() + self._token_ttl
        return token

    def _current_token(self) -> str:
        with self._lock:
            if self._token is not None and self._clock() < self._token_expires:
                return self._token
            return self._login()

    def _get(self, path: str, params: dict[str, str | int | float]) -> httpx.Response:
        """A data call with the bearer token; one fresh login and retry on 401 or a 403 HTML page."""
        url = join_url(self._base_url, path)
        for attempt in range(2):
            token = self._current_token()
            headers = {"Authorization": f"Bearer {token}"}
            response = self._client.request("GET", url, params=params, headers=headers)
            stale = response.status_code == 401 or (response.status_code == 403 and looks_like_html(response))
            if not stale:
                return response
            if attempt == 0:
                with self._lock:
                    if self._token == token:
                        self._token = None
                continue
            raise self._client.error(
                "auth",
                f"GET {response.request.url.path}: refused with HTTP {response.status_code}"
                f"{' (HTML page)' if looks_like_html(response) else ''} even after a fresh login; "
                f"check the account's access, {PLAN_HINT}",
            )
        raise AssertionError("unreachable")  # pragma: no cover

    # -- region ------------------------------------------------------------------------------------------

    def resolve_region(self, region: str) -> str:
        """The WattTime region for a cloud region, via ``region-from-loc`` (cached for a day)."""
        entry = lookup(region)
        key = (entry.latitude, entry.longitude, self.signal_type)
        cached = self._regions.get(key)
        if cached is not None and self._clock() < cached[1]:
            return cached[0]
        params: dict[str, str | int | float] = {
            "latitude": entry.latitude,
            "longitude": entry.longitude,
            "signal_type": self.signal_type,
        }
        response = self._get("region-from-loc", params)
        path = response.request.url.path
        if response.status_code == 404:
            raise self._client.error(
                "no_coverage",
                f"GET {path}: WattTime has no {self.signal_type} region for {entry.key} "
                f"({entry.latitude}, {entry.longitude}); set PROVIDER_REGION to a WattTime region code",
            )
        self._plan_check(response, f"region lookup for {entry.key}")
        body = self._client.decode_json(response)
        code = body.get("region") if isinstance(body, dict) else None
        if not isinstance(code, str) or not code:
            raise self._client.error("invalid_response", f"GET {path}: the answer names no region")
        self._regions[key] = (code, self._clock() + self._region_cache_ttl)
        return code

    def _plan_check(self, response: httpx.Response, what: str) -> None:
        if response.status_code == 403:
            detail = self._client.detail(response)
            raise self._client.error(
                "not_in_plan",
                f"GET {response.request.url.path}: the WattTime account may not access the {what} "
                f"(HTTP 403{': ' + detail if detail else ''}); {PLAN_HINT}",
            )
        self._client.raise_for_status(response)

    # -- forecast ----------------------------------------------------------------------------------------

    def fetch(self, region: str, provider_region: str | None) -> Forecast:
        code = provider_region.strip() if provider_region else self.resolve_region(region)
        params: dict[str, str | int | float] = {
            "region": code,
            "signal_type": self.signal_type,
            "horizon_hours": self._horizon_hours,
        }
        response = self._get("forecast", params)
        self._plan_check(response, f"{self.signal_type} forecast for {code}")
        return self._client.parse(
            response,
            lambda body: parse_forecast(body, region=region, location=code, signal_type=self.signal_type),
            f"; WattTime may not forecast {code} right now",
        )


def parse_forecast(body: Any, *, region: str, location: str, signal_type: str) -> Forecast:
    """A ``/v3/forecast`` answer → Forecast in g/kWh. Raises InvalidForecastError (NoDataError)."""
    document = expect_dict(body, "the answer")
    meta = expect_dict(document.get("meta"), "meta")
    points = expect_list(document.get("data"), "data")
    units = meta.get("units")
    if units != LBS_UNITS:
        what = "a percentile index, not an intensity" if units == "percentile" else f"units {units!r}"
        raise InvalidForecastError(f"meta.units is {what}; expected {LBS_UNITS!r}")
    if not points:
        raise NoDataError("the forecast holds no points")
    period = meta.get("data_point_period_seconds", 300)
    if isinstance(period, bool) or not isinstance(period, int | float):
        raise InvalidForecastError(f"meta.data_point_period_seconds {period!r} is not a number")
    duration = whole_minutes(float(period), "meta.data_point_period_seconds")
    generated = meta.get("generated_at")
    generated_at = timestamp(generated, "meta.generated_at") if generated is not None else None
    records = []
    for index, raw in enumerate(points):
        point = expect_dict(raw, f"data[{index}]")
        where = f"data[{index}]"
        # Rounded to 6 decimals (the ConfigMap's min/max precision) so 870 lbs/MWh reads 394.625362, not
        # 394.62536190000003.
        value = round(intensity(point.get("value"), where) * LBS_PER_MWH_TO_G_PER_KWH, 6)
        when = timestamp(point.get("point_time"), where)
        records.append(EmissionsData(location=location, timestamp=when, duration=duration, value=value))
    return Forecast(
        records=tuple(records),
        provider=WattTimeProvider.name,
        region=region,
        location=location,
        signal_type=signal_type,
        generated_at=generated_at,
    )


__all__ = ["WattTimeProvider", "parse_forecast"]
