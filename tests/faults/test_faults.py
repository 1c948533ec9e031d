"""Fault injection against the real exporter process (issue 7): provider faults, API-server faults, signals,
leader loss, and the security checks. See ``harness.py`` for the fakes and the checks every fault passes.

Run ``python -m tests.faults.table`` for the results as a markdown table.
"""

from __future__ import annotations

import base64
import datetime as dt
import math
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fakes.kubeapi import FakeKubeAPI
from tests.fakes.providers import Reply, Request, html_page, self_signed_cert, server_tls_context, truncated_json
from tests.faults.harness import (
    EM_TOKEN,
    EXE,
    NAMESPACE,
    SECRETS,
    WT_PASSWORD,
    FaultResult,
    FaultyElectricityMaps,
    FaultyWattTime,
    GoodData,
    Inject,
    ProviderFake,
    Subject,
    absence,
    all_events,
    base_env,
    check_absence,
    check_no_secrets,
    fetch_errors,
    leaks,
    make_subject,
    message,
    outcome_text,
    provider_fault,
    record,
    recover,
    short,
    wait_fallback,
    wait_for,
    wait_healthy,
    write_errors,
)

# -- the shared world: one WattTime and one Electricity Maps exporter, each with its own fake API server ------


@dataclass
class World:
    wt: Subject
    em: Subject
    slow: Subject
    slow_thread: threading.Thread
    slow_result: list[FaultResult | BaseException]


def slow_reply(subject: Subject) -> None:
    """Answers slower than the exporter's read timeout (10 s, not configurable: see the report)."""
    subject.fake.fault = Reply(200, subject.fake.good(), delay=11.0)


def _run_slow(subject: Subject, out: list[FaultResult | BaseException]) -> None:
    # Started with the world so its ~35 s (3 attempts x 10 s read timeout) overlap the other tests.
    try:
        out.append(provider_fault(subject, slow_reply, "timeout", ("timed out",), timeout=120))
    except BaseException as exc:
        out.append(exc)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    workdir = tmp_path_factory.mktemp("faults")
    wt = make_subject("wt", FaultyWattTime(), workdir)
    em = make_subject("em", FaultyElectricityMaps(), workdir)
    slow = make_subject("slow", FaultyWattTime(), workdir)
    out: list[FaultResult | BaseException] = []
    thread = threading.Thread(target=_run_slow, args=(slow, out), name="slow-scenario", daemon=True)
    subjects = (wt, em, slow)
    try:
        for subject in subjects:
            subject.exporter.start()
        thread.start()
        for subject in (wt, em):
            wait_healthy(subject)
        yield World(wt, em, slow, thread, out)
    finally:
        for subject in subjects:
            subject.close()


def run_for(subjects: list[Subject], scenario: Callable[[Subject], FaultResult]) -> list[FaultResult]:
    """The same scenario on several exporters at once (each has its own fakes)."""
    with ThreadPoolExecutor(max_workers=len(subjects)) as pool:
        return list(pool.map(scenario, subjects))


def settle(subject: Subject) -> None:
    """After a test, even one that failed half-way: no provider or API-server fault left in place."""
    subject.heal()
    subject.api.allow()
    subject.api.set_down(False)
    subject.api.latency = 0.0


# -- provider faults -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """A provider fault: how to inject it per provider (None: does not apply), the reason, message words."""

    name: str
    reason: str
    wt: Inject | None
    em: Inject | None
    words: tuple[str, ...] = ()


def reply(make: Callable[[ProviderFake], Reply]) -> Inject:
    def inject(subject: Subject) -> None:
        subject.fake.fault = make(subject.fake)

    return inject


def both(make: Callable[[ProviderFake], Reply]) -> tuple[Inject, Inject]:
    return reply(make), reply(make)


def gate_down(subject: Subject) -> None:
    subject.gate.down()


def refuse_credentials_of(fake: ProviderFake) -> None:
    if isinstance(fake, FaultyWattTime):
        fake.password = "another-password"
        fake.expire_tokens()
    else:
        fake.token = "another-token"


