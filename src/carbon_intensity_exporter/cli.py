"""The command line (DESIGN.md §5). Exit codes: 0 success, 1 the fetch or publish failed, 2 bad configuration.

Every setting is an environment variable and a flag; the flags are generated from the Settings fields so the
two cannot drift apart.
"""

from __future__ import annotations

import functools
import logging
import signal
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import click

from .settings import ConfigurationError, Settings, env_name, load_settings

log = logging.getLogger("carbon_intensity_exporter")

F = TypeVar("F", bound=Callable[..., Any])

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2


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


@main.command()
@click.option(
    "-o", "--output", type=click.Choice(["table", "json"]), default="table", show_default=True,
    help="json prints the EmissionsData array exactly as it would go into binaryData.data.",
)
@click.option("--no-chart", is_flag=True, help="Do not draw the chart, even on a terminal.")
@settings_options
@handle_errors
def forecast(output: str, no_chart: bool, **overrides: Any) -> None:
    """Fetch the forecast for REGION and show it (nothing is published)."""
    from . import logs
    from .providers import FetchError, build_provider

    settings = _settings(overrides)
    logs.configure(False, "WARNING")
    provider = build_provider(settings)
    provider.check_region(settings.region, settings.provider_region)
    try:
        result = provider.fetch(settings.region, settings.provider_region)
    except FetchError as exc:
        fail(str(exc), EXIT_FAILED)
        return
    finally:
        provider.close()
    if output == "json":
        click.echo(result.to_json().decode())
        return
    from .display import forecast_table

    click.echo(forecast_table(result, datetime.now(UTC), chart=not no_chart and sys.stdout.isatty()))


def install_signal_handlers(stop: threading.Event, wake: Callable[[], None]) -> None:
    """SIGTERM and SIGINT stop the loop (the caller then releases the Lease and exits within 5 s)."""

    def handler(signum: int, frame: object) -> None:
        stop.set()
        wake()

    if threading.current_thread() is not threading.main_thread():
        return  # embedded (tests, notebooks): the caller owns ``stop``
    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


if __name__ == "__main__":  # pragma: no cover
    main()
