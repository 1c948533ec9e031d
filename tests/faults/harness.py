"""Helpers for the fault-injection suite: fakes with a fault switch, a TCP gate, the exporter as a process,
and the checks every fault must pass (ConfigMap present, last good data kept, message, metrics, no secret).

The real exporter runs as a subprocess (``python -m carbon_intensity_exporter run``) against the local fake
providers (``tests/fakes/providers.py``) and the fake Kubernetes API server (``tests/fakes/kubeapi.py``).
Each provider fake serves a *fixed* forecast (anchored once, at start) whose values depend on a
``generation`` counter: every good fetch of one generation yields byte-identical ``binaryData``, so "the last
good data" is exact, and bumping the generation after a fault proves that fresh data was published.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from carbon_intensity_exporter.model import LBS_PER_MWH_TO_G_PER_KWH
from tests.fakes.kubeapi import FakeKubeAPI
from tests.fakes.providers import (
    FakeElectricityMaps,
    FakeWattTime,
    Handler,
    Reply,
    Request,
    em_forecast,
    slot_start,
    watttime_forecast,
)

JSON = dict[str, Any]
Fault = Reply | Handler

NAMESPACE = "kube-system"
WT_USER = "fault-user"
WT_PASSWORD = "s3cr3t-PA55-xyz"
EM_TOKEN = "tok-SECRET-123"
#: Every value that must never be printed: the two credentials, WattTime's Basic header and the fake's
#: bearer tokens (``wt-token-<n>-0123456789abcdef``).
SECRETS: tuple[str, ...] = (
    WT_PASSWORD,
    EM_TOKEN,
    base64.b64encode(f"{WT_USER}:{WT_PASSWORD}".encode()).decode(),
    "0123456789abcdef",
)
#: The design promises a replacement gap of milliseconds; anything up to this is tolerated here.
MAX_ABSENCE = 1.0
EXE = [sys.executable, "-m", "carbon_intensity_exporter"]
_PROXY_VARS = {"http_proxy", "https_proxy", "all_proxy", "no_proxy", "ssl_cert_file", "ssl_cert_dir",
               "requests_ca_bundle", "kubeconfig"}


# -- results table ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """One row of the results table."""

    fault: str
    did: str
    worst_absence_ms: float | None
    data_lost: str


RESULTS: list[Outcome] = []
RESULTS_ENV = "FAULTS_RESULTS"


def record(fault: str, did: str, worst_absence: float | None, data_lost: str = "no") -> None:
    """Keep a row (and append it to the JSON-lines file named by ``FAULTS_RESULTS`` for ``table.py``)."""
    outcome = Outcome(fault, did, None if worst_absence is None else round(worst_absence * 1000, 1), data_lost)
    RESULTS.append(outcome)
    path = os.environ.get(RESULTS_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as stream:
            stream.write(json.dumps(outcome.__dict__) + "\n")


def short(text: str, limit: int = 150) -> str:
    text = " ".join(text.split()).replace("|", "/")
    return text if len(text) <= limit else text[: limit - 1] + "…"


# -- waiting ---------------------------------------------------------------------------------------------------


def wait_for(condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.02) -> Any:
    """Poll until ``condition()`` is truthy and return it; AssertionError naming ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# -- a TCP gate: connection refused on demand ------------------------------------------------------------------


