"""Prometheus metrics (DESIGN.md §6): a custom collector over the state the Exporter already holds.

Nothing is fetched on scrape. Data gauges are computed from each :class:`~.exporter.Target` at scrape time
(so "the slot covering now" is always current, and absent rather than 0 when no slot covers now); fetch
attempts and errors come from the counters the loop keeps on each target; the few things only visible as
they happen (fetch durations, ConfigMap writes, recreations) are counted by :class:`MetricsObserver`.
Everything lives in its own :class:`CollectorRegistry`, not the process-global one, so tests can build as
many exporters as they like and no library default metric leaks into the output.
"""

from __future__ import annotations

import bisect
import logging
import math
import platform
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from . import __version__
from .exporter import Observer, Target
from .providers.base import FAILURE_REASONS, FetchError

if TYPE_CHECKING:
    from . import configmap
    from .exporter import Exporter

log = logging.getLogger(__name__)

PREFIX = "carbon_intensity"
#: The fixed horizons of ``carbon_intensity_forecast_grams_per_kwh`` (label value → offset from now).
HORIZONS: dict[str, timedelta] = {f"{hours}h": timedelta(hours=hours) for hours in (1, 2, 3, 6, 12, 24)}
#: Fetch durations: providers answer in ~0.1-2 s; timeouts and retries push towards a minute.
DURATION_BUCKETS: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
DATA_LABELS = ("region", "location", "provider", "signal_type")
COUNTER_LABELS = ("region", "provider")
WRITE_RESULTS = ("success", "error")


@runtime_checkable
class RecreationListener(Protocol):
    """Anything with ``recreated(name)``: the shape of ``ConfigMapPublisher(on_recreated=...)``."""

    def recreated(self, name: str) -> None: ...


class MetricsObserver(Observer):
    """Counts what only the loop sees as it happens; thread-safe (targets run concurrently)."""

    def __init__(self, provider: str, buckets: Sequence[float] = DURATION_BUCKETS) -> None:
        self.provider = provider
        self.buckets = tuple(sorted(float(bound) for bound in buckets))
        self._lock = threading.Lock()
        self._duration_buckets: dict[str, list[int]] = {}
        self._duration_sum: dict[str, float] = {}
        self._duration_count: dict[str, int] = {}
        self._writes: Counter[tuple[str, str]] = Counter()
        self._recreations: Counter[str] = Counter()

    def fetched(self, target: Target, seconds: float, error: FetchError | None) -> None:
        """Record the duration of every attempt, failed ones too (a timeout is the slowest fetch)."""
        provider = self.provider
        index = bisect.bisect_left(self.buckets, seconds)
        with self._lock:
            counts = self._duration_buckets.setdefault(provider, [0] * len(self.buckets))
            if index < len(counts):
                counts[index] += 1
            self._duration_sum[provider] = self._duration_sum.get(provider, 0.0) + seconds
            self._duration_count[provider] = self._duration_count.get(provider, 0) + 1

    def published(self, target: Target, error: configmap.PublishError | None) -> None:
        with self._lock:
            self._writes[(target.region, "error" if error is not None else "success")] += 1

    def recreated(self, name: str) -> None:
        """Pass as ``ConfigMapPublisher(on_recreated=...)`` (or through :class:`CompositeObserver`)."""
        with self._lock:
            self._recreations[name] += 1

    # -- read by the collector -----------------------------------------------------------------------

    def duration_snapshot(self) -> dict[str, tuple[list[int], float, int]]:
        """Per provider: per-bucket (non-cumulative) counts, sum, count."""
        with self._lock:
            return {
                provider: (list(counts), self._duration_sum[provider], self._duration_count[provider])
                for provider, counts in self._duration_buckets.items()
            }

    def writes(self, region: str, result: str) -> int:
        with self._lock:
            return self._writes[(region, result)]

    def recreations(self, name: str) -> int:
        with self._lock:
            return self._recreations[name]


