"""The error every configuration check raises, in its own module so that the config
(fedray/config.py) and its cross-key rules (fedray/config_rules.py) share it without
importing each other both ways. ``fedray.config.ConfigError`` is this class."""

from typing import Any


class ConfigError(ValueError):
    """A configuration value is out of range; ``str(err)`` is one line."""

    def __init__(self, key: str, value: Any, allowed: str) -> None:
        self.key, self.value, self.allowed = key, value, allowed
        super().__init__(f"{key}={value!r}: {allowed}")

    def under(self, prefix: str) -> "ConfigError":
        return ConfigError(f"{prefix}.{self.key}", self.value, self.allowed)
