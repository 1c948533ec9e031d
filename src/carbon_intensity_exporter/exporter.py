"""The refresh loop (DESIGN.md §3): fetch first, then publish; on failure publish the fallback and back off.

Data flows one way: provider → Forecast → ``render`` → a sink (the API server, or stdout for ``--dry-run``).
Each region is a :class:`Target` with its own schedule and last-seen data, so a failure in one region never
delays or damages another. Metrics and Events observe the loop through :class:`Observer`; they never drive it.
"""

from __future__ import annotations

import base64
import gc
import gzip
import json
import logging
import queue
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from . import configmap
from .model import Forecast, format_time
from .providers.base import FetchError, Provider
from .settings import Settings, format_duration

log = logging.getLogger(__name__)

#: Warn in ``message`` when the data no longer covers this far ahead (provider down for long).
COVERAGE_WARNING = timedelta(hours=3)
#: The longest Retry-After the loop honours.
MAX_RETRY_AFTER = 3600.0


class Sink(Protocol):
    """Where ConfigMaps go: the API server (``ConfigMapPublisher``) or stdout (``DryRunSink``)."""

    def load(self, name: str, region: str) -> configmap.Published | None: ...

    def publish(self, manifest: dict[str, Any], rerender: Callable[[], dict[str, Any]] | None = None) -> None: ...


class Observer:
    """Hooks for metrics and Events; the default does nothing."""

    def fetched(self, target: Target, seconds: float, error: FetchError | None) -> None:
        """After every fetch attempt."""

    def published(self, target: Target, error: configmap.PublishError | None) -> None:
        """After every publish attempt."""


@dataclass
class Target:
    """One region's state: what is published, when it was last fresh, and when to try next."""

    region: str
    configmap_name: str
    forecast: Forecast | None = None
    last_success: datetime | None = None
    last_error: FetchError | None = None
    failures: int = 0
    unpublished: dict[str, Any] | None = None
    next_due: float = 0.0
    fetch_attempts: int = 0
    fetch_errors: Counter[str] = field(default_factory=Counter)
    running: bool = False
    #: The published ConfigMap was read (or is known to be absent): a fallback cannot overwrite newer data.
    loaded: bool = False


@dataclass(frozen=True, slots=True)
class CycleResult:
    fresh: bool
    published: bool


def backoff_delay(failures: int, initial: timedelta, cap: timedelta, rng: random.Random | None = None) -> float:
    """Exponential backoff with equal jitter: ``initial * 2**(failures-1)`` capped, then 50-100% of that."""
    rng = rng or random.Random()
    base = min(initial.total_seconds() * 2 ** max(failures - 1, 0), cap.total_seconds())
    delay: float = base / 2 + rng.uniform(0, base / 2)
    return delay


def _state_path(directory: Path, name: str) -> Path:
    return directory / f"{name}.json.gz"


def save_state(directory: Path, manifest: dict[str, Any]) -> None:
    """Keep a copy of what was just published, for a restart that finds the ConfigMap missing.

    The window it covers is small (killed between the delete and the create), but it is the one place where
    the data would otherwise live only in memory. Mount an emptyDir there: it survives container restarts.
    """
    path = _state_path(directory, manifest["metadata"]["name"])
    try:
        directory.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".tmp")
        # The records as JSON rather than base64: base64 hides the redundancy gzip needs (~5x smaller).
        copy = {**manifest, "binaryData": {}}
        copy["records"] = base64.b64decode(manifest["binaryData"]["data"]).decode()
        partial.write_bytes(gzip.compress(json.dumps(copy).encode(), compresslevel=6))
        partial.replace(path)
    except OSError as exc:
        log.warning("cannot keep a copy in STATE_DIR %s: %s", directory, exc.strerror or exc)


def load_state(directory: Path, name: str, region: str) -> configmap.Published | None:
    path = _state_path(directory, name)
    try:
        manifest = json.loads(gzip.decompress(path.read_bytes()))
        manifest["binaryData"] = {"data": base64.b64encode(manifest.pop("records").encode()).decode()}
        return configmap.read(manifest, region)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, EOFError, KeyError, AttributeError) as exc:  # unreadable or corrupt
        log.warning("ignoring the copy in STATE_DIR %s: %s", path, exc)
        return None


def release_memory() -> None:
    """Hand freed heap back to the OS after a round of cycles (glibc keeps it otherwise; RSS is what's billed)."""
    gc.collect()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to do
        pass