def echo_secret_of(fake: ProviderFake) -> None:
    """A provider error that quotes the credential back (the message must scrub it)."""
    secret = WT_PASSWORD if isinstance(fake, FaultyWattTime) else EM_TOKEN
    fake.fault = Reply(400, {"error": "Bad request", "message": f"credential {secret} is malformed"})


def heal_fake(fake: ProviderFake) -> None:
    fake.fault = None
    if isinstance(fake, FaultyWattTime):
        fake.password = WT_PASSWORD
    else:
        fake.token = EM_TOKEN


def refuse_credentials(subject: Subject) -> None:
    refuse_credentials_of(subject.fake)


def echo_secret(subject: Subject) -> None:
    echo_secret_of(subject.fake)


def wrong_shape(fake: ProviderFake) -> Reply:
    if isinstance(fake, FaultyWattTime):
        return Reply(200, {"meta": {"units": "lbs_co2_per_mwh"}, "data": "oops"})
    return Reply(200, {"zone": "DE", "forecast": "oops"})


def in_the_past(fake: ProviderFake) -> Reply:
    return Reply(200, fake.good(start=fake.anchor - dt.timedelta(days=3)))


CASES = [
    Case("provider HTTP 500", "server_error", *both(lambda f: Reply(500, {"error": "Internal Server Error"})),
         words=("HTTP 500",)),
    Case("provider 503 HTML error page", "server_error",
         *both(lambda f: html_page(503, "503 Service Temporarily Unavailable")), words=("503",)),
    Case("connection refused (provider down)", "connection", gate_down, gate_down, words=("cannot reach",)),
    Case("429 with Retry-After: 1", "rate_limited",
         *both(lambda f: Reply(429, {"error": "Too Many Requests"}, headers={"Retry-After": "1"})),
         words=("429",)),
    Case("credentials refused (401)", "auth", refuse_credentials, refuse_credentials, words=("401",)),
    Case("HTML page with HTTP 200 (captive proxy)", "invalid_response",
         *both(lambda f: html_page(200, "Proxy login required")), words=("HTML",)),
    Case("truncated JSON", "invalid_response", *both(lambda f: truncated_json()), words=("not valid JSON",)),
    Case("malformed JSON (syntax)", "invalid_response", *both(lambda f: Reply(200, b"{'data': [1, 2,]}")),
         words=("not valid JSON",)),
    Case("JSON of the wrong shape", "invalid_response", *both(wrong_shape), words=("not a JSON array",)),
    Case("empty data", "no_data", *both(lambda f: Reply(200, f.good(values=[]))), words=("no points",)),
    Case("NaN values", "invalid_response", *both(lambda f: Reply(200, f.good(values=[300, math.nan]))),
         words=("NaN",)),
    Case("negative values", "invalid_response", *both(lambda f: Reply(200, f.good(values=[300, -5]))),
         words=("non-negative",)),
    Case("wrong units (WattTime percentile)", "invalid_response",
         reply(lambda f: Reply(200, f.good(units="percentile"))), None, words=("units",)),
    Case("clock skew: forecast entirely in the past", "invalid_response", *both(in_the_past),
         words=("before now", "clock")),
    Case("error body echoes the credential", "client_error", echo_secret, echo_secret, words=("***",)),
]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_provider_fault(world: World, case: Case) -> None:
    plan = {s.name: (s, inject) for s, inject in ((world.wt, case.wt), (world.em, case.em)) if inject is not None}

    def scenario(subject: Subject) -> FaultResult:
        return provider_fault(subject, plan[subject.name][1], case.reason, case.words)

    try:
        results = run_for([subject for subject, _ in plan.values()], scenario)
    finally:
        for subject, _ in plan.values():
            settle(subject)
    record(case.name, outcome_text(results), max(r.worst_absence for r in results),
           "yes" if any(r.lost for r in results) else "no")


