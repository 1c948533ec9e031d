"""The command line (DESIGN.md §5). Exit codes: 0 success, 1 the fetch or publish failed, 2 bad configuration.

Every setting is an environment variable and a flag; the flags are generated from the Settings fields so the
two cannot drift apart.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import click

from .app import EXIT_CONFIG, EXIT_FAILED, install_signal_handlers
from .reader import DEFAULT_CONFIGMAP
from .settings import ConfigurationError, Settings, env_name, load_settings

if TYPE_CHECKING:
    from .model import Forecast

log = logging.getLogger("carbon_intensity_exporter")

F = TypeVar("F", bound=Callable[..., Any])



def settings_options(func: F) -> F:
    """Add one flag per Settings field (``--wt-username`` for ``WT_USERNAME``); unset flags defer to env."""
    for name, field in reversed(list(Settings.model_fields.items())):
        flag = "--" + name.replace("_", "-")
        help_text = f"{field.description} [env {env_name(name)}]"
        option: Callable[[F], F]
        if field.annotation is bool:
            option = click.option(f"{flag}/--no-{flag[2:]}", name, default=None, help=help_text)
        else:
            option = click.option(flag, name, default=None, metavar="VALUE", help=help_text)
        func = option(func)
    return func


def _settings(overrides: dict[str, Any]) -> Settings:
    fields = set(Settings.model_fields)
    return load_settings(**{key: value for key, value in overrides.items() if key in fields})


def fail(message: str, code: int) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def handle_errors(func: F) -> F:
    """Configuration errors become one line on stderr and exit code 2, before anything is contacted."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ConfigurationError as exc:
            fail(str(exc), EXIT_CONFIG)

    return wrapper  # type: ignore[return-value]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="carbon-intensity-exporter")
def main() -> None:
    """Publish grid carbon-intensity forecasts in Kubernetes, as the ConfigMap kube-system/carbon-intensity.

    Try it with no account and no cluster:

        carbon-intensity-exporter run --once --provider Sample --dry-run
    """


@main.command()
@click.option("--once", is_flag=True, help="Run one cycle and exit: 0 fresh data published, 1 fetch failed.")
@click.option("--dry-run", is_flag=True, help="Print the ConfigMap(s) as YAML on stdout; needs no cluster.")
@settings_options
@handle_errors
def run(once: bool, dry_run: bool, **overrides: Any) -> None:
    """Fetch the forecast and publish it as ConfigMap(s), every REFRESH_INTERVAL (the in-cluster loop)."""
    from . import logs
    from .app import run_exporter

    settings = _settings(overrides)
    logs.configure(settings.json_logs(), settings.log_level)
    sys.exit(run_exporter(settings, once=once, dry_run=dry_run))


FROM_CONFIGMAP = click.option(
    "--from-configmap", is_flag=False, flag_value=DEFAULT_CONFIGMAP, default=None, metavar="[NAMESPACE/NAME]",
    help=f"Read the published ConfigMap instead of calling a provider [{DEFAULT_CONFIGMAP}].",
)
NO_CHART = click.option("--no-chart", is_flag=True, help="Do not draw the chart, even on a terminal.")


@main.command()
@click.option(
    "-o", "--output", type=click.Choice(["table", "json"]), default="table", show_default=True,
    help="json prints the EmissionsData array exactly as it would go into binaryData.data.",
)
@FROM_CONFIGMAP
@NO_CHART
@settings_options
@handle_errors
def forecast(output: str, from_configmap: str | None, no_chart: bool, **overrides: Any) -> None:
    """Fetch the forecast for REGION (or read the published one) and show it; nothing is published."""
    from . import logs
    from .display import forecast_table

    logs.configure(False, "WARNING")
    result = load_forecast(from_configmap, overrides)
    if output == "json":
        click.echo(result.to_json().decode())
    else:
        click.echo(forecast_table(result, datetime.now(UTC), chart=not no_chart and sys.stdout.isatty()))


def parse_when(value: str | None, now: datetime, option: str) -> datetime | None:
    """RFC 3339 (``2026-12-05T06:00:00Z``) or a Go-style duration from now (``6h``, ``+90m``)."""
    if value is None:
        return None
    from .model import InvalidForecastError, parse_time
    from .settings import parse_duration

    try:
        return now + parse_duration(value.lstrip("+"))
    except ValueError:
        pass
    try:
        return parse_time(value)
    except InvalidForecastError:
        raise click.BadParameter(
            f"{value!r} is neither an RFC 3339 time (2026-12-05T06:00:00Z) nor a duration from now (6h)",
            param_hint=option,
        ) from None


