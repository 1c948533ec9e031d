"""Lease-based leader election with client-go ``leaderelection`` + ``resourcelock.LeaseLock`` semantics.

Why our own module: the Python libraries that implement this (``kubernetes`` and ``kubernetes_asyncio``'s
``leaderelection`` packages) are built on their own API clients, not on lightkube, which the rest of the
exporter uses; pulling in a second Kubernetes client stack for ~200 lines of logic is not worth it, and no
maintained lightkube-based elector exists on PyPI.

The rules, as in client-go:

* The Lease ``spec`` is the election record: ``holderIdentity`` (the pod name), ``leaseDurationSeconds``,
  ``acquireTime``, ``renewTime`` (MicroTime) and ``leaseTransitions`` (incremented whenever the holder
  changes).
* A candidate takes the Lease only if it is absent (create; 409 AlreadyExists means someone else won),
  already ours, has an empty holder (released), or its record has not changed for ``leaseDurationSeconds``
  measured on *this* process's monotonic clock since it first saw that record (client-go's ``observedTime``).
  The remote ``renewTime`` is never compared with the local clock, so clock skew between nodes is harmless.
* Every update carries the ``resourceVersion`` it read: a 409 Conflict means another candidate wrote first,
  and we simply try again next period.
* A leader is only a leader while ``renew_deadline`` has not passed since the start of its last successful
  renewal (:meth:`LeaderElector.is_leader` reads the monotonic clock, so this holds even if the loop or an
  API call hangs). Since ``renew_deadline < lease_duration``, a partitioned leader stops publishing before
  any standby can see its Lease expire.
* On shutdown the leader releases the Lease (client-go ``ReleaseOnCancel``): holder cleared,
  ``leaseDurationSeconds: 1``, ``leaseTransitions`` kept, so a standby takes over at its next retry.

API calls run on one worker thread so that a hung call can never delay the loss of leadership past
``renew_deadline``; the hung call itself is bounded only by the lightkube client's own timeout (the caller
builds the client, e.g. :func:`carbon_intensity_exporter.configmap.kube_client` with 10 s).
"""

from __future__ import annotations

import contextlib
import logging
import math
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from lightkube import Client
from lightkube.core.exceptions import ApiError
from lightkube.models.coordination_v1 import LeaseSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.coordination_v1 import Lease

log = logging.getLogger(__name__)

_T = TypeVar("_T")

#: Never sleep longer than this between checks of ``stop``, so shutdown stays prompt.
_POLL = 0.05


class _ApiThread:
    """One daemon thread that runs API calls in order; a call stuck there never blocks the loop or exit."""

    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]]] = queue.SimpleQueue()
        threading.Thread(target=self._serve, name=name, daemon=True).start()

    def submit(self, fn: Callable[[], _T]) -> Future[_T]:
        future: Future[_T] = Future()
        self._jobs.put((fn, future))
        return future

    def _serve(self) -> None:
        while True:
            fn, future = self._jobs.get()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn())
            except BaseException as exc:
                future.set_exception(exc)


@dataclass(frozen=True, slots=True)
class _Attempt:
    """What one try_acquire_or_renew found; applied by the loop thread."""

    started: float
    ok: bool