class Gate:
    """A TCP forwarder on a fixed local port in front of a fake: ``down()`` closes the listener and every
    open connection (new connects are refused), ``up()`` listens again on the same port."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._open = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def is_up(self) -> bool:
        return self._open

    def up(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        listener.settimeout(0.05)
        self._listener, self._open = listener, True
        self._thread = threading.Thread(target=self._accept, args=(listener,), name="gate", daemon=True)
        self._thread.start()

    def down(self) -> None:
        self._open = False
        if self._thread is not None:
            self._thread.join(timeout=2)
        if self._listener is not None:
            self._listener.close()
        self._listener = self._thread = None
        with self._lock:
            conns, self._conns = list(self._conns), set()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def _accept(self, listener: socket.socket) -> None:
        while self._open:
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns.update((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            with self._lock:
                self._conns.discard(source)
                self._conns.discard(sink)
            source.close()


# -- provider fakes with a fault switch ------------------------------------------------------------------------


class FaultyWattTime(FakeWattTime):
    """FakeWattTime whose ``/v3/forecast`` serves a fixed forecast, or ``fault`` while one is set."""

    provider = "WattTime"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(username=WT_USER, password=WT_PASSWORD, **kwargs)
        self.fault: Fault | None = None
        self.generation = 0
        self.anchor = slot_start(dt.datetime.now(dt.UTC), 5)
        self.route(r"/v3/forecast", self._data)

    def good(self, values: list[Any] | None = None, *, start: dt.datetime | None = None, **kwargs: Any) -> JSON:
        return watttime_forecast(start or self.anchor, 288, values if values is not None else [self.raw_value()],
                                 **kwargs)

    def raw_value(self) -> float:
        return 800.0 + self.generation

    def expected_min(self) -> str:
        """``minForecast`` of the current generation as the exporter writes it."""
        return f"{round(self.raw_value() * LBS_PER_MWH_TO_G_PER_KWH, 6):.6f}"

    def _data(self, request: Request) -> Reply:
        fault = self.fault
        if fault is not None:
            return fault if isinstance(fault, Reply) else fault(request)
        refused = self._authorised(request)
        if refused is not None:
            return refused
        return Reply(200, self.good())


class FaultyElectricityMaps(FakeElectricityMaps):
    """FakeElectricityMaps with the same fixed-forecast and ``fault`` switch."""

    provider = "ElectricityMaps"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(token=EM_TOKEN, **kwargs)
        self.fault: Fault | None = None
        self.generation = 0
        self.anchor = slot_start(dt.datetime.now(dt.UTC), 60)
        self.route(r"/v3/carbon-intensity/forecast", self._data)

    def good(self, values: list[Any] | None = None, *, start: dt.datetime | None = None, **kwargs: Any) -> JSON:
        return em_forecast(start or self.anchor, 48, values if values is not None else [self.raw_value()],
                           zone="DE", **kwargs)

    def raw_value(self) -> float:
        return 300.0 + self.generation

    def expected_min(self) -> str:
        return f"{self.raw_value():.6f}"

    def _data(self, request: Request) -> Reply:
        fault = self.fault
        if fault is not None:
            return fault if isinstance(fault, Reply) else fault(request)
        if request.headers.get(self.header.lower()) != self.token:
            return Reply(401, {"error": "Invalid auth-token"})
        return Reply(200, self.good())


ProviderFake = FaultyWattTime | FaultyElectricityMaps


# -- the exporter as a process ---------------------------------------------------------------------------------


def base_env() -> dict[str, str]:
    """The test's environment without proxies, CA bundles or a kubeconfig that could leak in."""
    return {key: value for key, value in os.environ.items() if key.lower() not in _PROXY_VARS}


class ExporterProcess:
    """``python -m carbon_intensity_exporter run`` with its output in a file (grepped for secrets)."""

    def __init__(self, name: str, env: dict[str, str], workdir: Path, args: tuple[str, ...] = ("run",)) -> None:
        self.name = name
        self.metrics_port = free_port()
        self.env = {**base_env(), "METRICS_PORT": str(self.metrics_port), "LOG_FORMAT": "json", **env}
        self.log_path = workdir / f"{name}.log"
        self.args = args
        self.process: subprocess.Popen[bytes] | None = None
        self._logs: list[Path] = []

    def start(self) -> ExporterProcess:
        path = self.log_path.with_suffix(f".{len(self._logs)}.log")
        self._logs.append(path)
        with open(path, "wb") as stream:
            self.process = subprocess.Popen([*EXE, *self.args], env=self.env, stdout=stream, stderr=stream)
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def wait(self, timeout: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout=timeout)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=6)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)

    def logs(self) -> str:
        return "".join(path.read_text(errors="replace") for path in self._logs if path.exists())

    def scrape(self) -> str | None:
        try:
            response = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=3, trust_env=False)
        except httpx.HTTPError:
            return None
        return response.text if response.status_code == 200 else None

    def metric(self, name: str, **labels: str) -> float:
        """The sum of the samples of ``name`` with these labels (0 when absent or not scrapable)."""
        text = self.scrape()
        if text is None:
            return 0.0
        return metric_value(text, name, **labels)


def metric_value(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(key) == value for key, value in labels.items()):
                total += sample.value
    return total


