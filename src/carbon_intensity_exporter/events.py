"""Kubernetes Events (events.k8s.io/v1) for what an operator should notice without reading logs.

``kubectl describe configmap carbon-intensity -n kube-system`` then shows why the data is stale
(``FetchFailed`` with the reason), when it came back (``FetchRecovered``), that someone deleted it
(``ConfigMapRecreated``), and which replica leads (``LeadershipGained`` / ``LeadershipLost``).

Events are best effort: they are queued (bounded) and sent by a daemon thread, so the refresh loop never
waits on the API server; a full queue or a refused Event is logged at DEBUG and dropped. Failures are
deduplicated per (region, reason) so a provider outage retried every minute is one Event, not hundreds.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from .configmap import APP_NAME
from .exporter import Observer, Target
from .providers.base import FetchError

if TYPE_CHECKING:
    from . import configmap

log = logging.getLogger(__name__)

REPORTING_CONTROLLER = APP_NAME
#: The API server rejects a longer ``note``.
NOTE_MAX_BYTES = 1024
QUEUE_SIZE = 100

EventType = Literal["Normal", "Warning"]


@dataclass(frozen=True, slots=True)
class Regarding:
    """What an Event is about: an object reference (kind, apiVersion, namespace, name)."""

    kind: str
    namespace: str
    name: str
    api_version: str = "v1"


@dataclass(frozen=True, slots=True)
class PendingEvent:
    """One Event waiting in the queue (kept as plain data: lightkube models are built on the sender thread)."""

    regarding: Regarding
    type: EventType
    reason: str
    action: str
    note: str
    time: datetime


def truncate_note(note: str, limit: int = NOTE_MAX_BYTES) -> str:
    """At most ``limit`` UTF-8 bytes, cut on a character boundary, with an ellipsis when cut."""
    encoded = note.encode()
    if len(encoded) <= limit:
        return note
    ellipsis = "…"
    cut = encoded[: limit - len(ellipsis.encode())]
    return cut.decode(errors="ignore") + ellipsis


class EventRecorder(Observer):
    """Observes the loop and records Events; pass ``recreated`` and the leadership methods as callbacks."""

    def __init__(
        self,
        client: Any,
        namespace: str,
        primary_configmap: str,
        *,
        pod_name: str | None = None,
        pod_namespace: str | None = None,
        reporting_instance: str | None = None,
        queue_size: int = QUEUE_SIZE,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._client = client
        self._namespace = namespace
        self._primary = primary_configmap
        self._pod_name = pod_name
        self._pod_namespace = pod_namespace
        self._instance = reporting_instance or pod_name or APP_NAME
        self._clock = clock
        self._queue: queue.Queue[PendingEvent | None] = queue.Queue(maxsize=queue_size)
        self._lock = threading.Lock()
        self._failing: dict[str, str] = {}  # region → reason of the FetchFailed last recorded
        self._thread: threading.Thread | None = None
        self._pending = 0
        self._idle = threading.Condition(self._lock)
        self._last_ns = 0
        self.sent = 0
        self.dropped = 0

    # -- Observer hooks ------------------------------------------------------------------------------

    def fetched(self, target: Target, seconds: float, error: FetchError | None) -> None:
        """FetchFailed when a region starts failing or fails for a new reason; FetchRecovered after."""
        with self._lock:
            previous = self._failing.get(target.region)
            if error is not None:
                if previous == error.reason:
                    return
                self._failing[target.region] = error.reason
            else:
                if previous is None:
                    return
                del self._failing[target.region]
        regarding = self._configmap(target.configmap_name)
        if error is not None:
            held = "the last fetched data stays published" if target.forecast is not None else "no data is held yet"
            self.emit(
                regarding,
                "Warning",
                "FetchFailed",
                "Fetch",
                f"fetching the forecast for {target.region} failed ({error.reason}): {error}; {held}",
            )
        else:
            self.emit(
                regarding,
                "Normal",
                "FetchRecovered",
                "Fetch",
                f"fetching the forecast for {target.region} works again after {target.failures} failed "
                f"attempt(s) (last reason: {previous}); fresh data is published",
            )

    def published(self, target: Target, error: configmap.PublishError | None) -> None:
        """Publish failures are the API server's own: an Event about them would likely fail too."""

    # -- callbacks -----------------------------------------------------------------------------------

    def recreated(self, name: str) -> None:
        """``ConfigMapPublisher(on_recreated=...)``: someone deleted the ConfigMap and we put it back."""
        self.emit(
            self._configmap(name),
            "Normal",
            "ConfigMapRecreated",
            "Recreate",
            f"ConfigMap {self._namespace}/{name} was deleted; recreated it from the data held in memory",
        )

    def leadership_gained(self) -> None:
        """Leader-election callback: this instance now fetches and publishes."""
        self.emit(
            self._self_reference(),
            "Normal",
            "LeadershipGained",
            "Lead",
            f"{self._instance} holds the Lease and now fetches and publishes",
        )

    def leadership_lost(self) -> None:
        """Leader-election callback: this instance stopped publishing (lost the Lease, or shut down)."""
        self.emit(
            self._self_reference(),
            "Normal",
            "LeadershipLost",
            "Lead",
            f"{self._instance} no longer holds the Lease and stopped publishing",
        )

    # -- sending -------------------------------------------------------------------------------------

    def emit(self, regarding: Regarding, type_: EventType, reason: str, action: str, note: str) -> None:
        """Queue an Event; never blocks (a full queue drops it, logged at DEBUG)."""
        event = PendingEvent(regarding, type_, reason, action, truncate_note(note), self._clock())
        with self._lock:
            try:
                self._queue.put_nowait(event)
            except queue.Full:
                self.dropped += 1
                log.debug("Event queue full; dropping %s %s", reason, note)
                return
            self._pending += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._send_loop, name="events", daemon=True)
                self._thread.start()

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every queued Event was sent or dropped; False on timeout (e.g. at shutdown)."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._pending:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(remaining)
        return True

    def close(self, timeout: float = 2.0) -> None:
        """Send what is queued (up to ``timeout``), then stop the sender thread."""
        self.flush(timeout)
        with self._lock:
            thread = self._thread
        if thread is not None:
            try:
                self._queue.put_nowait(None)
            except queue.Full:
                return  # daemon thread: it dies with the process
            thread.join(timeout)

    def _send_loop(self) -> None:
        while True:
            event = self._queue.get()
            if event is None:
                return
            sent = False
            try:
                self._client.create(self._build(event), namespace=event.regarding.namespace)
                sent = True
            except Exception as exc:
                log.debug("could not record Event %s on %s: %s", event.reason, event.regarding.name, exc)
            finally:
                with self._idle:
                    if sent:
                        self.sent += 1
                    else:
                        self.dropped += 1
                    self._pending -= 1
                    self._idle.notify_all()

    def _build(self, event: PendingEvent) -> Any:
        from lightkube.models.core_v1 import ObjectReference
        from lightkube.models.meta_v1 import ObjectMeta
        from lightkube.resources.events_v1 import Event

        regarding = event.regarding
        # client-go's naming: <object>.<unique hex>, in the object's namespace (the API server requires it).
        self._last_ns = max(time.time_ns(), self._last_ns + 1)  # unique even on a coarse clock
        name = f"{regarding.name}.{self._last_ns:x}"
        return Event(
            metadata=ObjectMeta(name=name, namespace=regarding.namespace),
            eventTime=event.time,
            regarding=ObjectReference(
                apiVersion=regarding.api_version,
                kind=regarding.kind,
                namespace=regarding.namespace,
                name=regarding.name,
            ),
            reportingController=REPORTING_CONTROLLER,
            reportingInstance=self._instance[:128],
            action=event.action,
            reason=event.reason,
            note=event.note,
            type=event.type,
        )

    # -- references ----------------------------------------------------------------------------------

    def _configmap(self, name: str) -> Regarding:
        return Regarding("ConfigMap", self._namespace, name)

    def _self_reference(self) -> Regarding:
        """The Pod when we know it (the downward API), else the primary ConfigMap."""
        if self._pod_name and self._pod_namespace:
            return Regarding("Pod", self._pod_namespace, self._pod_name)
        return self._configmap(self._primary)


__all__ = ["NOTE_MAX_BYTES", "REPORTING_CONTROLLER", "EventRecorder", "PendingEvent", "Regarding", "truncate_note"]
