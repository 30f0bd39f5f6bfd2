"""Method plugins. Built-in methods register themselves on import; users add theirs with --plugin."""
from .base import Batch, DataSpec, GenerativeMethod, LabeledSet, MethodConfig, OperationNotSupported, Recipe
from .registry import (METHODS, PluginError, UnknownNameError, describe, get_method, load_plugin, plugin_source,
                       register)

# Importing the built-in modules runs their @register decorators.
from . import adgm, cwae, m1m2, segma  # noqa: E402,F401

__all__ = ["Batch", "DataSpec", "GenerativeMethod", "LabeledSet", "MethodConfig", "OperationNotSupported", "Recipe", "METHODS",
           "PluginError", "UnknownNameError", "plugin_source", "describe", "get_method", "load_plugin", "register"]