# -- one exporter with its fakes -------------------------------------------------------------------------------


@dataclass
class Subject:
    """An exporter process with its own fake API server, provider fake and the gate in front of it."""


    name: str
    api: FakeKubeAPI
    fake: ProviderFake
    gate: Gate
    exporter: ExporterProcess
    configmap: str = "carbon-intensity"
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def provider(self) -> str:
        return self.fake.provider

    def cm(self) -> JSON | None:
        return self.api.get_object("configmaps", NAMESPACE, self.configmap)

    def heal(self) -> None:
        """Remove every provider fault: no canned reply, the gate open, the credentials accepted again."""
        self.fake.fault = None
        if not self.gate.is_up:
            self.gate.up()
        if isinstance(self.fake, FaultyWattTime):
            self.fake.password = WT_PASSWORD
        else:
            self.fake.token = EM_TOKEN

    def close(self) -> None:
        self.exporter.stop()
        self.gate.down()
        self.fake.stop()
        self.api.stop()


def provider_env(fake: ProviderFake, gate: Gate) -> dict[str, str]:
    if isinstance(fake, FaultyWattTime):
        return {
            "PROVIDER": "WattTime", "WT_USERNAME": WT_USER, "WT_PASSWORD": WT_PASSWORD,
            "WT_BASE_URL": gate.url + "/v3/", "WT_LOGIN_URL": gate.url + "/login", "PROVIDER_REGION": "CAISO_NORTH",
        }
    return {"PROVIDER": "ElectricityMaps", "EM_API_TOKEN": EM_TOKEN, "EM_BASE_URL": gate.url + "/v3/",
            "PROVIDER_REGION": "DE"}


def make_subject(
    name: str, fake: ProviderFake, workdir: Path, *, api: FakeKubeAPI | None = None, user: str | None = None,
    gate: Gate | None = None, env: dict[str, str] | None = None,
) -> Subject:
    """A subject not yet started: call ``subject.exporter.start()``. With ``gate``, the fake is shared with
    another subject (already started, behind that gate)."""
    api = api or FakeKubeAPI()
    if gate is None:
        fake.start()
        gate = Gate(int(fake.url.rsplit(":", 1)[1]))
        gate.up()
    kubeconfig = api.kubeconfig(workdir / f"kubeconfig-{name}", user=user or name)
    full = {
        "KUBECONFIG": str(kubeconfig), "POD_NAME": user or name, "NAMESPACE": NAMESPACE,
        "REFRESH_INTERVAL": "2s", "RETRY_INITIAL_INTERVAL": "1s", "STATE_DIR": str(workdir / f"state-{name}"),
        **provider_env(fake, gate), **(env or {}),
    }
    return Subject(name, api, fake, gate, ExporterProcess(name, full, workdir))


# -- the checks ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GoodData:
    """What must survive a fault: the payload and the keys derived from it."""

    binary: str
    records: str
    forecast_time: str
    minimum: str
    maximum: str

    @classmethod
    def of(cls, cm: JSON) -> GoodData:
        data = cm.get("data") or {}
        return cls((cm.get("binaryData") or {}).get("data", ""), data.get("numOfRecords", ""),
                   data.get("forecastDateTime", ""), data.get("minForecast", ""), data.get("maxForecast", ""))


def message(cm: JSON | None) -> str | None:
    return None if cm is None else str((cm.get("data") or {}).get("message", ""))


def healthy(subject: Subject) -> GoodData | None:
    """The good data of the current generation, once the ConfigMap shows it with an empty message."""
    cm = subject.cm()
    if cm is None or message(cm) != "":
        return None
    good = GoodData.of(cm)
    return good if good.minimum == subject.fake.expected_min() and int(good.records or 0) > 0 else None


def wait_healthy(subject: Subject, timeout: float = 30.0) -> GoodData:
    good: GoodData = wait_for(lambda: healthy(subject), timeout, f"{subject.name}: fresh data, empty message")
    return good


def wait_fallback(subject: Subject, timeout: float) -> JSON:
    cm: JSON = wait_for(lambda: (c := subject.cm()) is not None and message(c) and c, timeout,
                        f"{subject.name}: a fallback ConfigMap with a message")
    return cm