class CompositeObserver(Observer):
    """Fans the loop's hooks out to several observers; one failing observer never breaks a cycle."""

    def __init__(self, *observers: Observer) -> None:
        self.observers = observers

    def fetched(self, target: Target, seconds: float, error: FetchError | None) -> None:
        for observer in self.observers:
            self._call(observer.fetched, target, seconds, error)

    def published(self, target: Target, error: configmap.PublishError | None) -> None:
        for observer in self.observers:
            self._call(observer.published, target, error)

    def recreated(self, name: str) -> None:
        """Pass as ``ConfigMapPublisher(on_recreated=...)``: forwarded to every observer that has it."""
        for observer in self.observers:
            if isinstance(observer, RecreationListener):
                self._call(observer.recreated, name)

    @staticmethod
    def _call(hook: Callable[..., None], *args: object) -> None:
        try:
            hook(*args)
        except Exception:
            log.exception("observer %r failed; the cycle goes on", hook)


@dataclass
class _Families:
    """One scrape's metric families, typed so each one is filled with the right kind of sample."""

    current: GaugeMetricFamily
    horizon: GaugeMetricFamily
    last_success: GaugeMetricFamily
    fetch_errors: CounterMetricFamily
    minimum: GaugeMetricFamily
    maximum: GaugeMetricFamily
    records: GaugeMetricFamily
    end: GaugeMetricFamily
    generated: GaugeMetricFamily
    fetch_attempts: CounterMetricFamily
    fetch_duration: HistogramMetricFamily
    configmap_writes: CounterMetricFamily
    configmap_recreations: CounterMetricFamily
    leader: GaugeMetricFamily
    build_info: GaugeMetricFamily

    @classmethod
    def empty(cls) -> _Families:
        def gauge(name: str, doc: str, labels: Sequence[str] = DATA_LABELS) -> GaugeMetricFamily:
            return GaugeMetricFamily(f"{PREFIX}_{name}", doc, labels=labels)

        def counter(name: str, doc: str, labels: Sequence[str] = COUNTER_LABELS) -> CounterMetricFamily:
            # Named without ``_total``: the client appends it to the sample, as the text format wants.
            return CounterMetricFamily(f"{PREFIX}_{name}", doc, labels=labels)

        return cls(
            current=gauge(
                "grams_per_kwh", "Carbon intensity of the forecast slot covering now, gCO2eq/kWh (absent if none)."
            ),
            horizon=gauge(
                "forecast_grams_per_kwh",
                "Forecast carbon intensity of the slot covering now plus horizon, gCO2eq/kWh (absent if none).",
                labels=(*DATA_LABELS, "horizon"),
            ),
            last_success=gauge(
                "last_success_timestamp_seconds", "Unix time of the last successful fetch by this process."
            ),
            fetch_errors=counter("fetch_errors", "Failed fetches by reason.", labels=(*COUNTER_LABELS, "reason")),
            minimum=gauge("forecast_min_grams_per_kwh", "Lowest value in the held forecast, gCO2eq/kWh."),
            maximum=gauge("forecast_max_grams_per_kwh", "Highest value in the held forecast, gCO2eq/kWh."),
            records=gauge("forecast_records", "Number of records in the held forecast."),
            end=gauge("forecast_end_timestamp_seconds", "Unix time at which the last slot of the held forecast ends."),
            generated=gauge(
                "forecast_generated_timestamp_seconds",
                "Unix time the provider generated the held forecast (its first slot if not reported).",
            ),
            fetch_attempts=counter("fetch_attempts", "Fetch attempts, successful or not."),
            fetch_duration=HistogramMetricFamily(
                f"{PREFIX}_fetch_duration_seconds", "Duration of fetch attempts.", labels=("provider",)
            ),
            configmap_writes=counter(
                "configmap_writes", "ConfigMap replacements by result.", labels=(*COUNTER_LABELS, "result")
            ),
            configmap_recreations=counter(
                "configmap_recreations", "ConfigMaps recreated from memory after someone deleted them."
            ),
            leader=GaugeMetricFamily(
                f"{PREFIX}_exporter_leader", "1 when this instance fetches and publishes, 0 when on standby."
            ),
            build_info=GaugeMetricFamily(
                f"{PREFIX}_exporter_build_info",
                "Always 1; the labels say which build is running.",
                labels=("version", "python_version"),
            ),
        )

    def all(self) -> list[Metric]:
        return [getattr(self, item.name) for item in fields(self)]


