"""Methods: each is a typed config + a module + a registry entry.

Add a method by adding one module in this package that defines a ``MethodConfig``
subclass (its options and their defaults) and a ``Method`` subclass decorated with
``@register("name")``, and one ``conf/method/<name>.yaml`` that selects its schema.
Modules here are discovered automatically; registering also puts the config class into
Hydra's ConfigStore as ``schema/method/<name>``.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ptuning.backbones import Backbone
from ptuning.errors import ConfigError, omegaconf_message
from ptuning.methods.base import Method, MethodConfig, MethodKind, PromptOutput

METHODS: dict[str, type[Method]] = {}


def register(name: str) -> Callable[[type[Method]], type[Method]]:
    """Class decorator adding a method to :data:`METHODS` and its schema to the ConfigStore."""

    def add(cls: type[Method]) -> type[Method]:
        if name in METHODS:
            raise ValueError(f"method {name!r} registered twice")
        if cls.config_class().name != name:
            raise ValueError(f"{cls.config_class.__name__}.name must default to {name!r}")
        METHODS[name] = cls
        ConfigStore.instance().store(group="schema/method", name=name, node=cls.config_class)
        return cls

    return add


def method_config(values: Mapping[str, Any] | MethodConfig) -> MethodConfig:
    """The typed config of the method named by ``values['name']``, type- and range-checked."""
    if isinstance(values, MethodConfig):
        config = values
    else:
        name = values.get("name")
        if name not in METHODS:
            raise ConfigError(f"method={name!r}: unknown method; valid methods: {', '.join(sorted(METHODS))}")
        schema = OmegaConf.structured(METHODS[name].config_class)
        try:
            config = OmegaConf.to_object(OmegaConf.merge(schema, dict(values)))
        except OmegaConfBaseException as err:
            raise ConfigError(f"method={name}: method.{omegaconf_message(err)}") from None
    config.check()
    return config


def build_method(values: Mapping[str, Any] | MethodConfig, backbone: Backbone,
                 label_words: tuple[str, ...] | None = None) -> Method:
    """Instantiate the method named by ``values['name']`` with its options (``label_words``:
    the task's class words, for methods initialised from them)."""
    config = method_config(values)
    method = METHODS[config.name](config, backbone)
    if label_words:
        method.use_label_words(label_words, backbone)
    return method


for _module in pkgutil.iter_modules(__path__):
    if _module.name != "base":
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["METHODS", "Method", "MethodConfig", "MethodKind", "PromptOutput", "build_method",
           "method_config", "register"]
