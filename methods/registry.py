"""A decorator registry: adding a method means adding one file with `@register("name")`."""
import importlib.util
import sys
from pathlib import Path

METHODS = {}


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
    """Import a user's file so that its @register decorators run."""
    path = Path(path).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"plugin file {path} does not exist")
    module_name = f"segma_plugin_{path.stem}"
    loaded = sys.modules.get(module_name)
    if loaded is not None and getattr(loaded, "__file__", None) == str(path):
        return loaded  # already imported (e.g. named by both --plugin and SEGMA_PLUGINS): register once
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]  # a file that failed to import is not "already loaded"
        raise
    return module