class Exporter:
    """Runs the cycles for every target. Thread-safe: targets run concurrently, each one at a time."""

    def __init__(
        self,
        settings: Settings,
        provider: Provider,
        sink: Sink,
        *,
        observer: Observer | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        publish_retry: float = 2.0,
    ) -> None:
        self.settings = settings
        self.provider = provider
        self.sink = sink
        self.observer = observer or Observer()
        self.clock = clock
        self.publish_retry = publish_retry
        self.targets = [Target(region, settings.configmap_name_for(region)) for region in settings.regions]
        self.heartbeat = time.monotonic()
        self._wake = threading.Event()

    # -- start ---------------------------------------------------------------------------------------

    def load_existing(self) -> None:
        """Take what is already published as the last seen data, so a restart during an outage loses nothing."""
        for target in self.targets:
            self._load(target)

    def _load(self, target: Target) -> None:
        """Read the published ConfigMap; ``loaded`` stays False when it could not be read (not when absent)."""
        try:
            published = self.sink.load(target.configmap_name, target.region)
        except configmap.PublishError as exc:
            target.loaded = False
            log.warning("%s; a fallback will not be published until it can be read", exc)
            return
        target.loaded = True
        source = f"ConfigMap {target.configmap_name}"
        if published is None and self.settings.state_dir is not None:
            published = load_state(self.settings.state_dir, target.configmap_name, target.region)
            source = f"the copy in STATE_DIR (ConfigMap {target.configmap_name} is missing)"
        if published is not None and published.forecast is not None:
            target.forecast = published.forecast
            log.info(
                "loaded %d records for %s from %s (forecast of %s)",
                len(published.forecast.records),
                target.region,
                source,
                format_time(published.forecast.forecast_time) if published.forecast.forecast_time else "?",
            )

    # -- one cycle -----------------------------------------------------------------------------------

    def cycle(self, target: Target) -> CycleResult:
        """Fetch, then publish fresh data or the fallback; schedules the target's next attempt."""
        started = time.monotonic()
        error: FetchError | None = None
        target.fetch_attempts += 1
        try:
            forecast = self._fetch(target)
        except FetchError as exc:
            error = exc
        seconds = time.monotonic() - started
        self.observer.fetched(target, seconds, error)
        now = self.clock()
        if error is None:
            target.forecast = forecast
            target.last_success = now
            target.last_error = None
            target.failures = 0
            message = ""
            delay = self.settings.refresh_interval.total_seconds()
            log.info(
                "fetched %d records for %s (%s) in %.2fs",
                len(forecast.records),
                target.region,
                forecast.location,
                seconds,
                extra={"region": target.region, "outcome": "fresh", "records": len(forecast.records)},
            )
        else:
            target.last_error = error
            target.failures += 1
            target.fetch_errors[error.reason] += 1
            if not target.loaded:
                self._load(target)
            delay = backoff_delay(
                target.failures, self.settings.retry_initial_interval, self.settings.refresh_interval
            )
            # Honour the provider's Retry-After (bounded: an absurd value must not stop refreshes for days).
            delay = max(delay, min(error.retry_after or 0.0, MAX_RETRY_AFTER))
            if not target.loaded:
                # What is published could not be read: a fallback from memory might put older or empty data
                # over good data. Leave the ConfigMap as it is and try again.
                log.warning(
                    "fetch failed for %s: %s; the published ConfigMap could not be read, so it is left as it is",
                    target.region,
                    error,
                    extra={"region": target.region, "outcome": "kept", "reason": error.reason},
                )
                target.next_due = time.monotonic() + min(delay, self.publish_retry * 5)
                return CycleResult(fresh=False, published=False)
            message = self.fallback_message(target, error, now)
            log.warning(
                "fetch failed for %s: %s; publishing the last seen data, retry in %s",
                target.region,
                error,
                format_duration(timedelta(seconds=round(delay))),
                extra={"region": target.region, "outcome": "fallback", "reason": error.reason},
            )
        manifest = self.render(target, now, message)
        published = self._publish(target, manifest)
        target.next_due = time.monotonic() + delay
        return CycleResult(fresh=error is None, published=published)

    def _fetch(self, target: Target) -> Forecast:
        forecast = self.provider.fetch(target.region, self.settings.provider_region)
        if not forecast.records:
            raise FetchError(self.provider.name, "no_data", "the provider returned no records")
        end = forecast.end
        now = self.clock()
        if end is not None and end <= now:
            raise FetchError(
                self.provider.name,
                "invalid_response",
                f"the forecast ends at {format_time(end)}, before now ({format_time(now)}): check the clock "
                "of this node and of the provider",
            )
        if target.forecast is not None and target.forecast.end is not None and end is not None:
            # A provider answering with older data than we hold is not news: keep ours.
            older = forecast.forecast_time and target.forecast.forecast_time and (
                forecast.forecast_time < target.forecast.forecast_time and end < target.forecast.end
            )
            if older:
                raise FetchError(
                    self.provider.name, "invalid_response", "the provider returned an older forecast than the one held"
                )
        return forecast

    def fallback_message(self, target: Target, error: FetchError, now: datetime) -> str:
        """The ``message`` of a fallback ConfigMap: what failed, what is served, and whether it still covers."""
        parts = [f"fetch failed ({error.reason}): {error}"]
        held = target.forecast
        if held is None or held.end is None:
            parts.append("no forecast has been fetched yet")
        else:
            generated = format_time(held.forecast_time) if held.forecast_time else "?"
            parts.append(f"serving the forecast of {generated}")
            if held.end <= now:
                parts.append(f"it ended at {format_time(held.end)}: no record covers now")
            elif held.end < now + COVERAGE_WARNING:
                parts.append(f"it ends at {format_time(held.end)}: the next hours are not covered")
        return "; ".join(parts)

    def render(self, target: Target, heartbeat: datetime, message: str) -> dict[str, Any]:
        return configmap.render(
            name=target.configmap_name,
            namespace=self.settings.namespace,
            region=target.region,
            forecast=target.forecast,
            heartbeat=heartbeat,
            message=message,
            provider=self.provider.name,
        )

    def _publish(self, target: Target, manifest: dict[str, Any]) -> bool:
        message = manifest["data"]["message"]

        def rerender() -> dict[str, Any]:
            return self.render(target, self.clock(), message)

        try:
            self.sink.publish(manifest, rerender)
        except configmap.PublishError as exc:
            target.unpublished = manifest
            self.observer.published(target, exc)
            log.error("%s; will retry", exc, extra={"region": target.region, "outcome": "publish_failed"})
            return False
        target.unpublished = None
        target.loaded = True  # what is published is now what we hold
        if self.settings.state_dir is not None:
            save_state(self.settings.state_dir, manifest)
        self.observer.published(target, None)
        return True

    def retry_publish(self, target: Target) -> bool:
        """Publish what could not be published, with a fresh heartbeat, without fetching again."""
        if target.unpublished is None:
            return True
        manifest = target.unpublished
        manifest["data"]["lastHeartbeatTime"] = format_time(self.clock().replace(microsecond=0))
        return self._publish(target, manifest)

    # -- the loop ------------------------------------------------------------------------------------

    def run_once(self) -> bool:
        """One cycle for every target, concurrently; True when every target got fresh data published."""
        results = self._run_all(self.targets, self.cycle)
        return all(result.fresh and result.published for result in results)

    def _run_all(self, targets: Sequence[Target], work: Callable[[Target], CycleResult]) -> list[CycleResult]:
        if len(targets) == 1:
            return [work(targets[0])]
        with ThreadPoolExecutor(max_workers=min(len(targets), 16), thread_name_prefix="cycle") as pool:
            return list(pool.map(work, targets))

    def run(self, stop: threading.Event, leading: Callable[[], bool] = lambda: True) -> None:
        """Until ``stop``: run each target when due; while not ``leading()``, stand by.

        Workers are daemon threads, so a fetch stuck in a slow provider never holds up shutdown.
        """
        jobs: queue.SimpleQueue[tuple[Target, Callable[[Target], CycleResult]]] = queue.SimpleQueue()
        for index in range(min(len(self.targets), 16)):
            threading.Thread(target=self._worker, args=(jobs,), name=f"cycle-{index}", daemon=True).start()
        was_leading = was_standby = dirty = False
        while not stop.is_set():
            self.heartbeat = time.monotonic()
            if not leading():
                was_leading = False
                was_standby = True
                stop.wait(0.2)
                continue
            if not was_leading:
                was_leading = True
                if was_standby:
                    # Taking over: what the previous leader published is newer than what we loaded at start.
                    self.load_existing()
                for target in self.targets:
                    target.next_due = 0.0
            now = time.monotonic()
            for target in self.targets:
                if target.running:
                    continue
                if target.unpublished is not None and target.next_due - now > self.publish_retry:
                    target.running = True
                    jobs.put((target, self._retry_publish_job))
                elif target.next_due <= now:
                    target.running = True
                    jobs.put((target, self.cycle))
            busy = any(target.running for target in self.targets)
            if busy:
                dirty = True
            elif dirty:
                dirty = False
                release_memory()
            waits = [target.next_due - now for target in self.targets if not target.running]
            self._wake.clear()
            self._wake.wait(max(0.0, min([*waits, 1.0])))

    def _worker(self, jobs: queue.SimpleQueue[tuple[Target, Callable[[Target], CycleResult]]]) -> None:
        while True:
            target, work = jobs.get()
            self._guarded(target, work)

    def _retry_publish_job(self, target: Target) -> CycleResult:
        ok = self.retry_publish(target)
        if not ok:
            # Still failing: wait a little before the next attempt, but never past the next fetch.
            time.sleep(min(self.publish_retry, 5.0))
        return CycleResult(fresh=False, published=ok)

    def _guarded(self, target: Target, work: Callable[[Target], CycleResult]) -> None:
        try:
            work(target)
        except Exception:
            log.exception("cycle for %s crashed; retrying later", target.region)
            target.next_due = time.monotonic() + self.settings.retry_initial_interval.total_seconds()
        finally:
            target.running = False
            self._wake.set()

    def wake(self) -> None:
        self._wake.set()