@pytest.mark.parametrize("style", ["401", "403html"])
def test_token_expiry_relogs_in_transparently(world: World, style: str) -> None:
    """WattTime's bearer token expires mid-run: one fresh login, no fallback, no error counted."""
    subject, fake = world.wt, world.wt.fake
    assert isinstance(fake, FaultyWattTime)
    wait_healthy(subject)
    since, issued, auth_errors = time.monotonic(), fake.tokens_issued, fetch_errors(subject, "auth")
    fake.expired_style = style
    try:
        fake.expire_tokens()
        wait_for(lambda: fake.tokens_issued > issued, 15, "a fresh WattTime login")
        recover(subject)
        assert message(subject.cm()) == ""
        assert fetch_errors(subject, "auth") == auth_errors
        worst = check_absence(subject, since)
        check_no_secrets(subject)
    finally:
        fake.expired_style = "401"
        settle(subject)
    record(f"WattTime token expired ({'401' if style == '401' else 'nginx 403 HTML page'})",
           "logged in again and retried within the fetch: no fallback, no error counted", worst)


def test_retry_after_longer_than_the_request_cap_is_honoured_by_the_loop(world: World) -> None:
    subject = world.wt
    wait_healthy(subject)
    arrivals: list[float] = []

    def rate_limited(request: Request) -> Reply:
        arrivals.append(time.monotonic())
        return Reply(429, {"error": "Too Many Requests"}, headers={"Retry-After": "15"})

    subject.fake.fault = rate_limited
    try:
        wait_for(lambda: len(arrivals) >= 2 or None, 20, "two forecast calls")
        gap = arrivals[1] - arrivals[0]
        record("429 with Retry-After: 15 (beyond the 10 s in-request cap)",
               f"fallback with the last good data; asked again after {gap:.1f} s, honouring Retry-After", None)
        assert gap >= 15, f"asked again after {gap:.1f}s despite Retry-After: 15"
    finally:
        settle(subject)
        wait_healthy(subject)


def test_message_counts_the_attempts_actually_made(world: World) -> None:
    subject = world.wt
    wait_healthy(subject)
    calls: list[float] = []

    def unavailable(request: Request) -> Reply:
        calls.append(time.monotonic())
        # Just over the 10 s in-request cap: one request, then the loop waits the 11 s it was asked to.
        return Reply(503, {"error": "maintenance"}, headers={"Retry-After": "11"})

    subject.fake.fault = unavailable
    try:
        text = message(wait_fallback(subject, 20)) or ""
        assert len(calls) >= 1 and "3 attempts" not in text, f"{len(calls)} request(s) made; message: {text!r}"
    finally:
        settle(subject)
        wait_healthy(subject)


# -- API-server faults (on the WattTime exporter) --------------------------------------------------------------


def api_fault(world: World, name: str, inject: Callable[[FakeKubeAPI], None], heal: Callable[[FakeKubeAPI], None],
              log_words: tuple[str, ...], *, counted: bool, did: str) -> None:
    subject = world.wt
    good = wait_healthy(subject)
    since, errors, logs_before = time.monotonic(), write_errors(subject), len(subject.exporter.logs())
    try:
        inject(subject.api)
        if counted:
            wait_for(lambda: write_errors(subject) >= errors + 2, 20, "configmap_writes_total{result=error} += 2")
        for word in log_words:
            wait_for(lambda w=word: w in subject.exporter.logs()[logs_before:], 20, f"{word!r} in the logs")  # type: ignore[misc]
        cm = wait_for(subject.cm, 10, "the ConfigMap present")  # a create retry may be in progress
        assert GoodData.of(cm) == good, "the ConfigMap lost its data during the fault"
        heal(subject.api)
        recover(subject)
        worst = check_absence(subject, since)
        check_no_secrets(subject)
    finally:
        settle(subject)
    record(name, did, worst)


def test_api_500_on_delete(world: World) -> None:
    api_fault(world, "API server 500 on delete",
              lambda api: api.fail_next(2, 500, "delete", "configmaps"), lambda api: None,
              ("cannot delete ConfigMap", "API server answered 500"), counted=True,
              did="publish fails before anything is removed; counted as configmap_writes{error}, logged, "
                  "retried next cycle; the old ConfigMap stays")


