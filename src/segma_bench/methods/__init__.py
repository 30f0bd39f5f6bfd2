"""Method plugins. Built-in methods register themselves on import; users add theirs with --plugin."""
from segma_bench.core.errors import UnknownNameError

# Importing the built-in modules runs their @register decorators.
from . import adgm, cwae, m1m2, segma  # noqa: E402,F401
from .base import Batch, DataSpec, GenerativeMethod, LabeledSet, MethodConfig, OperationNotSupported, Recipe
from .registry import (
                       ENTRY_POINT_GROUP,
                       LOADED_PLUGIN_MODULES,
                       METHODS,
                       REGISTRY,
                       PluginError,
                       describe,
                       get_method,
                       load_entry_point_plugins,
                       load_plugin,
                       load_plugin_module,
                       plugin_source,
                       register,
)

__all__ = ["Batch", "DataSpec", "ENTRY_POINT_GROUP", "GenerativeMethod", "LabeledSet", "LOADED_PLUGIN_MODULES", "METHODS",
           "MethodConfig", "OperationNotSupported", "PluginError", "REGISTRY", "Recipe", "UnknownNameError", "describe", "get_method",
           "load_entry_point_plugins", "load_plugin", "load_plugin_module", "plugin_source", "register"]