def recover(subject: Subject, timeout: float = 30.0) -> GoodData:
    """The fault is gone: new data is served, and must be published by the running exporter by itself."""
    subject.heal()
    subject.fake.generation += 1
    return wait_healthy(subject, timeout)


def absence(api: FakeKubeAPI, name: str, since: float) -> float:
    """The longest time the ConfigMap was absent after ``since`` (an open gap counts up to now)."""
    worst, deleted = 0.0, None
    for write in api.writes("configmaps", NAMESPACE, name):
        if write.time < since:
            continue
        if write.verb in ("delete", "deletecollection"):
            deleted = write.time
        elif write.verb == "create" and deleted is not None:
            worst, deleted = max(worst, write.time - deleted), None
    if deleted is not None:
        worst = max(worst, time.monotonic() - deleted)
    return worst


def check_absence(subject: Subject, since: float, limit: float = MAX_ABSENCE) -> float:
    assert subject.cm() is not None, f"{subject.name}: the ConfigMap is absent"
    worst = absence(subject.api, subject.configmap, since)
    assert worst <= limit, f"{subject.name}: the ConfigMap was absent for {worst * 1000:.0f} ms"
    return worst


def leaks(text: str) -> list[str]:
    return [secret for secret in SECRETS if secret in text]


def all_events(api: FakeKubeAPI) -> list[JSON]:
    return [*api.list_objects("events.events.k8s.io"), *api.list_objects("events")]


def check_no_secrets(subject: Subject, *more: str) -> None:
    """No secret in the process output, any ConfigMap or Event of its API server, or its /metrics."""
    places = {
        "logs": subject.exporter.logs(),
        "configmaps": json.dumps(subject.api.list_objects("configmaps")),
        "events": json.dumps(all_events(subject.api)),
        "metrics": subject.exporter.scrape() or "",
        **{f"extra[{index}]": text for index, text in enumerate(more)},
    }
    found = {where: leaks(text) for where, text in places.items() if leaks(text)}
    assert not found, f"{subject.name}: secrets printed in {found}"


def fetch_errors(subject: Subject, reason: str) -> float:
    return subject.exporter.metric("carbon_intensity_fetch_errors_total", reason=reason)


def write_errors(subject: Subject) -> float:
    return subject.exporter.metric("carbon_intensity_configmap_writes_total", result="error")


@contextlib.contextmanager
def started(*subjects: Subject) -> Iterator[None]:
    try:
        for subject in subjects:
            subject.exporter.start()
        yield
    finally:
        for subject in subjects:
            subject.close()


# -- the common scenario: a provider fault -------------------------------------------------------------------


@dataclass
class FaultResult:
    subject: Subject
    message: str
    worst_absence: float
    lost: bool


Inject = Callable[[Subject], None]


def provider_fault(
    subject: Subject,
    inject: Inject,
    reason: str | None,
    words: tuple[str, ...] = (),
    *,
    timeout: float = 30.0,
) -> FaultResult:
    """Inject a provider fault, check the fallback, remove it, check the recovery.

    ``reason`` is the expected ``fetch_errors_total`` reason; ``words`` must appear in ``message``.
    """
    good = wait_healthy(subject)
    since = time.monotonic()
    before = fetch_errors(subject, reason) if reason else 0.0
    inject(subject)
    cm = wait_fallback(subject, timeout)
    text = message(cm) or ""
    kept = GoodData.of(cm)
    assert subject.provider in text, f"{subject.name}: the message does not name the provider: {text!r}"
    for word in words:
        assert word in text, f"{subject.name}: {word!r} not in the message {text!r}"
    if reason:
        wait_for(lambda: fetch_errors(subject, reason) > before, 10, f"{subject.name}: fetch_errors{{{reason}}}")
    assert kept == good, f"{subject.name}: the fallback changed the data: {kept} != {good}"
    recover(subject)
    worst = check_absence(subject, since)
    check_no_secrets(subject)
    return FaultResult(subject, text, worst, lost=kept != good)


def outcome_text(results: list[FaultResult]) -> str:
    """``fallback …, recovered (WattTime + ElectricityMaps): `<the first message's first clause>```."""
    providers = " + ".join(result.subject.provider for result in results)
    first = re.split(r"; (?:serving the forecast|no forecast has been fetched)", results[0].message)[0]
    return f"fallback with the last good data, recovered ({providers}): `{short(first, 130)}`"