def test_api_500_on_create(world: World) -> None:
    api_fault(world, "API server 500 on create (after our delete)",
              lambda api: api.fail_next(2, 500, "create", "configmaps", dry_run=False), lambda api: None,
              ("create of ConfigMap", "API server answered 500"), counted=False,
              did="create retried within the same replacement (0.1 s backoff); absent only for the retries; "
                  "logged as a warning (not counted: the replacement succeeded)")


def test_api_403(world: World) -> None:
    user = world.wt.exporter.env["POD_NAME"]

    def deny(api: FakeKubeAPI) -> None:
        api.deny(user, "delete", "configmaps")

    api_fault(world, "API server 403 (RBAC lacks delete)", deny, lambda api: api.allow(),
              ("403 Forbidden", "grant the exporter's ServiceAccount"), counted=True,
              did="counted as configmap_writes{error}; log names the verb and the Role to fix; the old "
                  "ConfigMap stays; publishes again once allowed")


def test_api_unreachable_then_back(world: World) -> None:
    def down(api: FakeKubeAPI) -> None:
        api.set_down(True)
        time.sleep(4)  # a few failed publishes

    api_fault(world, "API server unreachable for 4 s, then back", down, lambda api: api.set_down(False),
              ("API server unreachable",), counted=True,
              did="counted as configmap_writes{error}, data kept in memory, /metrics still served; published "
                  "as soon as the server answered")


def test_api_403_on_create(world: World) -> None:
    subject = world.wt
    user = subject.exporter.env["POD_NAME"]
    good = wait_healthy(subject)
    since, errors = time.monotonic(), write_errors(subject)
    rule = subject.api.deny(user, "create", "configmaps")
    try:
        wait_for(lambda: write_errors(subject) > errors, 20, "configmap_writes_total{result=error} += 1")
        subject.api.allow(rule)
        cm = wait_for(subject.cm, 20, "the ConfigMap back")
        assert GoodData.of(cm) == good
        recover(subject)
        worst = absence(subject.api, subject.configmap, since)
        record("API server 403 on create (RBAC lacks create, allows delete)",
               "the dry-run create before the delete was refused: nothing deleted, the old ConfigMap stayed; "
               "published from memory once the Role was fixed", worst)
        check_absence(subject, since)
    finally:
        settle(subject)


def test_restart_while_the_api_server_fails_the_read(tmp_path: Path) -> None:
    subject = make_subject("restart-read", FaultyWattTime(), tmp_path)
    try:
        subject.exporter.start()
        good = wait_healthy(subject)
        subject.exporter.stop()
        provider_down(subject)
        subject.api.fail_next(1, 500, "get", "configmaps")  # the read at start fails once
        since = time.monotonic()
        subject.exporter.start()
        cm = wait_fallback(subject, 30)
        lost = GoodData.of(cm) != good
        record("restart while the API server fails the first read (500) and the provider is down",
               f"started with nothing loaded, published {cm['data']['numOfRecords']} records over the good "
               "ConfigMap" if lost else "the read failed, so no fallback was published over the good ConfigMap; "
               "read it on the next attempt and published it as the fallback",
               absence(subject.api, subject.configmap, since),
               "yes" if lost else "no")
        assert not lost, f"data lost: {cm['data']['numOfRecords']} records, {message(cm)!r}"
    finally:
        subject.close()