class LeaderElector:
    """Competes for the Lease ``namespace/name``; :meth:`is_leader` says whether we may act as the leader."""

    def __init__(
        self,
        client: Client,
        namespace: str,
        identity: str,
        *,
        name: str = "carbon-intensity-exporter",
        lease_duration: float = 15.0,
        renew_deadline: float = 10.0,
        retry_period: float = 2.0,
        on_started_leading: Callable[[], None] | None = None,
        on_stopped_leading: Callable[[], None] | None = None,
    ) -> None:
        if not identity:
            raise ValueError("leader election needs a non-empty identity (the pod name)")
        if not 0 < retry_period < renew_deadline < lease_duration:
            raise ValueError(
                "leader election needs 0 < retry_period < renew_deadline < lease_duration "
                f"(got {retry_period}, {renew_deadline}, {lease_duration})"
            )
        self.client = client
        self.namespace = namespace
        self.identity = identity
        self.name = name
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self.on_started_leading = on_started_leading
        self.on_stopped_leading = on_stopped_leading
        self._lock = threading.Lock()
        # Monotonic start of the last successful acquire/renew while leading; None while not leading.
        self._renewed_at: float | None = None
        self._announced = False  # whether on_started_leading ran without a matching on_stopped_leading
        # Only touched on the API thread (calls are serialised there):
        self._observed_spec: dict[str, Any] | None = None
        self._observed_at = 0.0
        self._last_holder: str | None = None
        self._last_error: str | None = None
        self._api = _ApiThread(f"lease-{identity}")
        self._pending: Future[_Attempt] | None = None

    # -- state ---------------------------------------------------------------------------------------

    def is_leader(self) -> bool:
        """True only while the Lease is surely ours: less than ``renew_deadline`` since our last renewal."""
        renewed = self._renewed_at
        return renewed is not None and time.monotonic() - renewed < self.renew_deadline

    @property
    def lease_duration_seconds(self) -> int:
        return math.ceil(self.lease_duration)

    def _sync_callbacks(self) -> None:
        """Fire on_started/on_stopped_leading when :meth:`is_leader` changed since the last call."""
        with self._lock:
            leading = self.is_leader()
            if leading == self._announced:
                return
            self._announced = leading
            if not leading:
                self._renewed_at = None
        if leading:
            log.info("%s became the leader (Lease %s/%s)", self.identity, self.namespace, self.name)
            callback = self.on_started_leading
        else:
            log.info(
                "%s stopped leading (no renewal of Lease %s/%s within %.1fs)",
                self.identity,
                self.namespace,
                self.name,
                self.renew_deadline,
            )
            callback = self.on_stopped_leading
        if callback is not None:
            try:
                callback()
            except Exception:
                log.exception("leader election callback failed")

    def _stop_leading(self, why: str) -> None:
        with self._lock:
            self._renewed_at = None
            announced, self._announced = self._announced, False
        if announced:
            log.info("%s stopped leading (%s)", self.identity, why)
            if self.on_stopped_leading is not None:
                try:
                    self.on_stopped_leading()
                except Exception:
                    log.exception("leader election callback failed")

    # -- the loop ------------------------------------------------------------------------------------

    def run(self, stop: threading.Event, *, release_on_stop: bool = True) -> None:
        """Until ``stop``: acquire, then renew every ``retry_period``; release on stop if we lead.

        ``release_on_stop=False`` leaves the Lease as it is, like a crashed process (for tests and benches).
        """
        next_attempt = time.monotonic()
        while not stop.is_set():
            if self._pending is None and time.monotonic() >= next_attempt:
                next_attempt = time.monotonic() + self.retry_period
                self._pending = self._api.submit(self._attempt)
            if self._pending is not None and self._pending.done():
                self._apply(self._pending.result())
                self._pending = None
            self._sync_callbacks()
            # Sleep until the next attempt or the renew deadline, whichever is first; while a call is in
            # flight, look at ``stop`` every _POLL seconds.
            wake = next_attempt
            renewed = self._renewed_at
            if renewed is not None:
                wake = min(wake, renewed + self.renew_deadline)
            if self._pending is not None:
                timeout = _POLL
                if renewed is not None:
                    timeout = min(timeout, max(renewed + self.renew_deadline - time.monotonic(), 0.001))
                with contextlib.suppress(FutureTimeout):
                    self._pending.result(timeout=timeout)
            else:
                stop.wait(max(wake - time.monotonic(), 0.0))
        if release_on_stop:
            self.release()
        else:
            self._stop_leading("stopped without releasing the Lease")

    def _apply(self, attempt: _Attempt) -> None:
        with self._lock:
            if attempt.ok and (self._renewed_at is None or attempt.started > self._renewed_at):
                self._renewed_at = attempt.started  # may already be past the deadline: then we do not lead

    def _attempt(self) -> _Attempt:
        started = time.monotonic()
        try:
            ok = self._try_acquire_or_renew()
        except Exception as exc:
            ok = False
            message = _describe(exc)
            level = logging.WARNING if message != self._last_error else logging.DEBUG
            self._last_error = message
            log.log(level, "%s: Lease %s/%s: %s", self.identity, self.namespace, self.name, message)
        else:
            self._last_error = None
        return _Attempt(started, ok)

    # -- one try (client-go tryAcquireOrRenew) -------------------------------------------------------

    def _record(self, old: LeaseSpec | None, now: datetime, ours: bool) -> LeaseSpec:
        spec = LeaseSpec(
            holderIdentity=self.identity,
            leaseDurationSeconds=self.lease_duration_seconds,
            acquireTime=now,
            renewTime=now,
            leaseTransitions=0,
        )
        if old is not None:
            spec.preferredHolder, spec.strategy = old.preferredHolder, old.strategy
            transitions = old.leaseTransitions or 0
            if ours:
                spec.acquireTime = old.acquireTime or now
                spec.leaseTransitions = transitions
            else:
                spec.leaseTransitions = transitions + 1
        return spec

    def _observe(self, spec: LeaseSpec) -> None:
        raw = spec.to_dict()
        if raw != self._observed_spec:
            self._observed_spec = raw
            self._observed_at = time.monotonic()
            holder = spec.holderIdentity or ""
            if holder != self._last_holder:
                self._last_holder = holder
                if holder and holder != self.identity:
                    log.info("%s: the leader is now %s", self.identity, holder)
                elif not holder:
                    log.info("%s: Lease %s/%s was released", self.identity, self.namespace, self.name)

    def _try_acquire_or_renew(self) -> bool:
        now = datetime.now(UTC)
        try:
            lease = self.client.get(Lease, self.name, namespace=self.namespace)
        except ApiError as exc:
            if exc.status.code != 404:
                raise
            spec = self._record(None, now, ours=False)
            try:
                created = self.client.create(
                    Lease(metadata=ObjectMeta(name=self.name, namespace=self.namespace), spec=spec)
                )
            except ApiError as exc2:
                if exc2.status.code == 409:
                    log.debug("%s: lost the race to create the Lease", self.identity)
                    return False
                raise
            self._observe(created.spec or spec)
            return True
        old = lease.spec or LeaseSpec()
        self._observe(old)
        holder = old.holderIdentity or ""
        ours = holder == self.identity
        duration = old.leaseDurationSeconds or self.lease_duration_seconds
        valid = self._observed_at + duration > time.monotonic()
        if holder and not ours and valid:
            return False
        lease.spec = self._record(old, now, ours)
        try:
            updated = self.client.replace(lease)  # carries metadata.resourceVersion from the get
        except ApiError as exc:
            if exc.status.code == 409:
                log.debug("%s: Lease changed under us (409 Conflict), retrying next period", self.identity)
                return False
            raise
        if not ours:
            log.info(
                "%s acquired Lease %s/%s (transitions: %s)",
                self.identity,
                self.namespace,
                self.name,
                lease.spec.leaseTransitions,
            )
        self._observe(updated.spec or lease.spec)
        return True

    # -- release -------------------------------------------------------------------------------------

    def release(self, timeout: float | None = None) -> None:
        """Hand the Lease back (client-go ReleaseOnCancel) so a standby takes over at its next retry.

        We stop leading first, so nothing is published once a standby can see the Lease free. Waits at most
        ``timeout`` (default: the shorter of ``renew_deadline`` and 3 s, so SIGTERM still exits within 5 s) for
        the API; otherwise the Lease simply expires. Call it after :meth:`run` returns (``run`` calls it itself
        unless ``release_on_stop=False``), never while ``run`` is still looping.
        """
        self._stop_leading("releasing the Lease")
        if self._pending is None and self._last_holder != self.identity:
            return  # as client-go: nothing to release unless the last record we saw names us
        budget = min(self.renew_deadline, 3.0) if timeout is None else timeout
        deadline = time.monotonic() + budget
        try:
            if self._pending is not None:
                self._pending.result(timeout=budget)  # an in-flight acquire must land before we release
                self._pending = None
            future = self._api.submit(self._release)
            future.result(timeout=max(deadline - time.monotonic(), 0.0))
        except FutureTimeout:
            log.warning("%s: could not release Lease %s/%s in %.1fs", self.identity, self.namespace, self.name, budget)
        except Exception as exc:
            log.warning(
                "%s: could not release Lease %s/%s: %s", self.identity, self.namespace, self.name, _describe(exc)
            )
        self._stop_leading("released the Lease")

    def _release(self) -> None:
        try:
            lease = self.client.get(Lease, self.name, namespace=self.namespace)
        except ApiError as exc:
            if exc.status.code == 404:
                return
            raise
        old = lease.spec or LeaseSpec()
        if old.holderIdentity != self.identity:
            return
        now = datetime.now(UTC)
        lease.spec = LeaseSpec(
            holderIdentity="",
            leaseDurationSeconds=1,
            acquireTime=now,
            renewTime=now,
            leaseTransitions=old.leaseTransitions or 0,
            preferredHolder=old.preferredHolder,
            strategy=old.strategy,
        )
        try:
            self.client.replace(lease)
        except ApiError as exc:
            if exc.status.code == 409:
                return  # changed since we read it: no longer ours to release
            raise
        self._observed_spec, self._last_holder = None, ""
        log.info("%s released Lease %s/%s", self.identity, self.namespace, self.name)


def _describe(exc: Exception) -> str:
    if isinstance(exc, ApiError):
        status = exc.status
        return f"API server answered {status.code} {status.reason or ''}: {status.message}".replace("  ", " ")
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


__all__ = ["LeaderElector"]
