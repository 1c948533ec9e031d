"""Local fake provider servers: real HTTP on 127.0.0.1, the documented response and failure shapes.

Each fake answers like the real API by default (reference/providers.md) and is scriptable per test:
``queue(path_regex, Reply(...))`` makes the next matching requests answer with canned replies (401, 403
JSON or HTML, 429 with Retry-After, 500, slow, truncated, HTML, empty, wrong units, NaN, ...), after which
the default behaviour resumes. Every request is recorded so tests can check what was sent.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit

UTC = dt.UTC


@dataclass
class Reply:
    """One canned answer. ``body``: dict/list → JSON; str/bytes sent as is."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str | None = None
    delay: float = 0.0

    def encode(self) -> tuple[bytes, str]:
        if isinstance(self.body, bytes):
            return self.body, self.content_type or "application/json"
        if isinstance(self.body, str):
            return self.body.encode(), self.content_type or "text/plain; charset=utf-8"
        if self.body is None:
            return b"", self.content_type or "application/json"
        return json.dumps(self.body).encode(), self.content_type or "application/json"


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    raw_target: str


Handler = Callable[[Request], Reply]


def html_page(status: int, title: str) -> Reply:
    """An nginx-style HTML error page (what WattTime's edge serves for some 403s)."""
    body = f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n"
    body += "<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
    return Reply(status, body, content_type="text/html")


def truncated_json(text: str = '{"data": [{"point_time": "2022-07-15T00:00:00+00:00", "val') -> Reply:
    """A body cut short (with a matching Content-Length, so only the JSON is broken)."""
    return Reply(200, text.encode(), content_type="application/json")


def _as_handler(handler: Handler | Reply) -> Handler:
    if not isinstance(handler, Reply):
        return handler

    def fixed(_request: Request) -> Reply:
        return handler

    return fixed