def test_api_409_race(world: World) -> None:
    """Another writer creates the ConfigMap between our delete and our create: we replace theirs."""
    subject = world.wt
    user = subject.exporter.env["POD_NAME"]
    good = wait_healthy(subject)
    since = time.monotonic()
    foreign = {"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": subject.configmap, "namespace": NAMESPACE,
                            "labels": {"app.kubernetes.io/name": "carbon-intensity-exporter"}},
               "data": {"message": "someone else"}}
    raced = threading.Event()

    def racer() -> None:
        seen = len(subject.api.write_log)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            new = subject.api.write_log[seen:]
            if any(w.verb == "delete" and w.user == user and w.name == subject.configmap for w in new):
                subject.api.put_object(foreign)
                raced.set()
                return
            time.sleep(0.001)

    subject.api.latency = 0.05  # our create reaches the store 50 ms after our delete: the racer gets in between
    thread = threading.Thread(target=racer, daemon=True)
    thread.start()
    try:
        assert raced.wait(20), "the racer never saw our delete"
        subject.api.latency = 0.0
        conflicts = lambda: [r for r in subject.api.requests_by(user, "create") if r.status == 409]  # noqa: E731
        wait_for(conflicts, 10, "our create answered 409 AlreadyExists")
        cm = wait_for(lambda: (c := subject.cm()) is not None and (c.get("binaryData") and c), 10, "ours again")
        assert GoodData.of(cm) == good
        recover(subject)
        worst = check_absence(subject, since)
        check_no_secrets(subject)
    finally:
        settle(subject)
    record("409 race: another writer creates it between our delete and create",
           "409 AlreadyExists → deleted theirs and created ours (retry within the replacement)", worst)


def test_watch_dropped_then_deleted(world: World) -> None:
    subject = world.wt
    good = wait_healthy(subject)
    before = subject.exporter.metric("carbon_intensity_configmap_recreations_total")
    try:
        subject.api.drop_watches()
        wait_for(lambda: subject.api.open_watches >= 1, 10, "the exporter to watch again")
        since = time.monotonic()
        assert subject.api.delete_object("configmaps", NAMESPACE, subject.configmap)
        cm = wait_for(subject.cm, 5, "the ConfigMap recreated")
        gap = absence(subject.api, subject.configmap, since)
        assert gap <= 1.0, f"recreated after {gap:.2f}s"
        assert GoodData.of(cm) == good
        wait_for(lambda: subject.exporter.metric("carbon_intensity_configmap_recreations_total") > before, 10,
                 "configmap_recreations_total += 1")
        wait_for(lambda: any(e.get("reason") == "ConfigMapRecreated" for e in all_events(subject.api)), 10,
                 "a ConfigMapRecreated Event")
        recover(subject)
        check_no_secrets(subject)
    finally:
        settle(subject)
    record("watch stream dropped, then the ConfigMap deleted",
           "re-listed and re-watched; recreated from memory (recreations counted, ConfigMapRecreated Event)", gap)


# -- signals, restarts and leadership (each with its own fakes) -----------------------------------------------


def provider_down(subject: Subject) -> None:
    """A fast, realistic outage: 503 with a Retry-After just beyond the 10 s request cap (no in-request retries;
    the loop honours the 11 s before it asks again)."""
    subject.fake.fault = Reply(503, {"error": "maintenance"}, headers={"Retry-After": "11"})


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_signal_mid_cycle_then_restart_during_an_outage(tmp_path: Path, signum: signal.Signals) -> None:
    subject = make_subject("sig", FaultyWattTime(), tmp_path)
    try:
        subject.exporter.start()
        good = wait_healthy(subject)
        since = time.monotonic()
        calls = len(subject.fake.requests_to(r"/v3/forecast"))
        subject.fake.fault = Reply(200, subject.fake.good(), delay=5.0)  # a fetch in flight
        wait_for(lambda: len(subject.fake.requests_to(r"/v3/forecast")) > calls, 10, "a fetch in flight")
        started = time.monotonic()
        subject.exporter.signal(signum)
        code = subject.exporter.wait(timeout=10)
        took = time.monotonic() - started
        if signum == signal.SIGTERM:
            assert code == 0 and took < 5, f"SIGTERM: exit {code} after {took:.1f}s"
        assert subject.cm() is not None and GoodData.of(subject.cm() or {}) == good
        provider_down(subject)
        subject.exporter.start()  # the restart, while the provider is still down
        cm = wait_fallback(subject, 30)
        assert GoodData.of(cm) == good, "the restarted exporter did not keep the last good data"
        text = message(cm) or ""
        assert "WattTime" in text and "server_error" in text, text
        wait_for(lambda: fetch_errors(subject, "server_error") > 0, 10, "fetch_errors{server_error}")
        recover(subject)
        worst = check_absence(subject, since)
        check_no_secrets(subject)
    finally:
        subject.close()
    name = signal.Signals(signum).name
    record(f"{name} mid-fetch, restart while the provider is down",
           f"{'exited 0 in ' + format(took, '.1f') + ' s; ' if signum == signal.SIGTERM else ''}restarted process "
           "loaded the ConfigMap, published it as the fallback with the reason, recovered", worst)


