"""Functions the gateway offers plugins: logs, counters and configuration values.

Inside the component they call the gateway; natively they write to the test double in
:mod:`sluice_plugin.testing`.
"""

from __future__ import annotations

from typing import Optional

LEVELS = ("trace", "debug", "info", "warn", "error")


class _Double:
    """The native test double: configuration to read, logs and counters to check."""

    def __init__(self) -> None:
        self.config: dict = {}
        self.logs: list = []
        self.counters: dict = {}

    def log(self, level: str, message: str, fields: list) -> None:
        self.logs.append((level, message, dict(fields)))

    def counter_add(self, name: str, delta: int) -> None:
        self.counters[name] = self.counters.get(name, 0) + delta

    def config_get(self, key: str) -> Optional[str]:
        return self.config.get(key)


# Replaced by the component's bindings when the plugin runs in the gateway.
_backend = _Double()


def log(level: str, message: str, **fields: object) -> None:
    """Writes a structured log line (the gateway adds the plugin's name and version).
    ``level`` is one of ``trace``, ``debug``, ``info``, ``warn``, ``error``."""
    if level not in LEVELS:
        raise ValueError(f"unknown log level {level!r}; one of {', '.join(LEVELS)}")
    _backend.log(level, message, [(k, str(v)) for k, v in fields.items()])


def counter_add(name: str, delta: int = 1) -> None:
    """Adds to a counter, exported by the gateway as a metric labelled with the plugin."""
    _backend.counter_add(name, delta)


def config(key: str, default: Optional[str] = None) -> Optional[str]:
    """A value from the plugin's configuration in the gateway's config file."""
    value = _backend.config_get(key)
    return default if value is None else value
