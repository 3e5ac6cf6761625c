"""Methods: each is a typed config + a module + a registry entry.

Add a method by adding one module in this package that defines a ``MethodConfig``
subclass and a ``Method`` subclass decorated with ``@register("name")``, and one
``conf/method/<name>.yaml``. Modules here are discovered automatically.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping
from typing import Any

from ptuning.backbones import Backbone
from ptuning.methods.base import Method, MethodConfig, PromptOutput

METHODS: dict[str, type[Method]] = {}


def register(name: str) -> Callable[[type[Method]], type[Method]]:
    """Class decorator adding a method to :data:`METHODS` under ``name``."""

    def add(cls: type[Method]) -> type[Method]:
        if name in METHODS:
            raise ValueError(f"method {name!r} registered twice")
        METHODS[name] = cls
        return cls

    return add


def build_method(values: Mapping[str, Any], backbone: Backbone) -> Method:
    """Instantiate the method named by ``values['name']`` with its options."""
    name = values.get("name")
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; valid methods: {', '.join(sorted(METHODS))}")
    cls = METHODS[name]
    return cls(cls.config_class.from_mapping(values), backbone)


for _module in pkgutil.iter_modules(__path__):
    if _module.name != "base":
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["METHODS", "Method", "MethodConfig", "PromptOutput", "build_method", "register"]