def load_forecast(from_configmap: str | None, overrides: dict[str, Any]) -> Forecast:
    """From the published ConfigMap, or fetched from the configured provider; exit 1 when neither works."""
    from .app import checked_provider
    from .model import InvalidForecastError
    from .providers import FetchError
    from .reader import ForecastUnavailableError, read_forecast

    if from_configmap is not None:
        try:
            return read_forecast(from_configmap)
        except (ForecastUnavailableError, InvalidForecastError) as exc:
            fail(str(exc), EXIT_FAILED)
    settings = _settings(overrides)
    provider = checked_provider(settings, [settings.region])
    try:
        return provider.fetch(settings.region, settings.provider_region)
    except FetchError as exc:
        fail(str(exc), EXIT_FAILED)
    finally:
        provider.close()
    raise AssertionError("unreachable")  # pragma: no cover


@main.command("best-window")
@click.option("--duration", required=True, metavar="DURATION", help="How long the job runs (Go-style: 30m, 2h).")
@click.option("--start", metavar="TIME", help="Earliest start: RFC 3339 or a duration from now. [default: now]")
@click.option("--end", metavar="TIME", help="Latest end: RFC 3339 or a duration from now. [default: end of data]")
@FROM_CONFIGMAP
@click.option(
    "-o", "--output", type=click.Choice(["text", "json"]), default="text", show_default=True,
    help="json prints every tied window as EmissionsData (timestamp = start, duration = minutes, value = average).",
)
@NO_CHART
@settings_options
@handle_errors
def best_window(
    duration: str, start: str | None, end: str | None, from_configmap: str | None, output: str, no_chart: bool,
    **overrides: Any,
) -> None:
    """The greenest window(s) to run a job of --duration, with the saving against starting now."""
    from . import logs
    from .display import best_window_text
    from .settings import parse_duration

    logs.configure(False, "WARNING")
    try:
        length = parse_duration(duration)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--duration") from None
    now = datetime.now(UTC)
    begin = parse_when(start, now, "--start") or now
    finish = parse_when(end, now, "--end")
    forecast = load_forecast(from_configmap, overrides)
    try:
        windows = forecast.best_windows(length, begin, finish)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--duration") from None
    if output == "json":
        click.echo(json.dumps([window.to_json() for window in windows]))
    else:
        click.echo(best_window_text(forecast, windows, length, now, chart=not no_chart and sys.stdout.isatty()))
    if not windows:
        sys.exit(EXIT_FAILED)


@main.command()
@click.argument("search", required=False)
def regions(search: str | None) -> None:
    """The cloud-region catalogue: each region's location and the provider codes it maps to."""
    from .regions import all_regions, format_table

    needle = (search or "").lower()
    chosen = [r for r in all_regions() if needle in f"{r.cloud}:{r.name} {r.display_name}".lower()]
    click.echo(format_table(chosen))


@main.command()
@click.option("--duration", required=True, metavar="DURATION", help="How long the job runs (30m, 1h).")
@click.option("--max-delay", required=True, metavar="DURATION", help="Hard bound on the wait (6h).")
@click.option(
    "--configmap", default=DEFAULT_CONFIGMAP, show_default=True, metavar="NAMESPACE/NAME",
    help="The published forecast to read.",
)
@click.option("--threshold", type=float, metavar="G_PER_KWH", help="Start as soon as a slot is at or below this.")
def wait(duration: str, max_delay: str, configmap: str, threshold: float | None) -> None:
    """Sleep until the greenest window for a job of --duration, then exit 0 (for an init container).

    Never blocks a job for a carbon preference: a missing, unreadable or stale ConfigMap, or no window
    inside --max-delay, means start at once (exit 0) with the reason printed. SIGTERM exits at once (143).
    """
    from .model import InvalidForecastError
    from .reader import ForecastUnavailableError, read_forecast
    from .settings import parse_duration
    from .waiting import Plan, plan_start, sleep_until

    try:
        length, bound = parse_duration(duration), parse_duration(max_delay)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    now = datetime.now(UTC)
    units = "gCO2eq/kWh"
    try:
        forecast = read_forecast(configmap)
        units = forecast.units
        plan = plan_start(forecast, now, length, bound, threshold)
    except (ForecastUnavailableError, InvalidForecastError) as exc:
        plan = Plan(now, f"cannot use the forecast ({exc}), so not waiting")
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--duration") from None
    stop = threading.Event()
    install_signal_handlers(stop, lambda: None)
    click.echo(f"carbon-intensity-exporter wait: {plan.line(now, units)}")
    if not sleep_until(plan.start, now, bound, stop):
        click.echo("carbon-intensity-exporter wait: stopped by signal", err=True)
        sys.exit(143)


if __name__ == "__main__":  # pragma: no cover
    main()
