"""Errors that mean *bad input*, reported in one line before anything is written.

Everything raised as a :class:`SetupError` is the user's to fix (a wrong option, a missing
file, an unreachable hub) and is checked where the input is read. Any other exception is a
bug or a failure of the run itself: it keeps its traceback, and once the cell's identity is
known it is stored in a ``failed`` record.
"""

from __future__ import annotations

import enum
from typing import Any


class SetupError(Exception):
    """A cell cannot start because of its input; the message names the value and the fix."""


class ConfigError(SetupError):
    """An option has a value that is not allowed (the message names option, value, choices)."""


class DataUnavailableError(SetupError):
    """A data source cannot provide the task (hub unreachable, files missing)."""


class DataFormatError(SetupError):
    """A data file does not match its format; the message names the file and line/record."""


class BackboneUnavailableError(SetupError):
    """A backbone could not be loaded (hub unreachable, path missing, package absent)."""


def require(condition: bool, option: str, value: Any, allowed: str) -> None:
    """Raise :class:`ConfigError` ``"<option>=<value>: allowed: <allowed>"`` unless ``condition``."""
    if not condition:
        shown = value.value if isinstance(value, enum.Enum) else value
        raise ConfigError(f"{option}={shown!r}: allowed: {allowed}")


def omegaconf_message(err: Exception) -> str:
    """An OmegaConf validation error as ``<key>: <what is wrong>``, listing a config class's
    options when the key is not one of them."""
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError

    key = getattr(err, "full_key", None) or "?"
    message = str(getattr(err, "msg", None) or err).splitlines()[0]
    if isinstance(err, ConfigAttributeError | ConfigKeyError):
        fields = getattr(getattr(err, "object_type", None), "__dataclass_fields__", None)
        if fields:
            message = f"not an option; options: {', '.join(sorted(fields))}"
    return f"{key}: {message}"