def test_sigkill_while_the_create_is_retried(tmp_path: Path) -> None:
    subject = make_subject("kill-create", FaultyWattTime(), tmp_path)
    try:
        subject.exporter.start()
        good = wait_healthy(subject)
        since = time.monotonic()
        user = subject.exporter.env["POD_NAME"]
        seen = len(subject.api.write_log)
        # The dry run passes, then the real create fails and is retried for ~3 s.
        subject.api.fail_next(6, 500, "create", "configmaps", dry_run=False)
        wait_for(lambda: any(w.verb == "delete" and w.user == user for w in subject.api.write_log[seen:]), 10,
                 "our delete")
        time.sleep(0.05)
        subject.exporter.signal(signal.SIGKILL)
        subject.exporter.wait(timeout=10)
        provider_down(subject)
        subject.exporter.start()
        cm = wait_fallback(subject, 30)
        record("SIGKILL while the create after our delete is being retried, restart while the provider is down",
               "restarted, found the ConfigMap missing, loaded the copy in STATE_DIR (the chart's emptyDir) and "
               f"published its {cm['data']['numOfRecords']} records as the fallback",
               absence(subject.api, subject.configmap, since), "yes" if GoodData.of(cm) != good else "no")
        assert GoodData.of(cm) == good, f"data lost: {cm['data']['numOfRecords']} records, {message(cm)!r}"
    finally:
        subject.close()


def holder(api: FakeKubeAPI) -> str | None:
    lease = api.get_object("leases", NAMESPACE, "carbon-intensity-leader")
    return None if lease is None else (lease.get("spec") or {}).get("holderIdentity")


def test_leader_killed(tmp_path: Path) -> None:
    api = FakeKubeAPI()
    fake = FaultyWattTime()
    ha = {"LEADER_ELECTION": "true", "LEASE_DURATION": "1.5s"}
    first = make_subject("a", fake, tmp_path, api=api, env=ha)
    second = make_subject("b", fake, tmp_path, api=api, gate=first.gate, env=ha)  # one fake, one switch
    subjects = {"a": first, "b": second}
    try:
        first.exporter.start()
        second.exporter.start()
        good = wait_healthy(first)
        leader = wait_for(lambda: holder(api), 15, "a Lease holder")
        standby = "b" if leader == "a" else "a"
        since = time.monotonic()
        provider_down(first)
        subjects[leader].exporter.signal(signal.SIGKILL)
        subjects[leader].exporter.wait(timeout=10)
        wait_for(lambda: holder(api) == standby, 15, f"{standby} to take the Lease")
        cm = wait_for(lambda: (c := first.cm()) is not None and message(c) and
                      any(w.user == standby and w.verb == "create" for w in api.writes("configmaps")) and c,
                      30, "a fallback published by the new leader")
        assert GoodData.of(cm) == good, "the new leader did not keep the data"
        assert "WattTime" in (message(cm) or "")
        wait_for(lambda: fetch_errors(subjects[standby], "server_error") > 0, 10, "the new leader counts it")
        recover(first)
        worst = check_absence(first, since)
        for subject in subjects.values():
            check_no_secrets(subject)
    finally:
        second.exporter.stop()
        first.close()
    record("leader SIGKILLed during a provider outage (2 replicas, LEASE_DURATION=1.5s)",
           "standby took the Lease after expiry, loaded the ConfigMap, published it as the fallback, recovered",
           worst)


# -- the timeout scenario (started with the world, in the background) ----------------------------------------


def test_provider_timeout(world: World) -> None:
    world.slow_thread.join(timeout=150)
    assert world.slow_result, "the timeout scenario did not finish"
    result = world.slow_result[0]
    if isinstance(result, BaseException):
        raise result
    record("provider slower than the read timeout (10 s)", outcome_text([result]), result.worst_absence)


