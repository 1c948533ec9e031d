"""Forecast sources. Each lives in its own module and is imported only when chosen (start-up and memory)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from .base import FAILURE_REASONS, FailureReason, FetchError, Provider

if TYPE_CHECKING:
    from ..settings import ProviderName, Settings

_MODULES: dict[str, str] = {
    "WattTime": "watttime:WattTimeProvider",
    "ElectricityMaps": "electricitymaps:ElectricityMapsProvider",
    "UKCarbonIntensity": "ukcarbonintensity:UKCarbonIntensityProvider",
    "CarbonAwareSDK": "carbonawaresdk:CarbonAwareSDKProvider",
    "File": "file:FileProvider",
    "Sample": "sample:SampleProvider",
}


def provider_class(name: ProviderName) -> type[Provider]:
    module_name, class_name = _MODULES[name.value].split(":")
    module = importlib.import_module(f"{__name__}.{module_name}")
    cls: type[Provider] = getattr(module, class_name)
    return cls


def build_provider(settings: Settings) -> Provider:
    """The configured provider, its settings checked (ConfigurationError names what is missing)."""
    return provider_class(settings.provider).from_settings(settings)


__all__ = ["FAILURE_REASONS", "FailureReason", "FetchError", "Provider", "build_provider", "provider_class"]
