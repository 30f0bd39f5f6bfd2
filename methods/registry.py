"""A decorator registry: adding a method means adding one file with `@register("name")`."""
import hashlib
import importlib.util
import sys
from pathlib import Path

METHODS = {}
PLUGIN_MODULE_PREFIX = "segma_plugin_"


class PluginError(ValueError):
    """A plugin file that does not import (syntax error, failing import, a name already taken)."""


class UnknownNameError(KeyError):
    """An unknown method, dataset or table name; the message lists the valid ones."""

    def __str__(self):  # KeyError would print the message with quotes around it
        return self.args[0]


def register(name):
    """Class decorator: make a GenerativeMethod subclass available as `name`."""
    def wrap(cls):
        if name in METHODS and METHODS[name] is not cls:
            raise ValueError(f"method name {name!r} is already registered by {METHODS[name].__module__}")
        cls.name = name
        METHODS[name] = cls
        return cls
    return wrap


def get_method(name):
    if name not in METHODS:
        raise UnknownNameError(f"unknown method {name!r}; registered methods: {', '.join(sorted(METHODS))}. "
                               "A method of your own is loaded with --plugin FILE or SEGMA_PLUGINS.")
    return METHODS[name]


def describe(cls):
    """First line of the class docstring: the one-line description `cli.py methods` shows."""
    return (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""


def load_plugin(path):
    """Import a user's file so that its @register decorators run. The file's folder goes on sys.path (at
    the end, so the suite's own packages win), so a plugin can import helper modules that sit beside it."""
    path = Path(path).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"plugin file {path} does not exist")
    module_name = PLUGIN_MODULE_PREFIX + path.stem
    loaded = sys.modules.get(module_name)
    if loaded is not None and getattr(loaded, "__file__", None) == str(path):
        return loaded  # already imported (e.g. named by both --plugin and SEGMA_PLUGINS): register once
    if str(path.parent) not in sys.path:
        sys.path.append(str(path.parent))
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    module.__segma_sha256__ = hashlib.sha256(path.read_bytes()).hexdigest()  # the code that ran, for records
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException as error:
        del sys.modules[module_name]  # a file that failed to import is not "already loaded"
        for name in [n for n, cls in METHODS.items() if cls.__module__ == module_name]:
            del METHODS[name]  # nor are the methods it registered before failing
        if isinstance(error, Exception):
            raise PluginError(f"plugin {path} failed to load: {type(error).__name__}: {error}. Fix the file, "
                              "or leave it out of --plugin and SEGMA_PLUGINS") from error
        raise
    return module


def plugin_source(cls):
    """{"path", "sha256"} of the plugin file that registered `cls`; None for the built-in methods."""
    module = sys.modules.get(cls.__module__)
    if not cls.__module__.startswith(PLUGIN_MODULE_PREFIX) or module is None:
        return None
    return {"path": module.__file__, "sha256": module.__segma_sha256__}