# -- security --------------------------------------------------------------------------------------------------


def cli(args: list[str], env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    full = {**base_env(), "LOG_FORMAT": "json", **env}
    return subprocess.run([*EXE, *args], env=full, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def fakes() -> Iterator[dict[str, ProviderFake]]:
    wt, em = FaultyWattTime().start(), FaultyElectricityMaps().start()
    try:
        yield {"WattTime": wt, "ElectricityMaps": em}
    finally:
        wt.stop()
        em.stop()


def direct_env(fake: ProviderFake) -> dict[str, str]:
    if isinstance(fake, FaultyWattTime):
        return {"PROVIDER": "WattTime", "WT_USERNAME": "fault-user", "WT_PASSWORD": WT_PASSWORD,
                "WT_BASE_URL": fake.base_url, "WT_LOGIN_URL": fake.login_url, "PROVIDER_REGION": "CAISO_NORTH"}
    return {"PROVIDER": "ElectricityMaps", "EM_API_TOKEN": EM_TOKEN, "EM_BASE_URL": fake.base_url,
            "PROVIDER_REGION": "DE"}


@pytest.mark.parametrize("provider", ["WattTime", "ElectricityMaps"])
def test_dry_run_and_forecast_errors_print_no_secret(fakes: dict[str, ProviderFake], provider: str) -> None:
    fake = fakes[provider]
    env = {**direct_env(fake), "LOG_LEVEL": "DEBUG"}
    ok = cli(["run", "--once", "--dry-run"], env)
    assert ok.returncode == 0, ok.stderr
    assert "binaryData" in ok.stdout
    outputs = [ok.stdout + ok.stderr]
    for inject in (refuse_credentials_of, echo_secret_of):
        inject(fake)
        failed = cli(["run", "--once", "--dry-run"], env)
        assert failed.returncode == 1, failed.stderr
        assert f"{provider}:" in failed.stdout, failed.stdout  # the YAML's message names the provider
        shown = cli(["forecast", "-o", "json"], env)
        assert shown.returncode == 1 and shown.stderr.startswith(f"error: {provider}:"), shown.stderr
        outputs += [failed.stdout + failed.stderr, shown.stdout + shown.stderr]
        heal_fake(fake)
    found = [leaks(text) for text in outputs if leaks(text)]
    assert not found, f"secrets printed: {found}"
    record(f"secrets: `run --once --dry-run` (LOG_LEVEL=DEBUG) and `forecast` errors, {provider}",
           "no credential or token in stdout/stderr; echoed credentials scrubbed to ***", None)


def test_tls_verification_is_on(tmp_path: Path) -> None:
    cert, key = self_signed_cert(tmp_path)
    fake = FaultyWattTime(tls=server_tls_context(cert, key)).start()
    try:
        env = direct_env(fake)
        refused = cli(["run", "--once", "--dry-run"], env)
        assert refused.returncode == 1, refused.stderr
        assert "TLS certificate of 127.0.0.1 could not be verified" in refused.stdout + refused.stderr
        assert "SSL_CERT_FILE" in refused.stdout
        trusted = cli(["run", "--once", "--dry-run"], {**env, "SSL_CERT_FILE": str(cert)})
        assert trusted.returncode == 0, trusted.stderr
        assert not leaks(refused.stdout + refused.stderr + trusted.stdout + trusted.stderr)
    finally:
        fake.stop()
    record("provider with a self-signed TLS certificate",
           "fetch refused: `TLS certificate of 127.0.0.1 could not be verified …`; works with SSL_CERT_FILE", None)


def test_secret_values_are_distinctive() -> None:
    """Guard the greps themselves: every secret is long and appears in no normal output."""
    assert all(len(secret) >= 12 for secret in SECRETS)
    assert base64.b64decode(SECRETS[2]).decode().endswith(WT_PASSWORD)
    assert short("a | b") == "a / b"  # table cells cannot hold a pipe