class ExporterCollector:
    """Yields every metric family at scrape time from the Exporter's targets and the observer's counts."""

    def __init__(
        self,
        exporter: Exporter,
        observer: MetricsObserver,
        *,
        leading: Callable[[], bool] = lambda: True,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._exporter = exporter
        self._observer = observer
        self._leading = leading
        self._clock = clock or exporter.clock

    def describe(self) -> Iterable[Metric]:
        """The families without samples: lets the registry check names without running a collection."""
        return _Families.empty().all()

    def collect(self) -> Iterable[Metric]:
        families = _Families.empty()
        provider = self._exporter.provider.name
        now = self._clock()
        leading = self._leading()
        for target in list(self._exporter.targets):
            if leading:
                # A standby holds what it read at start, which may be hours old: only the leader speaks for
                # the data, so a dashboard summing over replicas never mixes in stale values.
                self._collect_data(families, target, now)
            self._collect_counters(families, target, provider)
        self._collect_durations(families.fetch_duration)
        families.leader.add_metric([], 1.0 if leading else 0.0)
        families.build_info.add_metric([__version__, platform.python_version()], 1.0)
        return families.all()

    def _collect_data(self, families: _Families, target: Target, now: datetime) -> None:
        forecast = target.forecast  # read once: the loop may swap it while we scrape
        if forecast is None:
            return
        labels = [
            target.region,
            forecast.location,
            forecast.provider or self._exporter.provider.name,
            forecast.signal_type,
        ]

        def add(family: GaugeMetricFamily, value: float | datetime | None, extra: Sequence[str] = ()) -> None:
            if isinstance(value, datetime):
                value = value.timestamp()
            if value is not None and math.isfinite(value):
                family.add_metric([*labels, *extra], value)

        current = forecast.at(now)
        add(families.current, current.value if current is not None else None)
        for horizon, offset in HORIZONS.items():
            slot = forecast.at(now + offset)
            add(families.horizon, slot.value if slot is not None else None, [horizon])
        add(families.last_success, target.last_success)
        add(families.minimum, forecast.min_value)
        add(families.maximum, forecast.max_value)
        add(families.records, float(len(forecast.records)))
        add(families.end, forecast.end)
        add(families.generated, forecast.forecast_time)

    def _collect_counters(self, families: _Families, target: Target, provider: str) -> None:
        def add(family: CounterMetricFamily, value: int, extra: Sequence[str] = ()) -> None:
            family.add_metric([target.region, provider, *extra], float(value))

        add(families.fetch_attempts, target.fetch_attempts)
        errors = target.fetch_errors
        # Every reason is exported from the start (0 until it happens) so rate() and alerts see the series.
        for reason in FAILURE_REASONS:
            add(families.fetch_errors, errors.get(reason, 0), [reason])
        for result in WRITE_RESULTS:
            add(families.configmap_writes, self._observer.writes(target.region, result), [result])
        add(families.configmap_recreations, self._observer.recreations(target.configmap_name))

    def _collect_durations(self, family: HistogramMetricFamily) -> None:
        snapshot = self._observer.duration_snapshot()
        snapshot.setdefault(self._observer.provider, ([0] * len(self._observer.buckets), 0.0, 0))
        for provider, (counts, total, count) in sorted(snapshot.items()):
            cumulative, buckets = 0, []
            for bound, seen in zip(self._observer.buckets, counts, strict=True):
                cumulative += seen
                buckets.append((_format_bound(bound), float(cumulative)))
            buckets.append(("+Inf", float(count)))
            family.add_metric([provider], buckets, total)


def _format_bound(bound: float) -> str:
    """``le`` label values as client_python writes them (``0.5``, ``1.0``, ``60.0``)."""
    return repr(float(bound))


def build_registry(
    exporter: Exporter,
    observer: MetricsObserver,
    *,
    leading: Callable[[], bool] = lambda: True,
    clock: Callable[[], datetime] | None = None,
) -> CollectorRegistry:
    """A fresh registry holding only this exporter's collector (never the process-global one)."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(ExporterCollector(exporter, observer, leading=leading, clock=clock))
    return registry


def metric_names() -> Iterator[str]:
    """Every family name this module can expose (for docs and the dashboard test)."""
    for family in _Families.empty().all():
        yield family.name


__all__ = [
    "DURATION_BUCKETS",
    "HORIZONS",
    "CompositeObserver",
    "ExporterCollector",
    "MetricsObserver",
    "RecreationListener",
    "build_registry",
    "metric_names",
]
