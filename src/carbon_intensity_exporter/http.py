"""One small HTTP port (``METRICS_PORT``): ``/metrics``, ``/healthz`` and ``/readyz``.

The stdlib server is enough: three read-only endpoints, scraped every few seconds. It runs in a daemon
thread so it never holds up shutdown, and answers from state the loop already holds (never fetches).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

if TYPE_CHECKING:
    from .exporter import Exporter

log = logging.getLogger(__name__)

#: ``/healthz`` fails when the loop has not beaten for this long (it beats at least once a second).
STALL_AFTER = 60.0
#: The classic text format: every Prometheus version parses it, and all our names are legacy-valid.
METRICS_CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
TEXT_CONTENT_TYPE = "text/plain; charset=utf-8"


def health(exporter: Exporter, stall_after: float = STALL_AFTER) -> tuple[bool, str]:
    """Alive while the loop beats; a stuck loop is what a liveness restart can fix."""
    silent = time.monotonic() - exporter.heartbeat
    if silent < stall_after:
        return True, "ok"
    return False, f"the refresh loop has not run for {silent:.0f}s (limit {stall_after:.0f}s): it is stuck"


def readiness(exporter: Exporter, leading: Callable[[], bool]) -> tuple[bool, str]:
    """Ready when every region holds data, or when on standby (a standby must stay in the Service)."""
    if not leading():
        return True, "ok (standby)"
    missing = [target for target in exporter.targets if target.forecast is None]
    if not missing:
        return True, "ok"
    reasons = []
    for target in missing:
        error = target.last_error
        detail = f"last fetch failed ({error.reason})" if error is not None else "no fetch has completed yet"
        reasons.append(f"{target.region}: {detail}")
    return False, "no forecast held for " + "; ".join(reasons)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        server = self.server
        if path == "/metrics":
            try:
                body = generate_latest(server.registry)
            except Exception as exc:  # a collector bug must not kill the port; say what broke
                self._send(500, f"collecting metrics failed: {type(exc).__name__}: {exc}\n".encode())
                return
            self._send(200, body, METRICS_CONTENT_TYPE)
        elif path == "/healthz":
            ok, reason = health(server.exporter, server.stall_after)
            self._send(200 if ok else 503, f"{reason}\n".encode())
        elif path == "/readyz":
            ok, reason = readiness(server.exporter, server.leading)
            self._send(200 if ok else 503, f"{reason}\n".encode())
        else:
            self._send(404, b"not found: try /metrics, /healthz or /readyz\n")

    def _send(self, code: int, body: bytes, content_type: str = TEXT_CONTENT_TYPE) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: probes and scrapes every few seconds would drown the exporter's own logs."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        exporter: Exporter,
        registry: CollectorRegistry,
        leading: Callable[[], bool],
        stall_after: float,
    ) -> None:
        self.exporter = exporter
        self.registry = registry
        self.leading = leading
        self.stall_after = stall_after
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A scraper that hangs up mid-answer is not news: DEBUG, not a traceback on stderr."""
        log.debug("HTTP request from %s failed", client_address, exc_info=True)


class Server:
    """A running server: ``port`` is the bound port (useful with port 0), ``stop()`` closes it."""

    def __init__(self, httpd: _Server) -> None:
        self._httpd = httpd
        self.host: str = str(httpd.server_address[0])
        self.port: int = int(httpd.server_address[1])
        # A short poll interval only makes ``stop()`` prompt; requests are served as they arrive.
        self._thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), name="http", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}"

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


def start_http_server(
    port: int,
    exporter: Exporter,
    registry: CollectorRegistry,
    leading: Callable[[], bool] = lambda: True,
    host: str = "0.0.0.0",
    *,
    stall_after: float = STALL_AFTER,
) -> Server:
    """Serve ``/metrics``, ``/healthz`` and ``/readyz`` on ``host:port`` (port 0: any free port)."""
    return Server(_Server((host, port), exporter, registry, leading, stall_after))


__all__ = ["STALL_AFTER", "Server", "health", "readiness", "start_http_server"]
