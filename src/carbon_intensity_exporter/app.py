"""Wiring for ``run``: settings → provider → exporter → sink, plus the threads around the loop.

Kept apart from ``cli`` (argument parsing) and ``exporter`` (the loop) so each can be tested alone.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .settings import ConfigurationError, Settings, format_duration

if TYPE_CHECKING:
    from .events import EventRecorder
    from .exporter import Observer
    from .leader import LeaderElector
    from .providers import Provider

log = logging.getLogger(__name__)

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2


def install_signal_handlers(stop: threading.Event, wake: Callable[[], None]) -> None:
    """SIGTERM and SIGINT stop the loop (the caller then releases the Lease and exits within 5 s)."""

    def handler(signum: int, frame: object) -> None:
        stop.set()
        wake()

    if threading.current_thread() is not threading.main_thread():
        return  # embedded (tests, notebooks): the caller owns ``stop``
    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def connect(settings: Settings) -> Any:
    """A Kubernetes client, or ConfigurationError saying how to give it a cluster."""
    from lightkube.core.exceptions import ConfigError

    from .configmap import kube_client

    try:
        return kube_client()
    except ConfigError as exc:
        raise ConfigurationError(
            f"no Kubernetes configuration ({exc}): run in a pod, set KUBECONFIG, or add --dry-run to print the "
            "ConfigMap instead"
        ) from None


def checked_provider(settings: Settings, regions: list[str] | None = None) -> Provider:
    """The configured provider, every region checked against it before anything is contacted."""
    from .providers import build_provider

    provider = build_provider(settings)
    for region in regions if regions is not None else settings.regions:
        try:
            provider.check_region(region, settings.provider_region)
        except ConfigurationError as exc:
            setting = "REGION" if region == settings.region else "ADDITIONAL_REGIONS"
            provider.close()
            raise ConfigurationError(f"{setting}: {exc}") from None
    return provider


def run_exporter(
    settings: Settings, *, once: bool, dry_run: bool, stop: threading.Event | None = None, client: Any = None
) -> int:
    """Run until SIGTERM (or one cycle with ``once``); returns the process exit code.

    Shutdown order matters with leader election: stop the loop, let an in-flight publish finish, and only
    then release the Lease, so the standby that takes over never writes alongside us.
    """
    from . import configmap
    from .exporter import Exporter
    from .metrics import CompositeObserver, MetricsObserver, build_registry

    provider = checked_provider(settings)
    stop = stop or threading.Event()
    kube = None if dry_run else (client or connect(settings))
    elector: LeaderElector | None = None
    recorder: EventRecorder | None = None
    metrics_observer = MetricsObserver(provider.name)
    observers: list[Observer] = [metrics_observer]
    if kube is not None and not once:
        from .events import EventRecorder

        recorder = EventRecorder(
            kube,
            settings.namespace,
            settings.configmap_name,
            pod_name=settings.pod_name if os.environ.get("POD_NAME") else None,
            pod_namespace=settings.namespace,
            reporting_instance=settings.pod_name,
        )
        observers.append(recorder)
    observer = CompositeObserver(*observers)
    if kube is not None and settings.leader_election and not once:
        from .leader import LeaderElector

        elector = LeaderElector(
            kube,
            settings.namespace,
            settings.pod_name,
            name=f"{settings.configmap_name}-leader",
            # client-go's defaults are 15 s / 10 s / 2 s: keep those ratios for any LEASE_DURATION.
            lease_duration=settings.lease_duration.total_seconds(),
            renew_deadline=settings.lease_duration.total_seconds() * 2 / 3,
            retry_period=settings.lease_duration.total_seconds() * 2 / 15,
            on_started_leading=recorder.leadership_gained if recorder else None,
            on_stopped_leading=recorder.leadership_lost if recorder else None,
        )
    leading: Callable[[], bool] = elector.is_leader if elector is not None else (lambda: True)
    publisher: configmap.ConfigMapPublisher | None = None
    sink: Any
    if kube is None:
        sink = configmap.DryRunSink()
    else:
        publisher = configmap.ConfigMapPublisher(
            kube, settings.namespace, active=leading, on_recreated=observer.recreated
        )
        sink = publisher
    exporter = Exporter(settings, provider, sink, observer=observer)
    server = None
    elector_stop = threading.Event()
    elector_thread: threading.Thread | None = None
    try:
        exporter.load_existing()
        if once:
            return EXIT_OK if exporter.run_once() else EXIT_FAILED
        install_signal_handlers(stop, exporter.wake)
        if settings.metrics_port:
            from .http import start_http_server

            registry = build_registry(exporter, metrics_observer, leading=leading)
            server = start_http_server(settings.metrics_port, exporter, registry, leading=leading)
        if elector is not None:
            elector_thread = threading.Thread(target=elector.run, args=(elector_stop,), name="leader", daemon=True)
            elector_thread.start()
        if publisher is not None:
            threading.Thread(target=publisher.watch, args=(stop,), name="configmap-watch", daemon=True).start()
        log.info(
            "exporting %s for %s every %s%s",
            settings.provider.value,
            ", ".join(settings.regions),
            format_duration(settings.refresh_interval),
            f" (leader election as {settings.pod_name})" if elector is not None else "",
        )
        exporter.heartbeat = time.monotonic()
        exporter.run(stop, leading)
        log.info("stopping")
        return EXIT_OK
    finally:
        if publisher is not None:
            publisher.stop_publishing()
        elector_stop.set()
        if elector_thread is not None:
            elector_thread.join(timeout=3)
        if server is not None:
            server.stop()
        if recorder is not None:
            recorder.close(timeout=1)
        provider.close()
        if publisher is not None:
            publisher.close()
