"""The one HTTP port: /metrics, /healthz (the loop is alive) and /readyz (data held, or standby)."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from carbon_intensity_exporter import configmap
from carbon_intensity_exporter.exporter import Exporter
from carbon_intensity_exporter.http import Server, start_http_server
from carbon_intensity_exporter.metrics import MetricsObserver, build_registry
from carbon_intensity_exporter.providers.file import FileProvider
from tests.test_metrics import VALUES, Clock, file_settings, write_forecast


def make_server(path: Path, *, leading: bool = True, stall_after: float = 60.0) -> tuple[Exporter, Server]:
    clock = Clock()
    provider = FileProvider(path)
    observer = MetricsObserver(provider.name)
    exporter = Exporter(
        file_settings(path), provider, configmap.DryRunSink(io.StringIO()), observer=observer, clock=clock
    )
    server = start_http_server(
        0,
        exporter,
        build_registry(exporter, observer, leading=lambda: leading),
        leading=lambda: leading,
        host="127.0.0.1",
        stall_after=stall_after,
    )
    return exporter, server


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Exporter, Server, Path]]:
    path = tmp_path / "forecast.json"
    exporter, server = make_server(path)
    yield exporter, server, path
    server.stop()


def get(server: Server, path: str) -> httpx.Response:
    return httpx.get(f"{server.url}{path}", timeout=5)


def test_binds_an_ephemeral_port_and_serves_metrics(served: tuple[Exporter, Server, Path]) -> None:
    _, server, _ = served
    assert server.port > 0
    response = get(server, "/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert "# TYPE carbon_intensity_exporter_build_info gauge" in response.text


def test_healthz_fails_when_the_loop_stalls(tmp_path: Path) -> None:
    exporter, server = make_server(tmp_path / "forecast.json", stall_after=30.0)
    try:
        response = get(server, "/healthz")
        assert (response.status_code, response.text) == (200, "ok\n")
        exporter.heartbeat = time.monotonic() - 45.0  # as if the loop had not beaten for 45 s
        response = get(server, "/healthz")
        assert response.status_code == 503
        assert "has not run for" in response.text and "(limit 30s)" in response.text
        exporter.heartbeat = time.monotonic()
        assert get(server, "/healthz").status_code == 200
    finally:
        server.stop()


def test_healthz_follows_the_running_loop(served: tuple[Exporter, Server, Path]) -> None:
    exporter, server, path = served
    write_forecast(path, VALUES)
    exporter.heartbeat = time.monotonic() - 3600.0
    assert get(server, "/healthz").status_code == 503
    stop = threading.Event()
    loop = threading.Thread(target=exporter.run, args=(stop,), daemon=True)
    loop.start()
    try:
        deadline = time.monotonic() + 10
        while get(server, "/healthz").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert get(server, "/healthz").status_code == 200
    finally:
        stop.set()
        exporter.wake()
        loop.join(5)


def test_readyz_waits_for_data(served: tuple[Exporter, Server, Path]) -> None:
    exporter, server, path = served
    response = get(server, "/readyz")
    assert response.status_code == 503
    assert response.text == "no forecast held for westus: no fetch has completed yet\n"

    exporter.cycle(exporter.targets[0])  # the file does not exist yet
    response = get(server, "/readyz")
    assert response.status_code == 503
    assert response.text == "no forecast held for westus: last fetch failed (file)\n"

    write_forecast(path, VALUES)
    exporter.cycle(exporter.targets[0])
    response = get(server, "/readyz")
    assert (response.status_code, response.text) == (200, "ok\n")

    path.unlink()  # a later failure keeps the held data: still ready
    exporter.cycle(exporter.targets[0])
    assert get(server, "/readyz").status_code == 200


def test_readyz_needs_every_region(tmp_path: Path) -> None:
    path = tmp_path / "forecast.json"
    write_forecast(path, VALUES)
    clock = Clock()
    provider = FileProvider(path)
    observer = MetricsObserver(provider.name)
    exporter = Exporter(
        file_settings(path, additional_regions="eastus"),
        provider,
        configmap.DryRunSink(io.StringIO()),
        observer=observer,
        clock=clock,
    )
    server = start_http_server(0, exporter, build_registry(exporter, observer), host="127.0.0.1")
    try:
        exporter.cycle(exporter.targets[0])
        response = get(server, "/readyz")
        assert response.status_code == 503 and "eastus" in response.text and "westus" not in response.text
        exporter.cycle(exporter.targets[1])
        assert get(server, "/readyz").status_code == 200
    finally:
        server.stop()


def test_standby_is_ready_without_data(tmp_path: Path) -> None:
    exporter, server = make_server(tmp_path / "forecast.json", leading=False)
    try:
        assert exporter.targets[0].forecast is None
        response = get(server, "/readyz")
        assert (response.status_code, response.text) == (200, "ok (standby)\n")
    finally:
        server.stop()


def test_unknown_paths_are_404(served: tuple[Exporter, Server, Path]) -> None:
    _, server, _ = served
    for path in ("/", "/metricsx", "/healthz/extra"):
        assert get(server, path).status_code == 404
    assert get(server, "/metrics?name[]=x").status_code == 200


def test_quiet_no_access_logs(served: tuple[Exporter, Server, Path], capfd: pytest.CaptureFixture[str]) -> None:
    _, server, _ = served
    for path in ("/metrics", "/healthz", "/readyz", "/nope"):
        get(server, path)
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")


def test_stop_closes_the_port(tmp_path: Path) -> None:
    _, server = make_server(tmp_path / "forecast.json")
    url = server.url
    server.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/healthz", timeout=2)
