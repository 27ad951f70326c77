"""Settings read from the environment, checked once with a message that names the setting.

A bad value must fail at start with a sentence, not as a traceback from deep inside a run (or,
worse, from the argument parser of an unrelated command).
"""

from __future__ import annotations

import math
import os


class ConfigError(ValueError):
    """A setting has a value vidgraph cannot use; the message says which and why."""


def env_number(name: str, default: float, *, minimum: float | None = None, integer: bool = False) -> float | int:
    """``$name`` as a number (``default`` when unset or empty), at least ``minimum``."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    return check_number(name, raw, minimum=minimum, integer=integer)


def check_number(name: str, value, *, minimum: float | None = None, integer: bool = False) -> float | int:
    try:
        number = int(value) if integer else float(value)
    except (TypeError, ValueError):
        kind = "a whole number" if integer else "a number"
        raise ConfigError(f"{name} must be {kind}, got {value!r}") from None
    if not integer and not math.isfinite(number):
        raise ConfigError(f"{name} must be a finite number, got {value!r}")
    if minimum is not None and number < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value!r}")
    return number


def shard_size_from_env(default: int = 8) -> int:
    return int(env_number("VIDGRAPH_SHARD_SIZE", default, minimum=1, integer=True))
