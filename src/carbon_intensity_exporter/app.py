"""Wiring for ``run``: settings → provider → exporter → sink, plus the threads around the loop.

Kept apart from ``cli`` (argument parsing) and ``exporter`` (the loop) so each can be tested alone.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from .settings import ConfigurationError, Settings

log = logging.getLogger(__name__)

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2


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


def run_exporter(
    settings: Settings, *, once: bool, dry_run: bool, stop: threading.Event | None = None, client: Any = None
) -> int:
    """Run until SIGTERM (or one cycle with ``once``); returns the process exit code."""
    from . import cli, configmap
    from .exporter import Exporter
    from .providers import build_provider

    provider = build_provider(settings)
    for region in settings.regions:
        provider.check_region(region, settings.provider_region)
    stop = stop or threading.Event()
    publisher: configmap.ConfigMapPublisher | None = None
    sink: Any
    if dry_run:
        sink = configmap.DryRunSink()
    else:
        publisher = configmap.ConfigMapPublisher(client or connect(settings), settings.namespace)
        sink = publisher
    exporter = Exporter(settings, provider, sink)
    try:
        exporter.load_existing()
        if once:
            return EXIT_OK if exporter.run_once() else EXIT_FAILED
        cli.install_signal_handlers(stop, exporter.wake)
        if publisher is not None:
            threading.Thread(target=publisher.watch, args=(stop,), name="configmap-watch", daemon=True).start()
        log.info(
            "exporting %s for %s every %s",
            settings.provider.value,
            ", ".join(settings.regions),
            settings.refresh_interval,
        )
        exporter.run(stop)
        log.info("stopped")
        return EXIT_OK
    finally:
        provider.close()
        if publisher is not None:
            publisher.close()