class FakeServer:
    """A ThreadingHTTPServer on 127.0.0.1:0 in a thread, optionally serving TLS with ``tls``."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self._routes: list[tuple[re.Pattern[str], Handler]] = []
        self._queues: list[tuple[re.Pattern[str], list[Reply]]] = []
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        fake = self

        class _Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                fake._serve(self, "GET")

            def do_POST(self) -> None:
                fake._serve(self, "POST")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self.scheme = "http"
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
            self.scheme = "https"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name="fake-provider", daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{self.scheme}://{host!s}:{port}"

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- scripting ---------------------------------------------------------------------------------------

    def route(self, pattern: str, handler: Handler | Reply) -> None:
        """The default answer for paths matching ``pattern`` (regex, full match); later routes win."""
        self._routes.insert(0, (re.compile(pattern), _as_handler(handler)))

    def queue(self, pattern: str, *replies: Reply) -> None:
        """One-shot replies for the next matching requests, before the default answer resumes."""
        with self._lock:
            self._queues.append((re.compile(pattern), list(replies)))

    def requests_to(self, pattern: str) -> list[Request]:
        compiled = re.compile(pattern)
        return [request for request in self.requests if compiled.fullmatch(request.path)]

    # -- serving -----------------------------------------------------------------------------------------

    def _pick(self, request: Request) -> Reply:
        with self._lock:
            self.requests.append(request)
            for pattern, replies in self._queues:
                if replies and pattern.fullmatch(request.path):
                    return replies.pop(0)
        for pattern, handler in self._routes:
            if pattern.fullmatch(request.path):
                return handler(request)
        return Reply(404, {"error": "not found"})

    def _serve(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        split = urlsplit(handler.path)
        request = Request(
            method=method,
            path=split.path,
            query=dict(parse_qsl(split.query)),
            headers={key.lower(): value for key, value in handler.headers.items()},
            raw_target=handler.path,
        )
        reply = self._pick(request)
        if reply.delay:
            time.sleep(reply.delay)
        body, content_type = reply.encode()
        try:
            handler.send_response(reply.status)
            handler.send_header("Content-Type", content_type)
            handler.send_header("Content-Length", str(len(body)))
            for key, value in reply.headers.items():
                handler.send_header(key, value)
            handler.end_headers()
            handler.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            pass


# -- documented bodies ---------------------------------------------------------------------------------------


def iso(when: dt.datetime, style: str = "+00:00") -> str:
    text = when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return text + ("+00:00" if style == "+00:00" else ".000Z" if style == "ms" else "Z")


def slot_start(now: dt.datetime, minutes: int) -> dt.datetime:
    now = now.astimezone(UTC)
    return now.replace(minute=now.minute - now.minute % minutes, second=0, microsecond=0)


def watttime_forecast(
    start: dt.datetime,
    count: int = 288,
    values: list[Any] | None = None,
    *,
    region: str = "CAISO_NORTH",
    period: int = 300,
    units: str = "lbs_co2_per_mwh",
    signal_type: str = "co2_moer",
) -> dict[str, Any]:
    """The ``/v3/forecast`` shape; ``values`` cycles (default 870 lbs/MWh, the docs' example)."""
    values = values if values is not None else [870]
    data = [
        {"point_time": iso(start + dt.timedelta(seconds=period * index)), "value": values[index % len(values)]}
        for index in range(count)
    ] if values else []
    return {
        "data": data,
        "meta": {
            "data_point_period_seconds": period,
            "region": region,
            "warnings": [{"type": "EXAMPLE_WARNING", "message": "This is just an example"}],
            "signal_type": signal_type,
            "model": {"date": "2023-03-01"},
            "units": units,
            "generated_at_period_seconds": 300,
            "generated_at": iso(start),
        },
    }


WT_PLAN_403 = {
    "error": "Invalid query parameters",
    "message": "Invalid scope. You do not have sufficient access to this resource. Please contact support.",
}


class FakeWattTime(FakeServer):
    """WattTime v3: Basic-auth ``/login`` issuing bearer tokens, ``region-from-loc``, ``forecast``.

    ``plan_regions`` is what the account may see (a free account: CAISO_NORTH only). ``expire_tokens()``
    invalidates every token issued so far (token expiry mid-run); ``expired_style`` chooses whether a stale
    token gets the documented 401 or the nginx 403 HTML page.
    """

    def __init__(self, username: str = "alice", password: str = "s3cret-Pa55word", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.username = username
        self.password = password
        self.plan_regions: set[str] = {"CAISO_NORTH"}
        self.expired_style = "401"
        #: region-from-loc answers: (latitude, longitude) as sent → region; others get ``default_region``
        #: ("" → the documented 404 "No coverage").
        self.coverage: dict[tuple[str, str], str] = {("37.783", "-122.417"): "CAISO_NORTH"}
        self.default_region = "PJM_DC"
        self._tokens: set[str] = set()
        self._issued = 0
        self.clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(UTC)
        self.route(r"/login", self._login)
        self.route(r"/v3/region-from-loc", self._region_from_loc)
        self.route(r"/v3/forecast", self._forecast)

    @property
    def base_url(self) -> str:
        return self.url + "/v3/"

    @property
    def login_url(self) -> str:
        return self.url + "/login"

    @property
    def tokens_issued(self) -> int:
        return self._issued

    def expire_tokens(self) -> None:
        with self._lock:
            self._tokens.clear()

    def _login(self, request: Request) -> Reply:
        expected = "Basic " + base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        if request.headers.get("authorization") != expected:
            return Reply(401, {"error": "Unauthorized"})
        with self._lock:
            self._issued += 1
            token = f"wt-token-{self._issued}-0123456789abcdef"
            self._tokens.add(token)
        return Reply(200, {"token": token})

    def _authorised(self, request: Request) -> Reply | None:
        header = request.headers.get("authorization", "")
        if header.removeprefix("Bearer ") in self._tokens and header.startswith("Bearer "):
            return None
        if self.expired_style == "403html":
            return html_page(403, "403 Forbidden")
        return Reply(401, {"error": "Unauthorized", "message": "token expired or invalid"})

    def _region_from_loc(self, request: Request) -> Reply:
        refused = self._authorised(request)
        if refused:
            return refused
        key = (request.query.get("latitude", ""), request.query.get("longitude", ""))
        region = self.coverage.get(key, self.default_region)
        if region == "":
            return Reply(
                404,
                {
                    "error": "No coverage available for these coordinates and signal_type",
                    "latitude": key[0],
                    "longitude": key[1],
                    "signal_type": request.query.get("signal_type", "co2_moer"),
                },
            )
        return Reply(
            200,
            {"region": region, "region_full_name": f"{region} full name", "signal_type": request.query["signal_type"]},
        )

    def _forecast(self, request: Request) -> Reply:
        refused = self._authorised(request)
        if refused:
            return refused
        query = request.query
        if not {"region", "signal_type"} <= query.keys():
            return Reply(
                400,
                {"error": "INVALID_QUERY_PARAMS", "msg": "You've provided invalid parameters in your query",
                 "docs": "https://docs.watttime.org/"},
            )
        if query["region"] not in self.plan_regions:
            return Reply(403, WT_PLAN_403)
        horizon = int(query.get("horizon_hours", "24"))
        count = max(1, horizon * 12)
        return Reply(200, watttime_forecast(slot_start(self.clock(), 5), count, region=query["region"],
                                            signal_type=query["signal_type"]))


def em_forecast(start: dt.datetime, count: int = 48, values: list[Any] | None = None, *,
                zone: str = "DE", step_minutes: int = 60, granularity: str | None = None) -> dict[str, Any]:
    """The ``/carbon-intensity/forecast`` shape (hourly points, ``...000Z`` times)."""
    values = values if values is not None else [557, 552.5]
    body: dict[str, Any] = {
        "zone": zone,
        "forecast": [
            {"carbonIntensity": values[index % len(values)],
             "datetime": iso(start + dt.timedelta(minutes=step_minutes * index), "ms")}
            for index in range(count)
        ] if values else [],
        "updatedAt": iso(start - dt.timedelta(minutes=8), "ms"),
    }
    if granularity:
        body["temporalGranularity"] = granularity
    return body


class FakeElectricityMaps(FakeServer):
    """Electricity Maps v3 forecast endpoint with its token header and plan errors."""

    def __init__(self, token: str = "em-T0ken-abcdef123456", header: str = "auth-token", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.token = token
        self.header = header
        self.plan_zones: set[str] | None = None
        self.forecast_in_plan = True
        self.location_zone = "US-CAL-CISO"
        self.clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(UTC)
        self.route(r"/v3/carbon-intensity/forecast", self._forecast)

    @property
    def base_url(self) -> str:
        return self.url + "/v3/"

    def _forecast(self, request: Request) -> Reply:
        if request.headers.get(self.header.lower()) != self.token:
            return Reply(401, {"error": "Invalid auth-token"})
        if not self.forecast_in_plan:
            return Reply(401, {"error": "Endpoint not available for your plan. Please upgrade."})
        zone = request.query.get("zone")
        if zone is None:
            if "lat" not in request.query or "lon" not in request.query:
                return Reply(400, {"error": "Missing zone or lat/lon"})
            zone = self.location_zone
        if self.plan_zones is not None and zone not in self.plan_zones:
            return Reply(401, {"error": f"Token unauthorized for zoneKey {zone}"})
        start = slot_start(self.clock(), 60)
        return Reply(200, em_forecast(start, 24, zone=zone))


def ukci_periods(start: dt.datetime, count: int = 48, values: list[Any] | None = None,
                 *, regional: bool = False) -> list[dict[str, Any]]:
    values = values if values is not None else [266, 180]
    periods = []
    for index in range(count):
        begin = start + dt.timedelta(minutes=30 * index)
        intensity: dict[str, Any] = {"forecast": values[index % len(values)], "index": "moderate"}
        if not regional:
            intensity["actual"] = None
        period: dict[str, Any] = {
            "from": begin.strftime("%Y-%m-%dT%H:%MZ"),
            "to": (begin + dt.timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%MZ"),
            "intensity": intensity,
        }
        if regional:
            period["generationmix"] = [{"fuel": "gas", "perc": 43.6}, {"fuel": "wind", "perc": 20.1}]
        periods.append(period)
    return periods


class FakeUKCarbonIntensity(FakeServer):
    """National ``/intensity/{from}/fw24h|fw48h`` and regional ``.../regionid/{id}`` forecasts."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.regional_as_object = True
        self.route(r"/intensity/[^/]+/fw(24|48)h", self._national)
        self.route(r"/regional/intensity/[^/]+/fw(24|48)h/regionid/[^/]+", self._regional)

    @staticmethod
    def _start(path: str) -> tuple[dt.datetime, int] | None:
        match = re.search(r"/intensity/([^/]+)/fw(24|48)h", path)
        if not match:
            return None
        try:
            when = dt.datetime.strptime(match.group(1), "%Y-%m-%dT%H:%MZ").replace(tzinfo=UTC)
        except ValueError:
            return None
        return slot_start(when, 30), int(match.group(2)) * 2

    def _bad_request(self) -> Reply:
        return Reply(400, {"error": {"code": "400 Bad Request", "message": "Please enter a valid date"}})

    def _national(self, request: Request) -> Reply:
        parsed = self._start(request.path)
        if parsed is None:
            return self._bad_request()
        start, count = parsed
        return Reply(200, {"data": ukci_periods(start, count)})

    def _regional(self, request: Request) -> Reply:
        parsed = self._start(request.path)
        region = request.path.rsplit("/", 1)[-1]
        if parsed is None or not region.isdigit() or not 1 <= int(region) <= 18:
            return Reply(400, {"error": {"code": "400 Bad Request", "message": "Please enter a valid region id"}})
        start, count = parsed
        inner = {"regionid": int(region), "dnoregion": "UKPN London", "shortname": "London",
                 "data": ukci_periods(start, count, regional=True)}
        return Reply(200, {"data": inner if self.regional_as_object else [inner]})


def cas_forecast(start: dt.datetime, location: str = "westus", grid: str = "CAISO_NORTH",
                 count: int = 12, values: list[Any] | None = None, duration: int = 5) -> list[dict[str, Any]]:
    """The SDK's ``/emissions/forecasts/current`` array (one element per location)."""
    values = values if values is not None else [532.02293146, 448.4451043375]
    points = [
        {"location": grid, "timestamp": iso(start + dt.timedelta(minutes=duration * index)),
         "duration": duration, "value": values[index % len(values)]}
        for index in range(count)
    ] if values else []
    return [{
        "requestedAt": iso(start), "generatedAt": iso(start - dt.timedelta(minutes=2)), "location": location,
        "dataStartAt": iso(start, "Z"), "dataEndAt": iso(start + dt.timedelta(hours=1), "Z"), "windowSize": 10,
        "optimalDataPoints": points[:1], "forecastData": points,
    }]


class FakeCarbonAwareSDK(FakeServer):
    """Carbon Aware SDK WebAPI: ``/emissions/forecasts/current?location=..``."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.locations = {"westus": "CAISO_NORTH", "northeurope": "IE"}
        self.clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(UTC)
        self.route(r"/emissions/forecasts/current", self._current)

    def _current(self, request: Request) -> Reply:
        location = request.query.get("location", "")
        if location not in self.locations:
            return Reply(400, {
                "type": "https://tools.ietf.org/html/rfc7231#section-6.5.1",
                "title": "One or more validation errors occurred.", "status": 400,
                "errors": {"location": [f"Unknown location: '{location}'"]},
            })
        return Reply(200, cas_forecast(slot_start(self.clock(), 5), location, self.locations[location]))


# -- TLS ---------------------------------------------------------------------------------------------------------


def self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 / localhost (cert, key) made with ``cryptography``."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake-provider.local")])
    now = dt.datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "fake-provider.pem", directory / "fake-provider.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


def server_tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context
