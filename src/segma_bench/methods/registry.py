"""The method registry: adding a method means one class with `@register("name")`, loaded from a file
(--plugin FILE, $SEGMA_PLUGINS), an importable module, or an installed distribution's entry point in the
group `segma_bench.methods` (read by load_entry_point_plugins)."""
import hashlib
import importlib
import importlib.metadata
import importlib.util
import re
import sys
from pathlib import Path

from segma_bench.core.errors import BadValueError, UserError
from segma_bench.core.registry import Register

ENTRY_POINT_GROUP = "segma_bench.methods"
PLUGIN_MODULE_PREFIX = "segma_plugin_"
REGISTRY = Register("method", hint="A method of your own is loaded with --plugin FILE, SEGMA_PLUGINS, or an "
                                   f"installed package's entry point in the group {ENTRY_POINT_GROUP!r}.")
METHODS = REGISTRY.entries  # name -> class; the registry's own dict


class PluginError(UserError, ValueError):
    """A plugin that does not import (syntax error, failing import, a name already taken)."""


METHOD_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*\Z")  # file names and table rows are made from it


def register(name):
    """Class decorator: make a GenerativeMethod subclass available as `name` (letters, digits, '-' and '_':
    records, run folders and table footnotes are named after it)."""
    if not isinstance(name, str) or not METHOD_NAME.match(name):
        raise BadValueError(f"method name {name!r}: use letters, digits, '-' and '_' only (it names files and folders)")

    def set_name(registered_name, cls):
        cls.name = registered_name
    return REGISTRY.register(name, on_register=set_name)


def get_method(name):
    return REGISTRY.get(name)


def describe(cls):
    """First line of the class docstring: the one-line description `cli.py methods` shows."""
    return (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""


def load_plugin(path):
    """Import a user's file so that its @register decorators run. A plugin that needs helper modules of its
    own makes its folder an importable package (a module name in SEGMA_PLUGINS, or an entry point)."""
    path = Path(path).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"plugin file {path} does not exist")
    module_name = PLUGIN_MODULE_PREFIX + path.stem
    loaded = sys.modules.get(module_name)
    if loaded is not None and getattr(loaded, "__file__", None) == str(path):
        return loaded  # already imported (e.g. named by both --plugin and SEGMA_PLUGINS): register once
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


LOADED_PLUGIN_MODULES = []  # module plugins this process loaded, in order: worker processes load them again


def load_plugin_module(name):
    """Import an importable module (a plugin's own package on the path) so that its @register calls run."""
    try:
        module = importlib.import_module(name)
        if name not in LOADED_PLUGIN_MODULES:
            LOADED_PLUGIN_MODULES.append(name)
        return module
    except Exception as error:
        raise PluginError(f"plugin module {name!r} failed to import: {type(error).__name__}: {error}") from error


_ENTRY_POINTS_LOADED = False


def load_entry_point_plugins():
    """Load every installed distribution's entry point in ENTRY_POINT_GROUP (once per process): after
    `pip install my-method`, its methods appear in `methods` with no flag."""
    global _ENTRY_POINTS_LOADED
    if _ENTRY_POINTS_LOADED:
        return
    _ENTRY_POINTS_LOADED = True
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            entry_point.load()
        except Exception as error:
            raise PluginError(f"the plugin {entry_point.name!r} of the installed distribution "
                              f"{entry_point.dist.name if entry_point.dist else '?'} failed to load: "
                              f"{type(error).__name__}: {error}. Fix or uninstall it") from error


def _distribution_of(module_name):
    top = module_name.split(".")[0]
    for dist_name in importlib.metadata.packages_distributions().get(top, []):
        try:
            return {"distribution": dist_name, "version": importlib.metadata.version(dist_name)}
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def plugin_source(cls):
    """Where a plugin method's code came from, for records: {"path", "sha256"} for a plugin file,
    {"distribution", "version"} (or {"module", "path", "sha256"}) for a module; None for built-ins."""
    module = sys.modules.get(cls.__module__)
    if module is None or cls.__module__.startswith("segma_bench."):
        return None
    if cls.__module__.startswith(PLUGIN_MODULE_PREFIX):
        return {"path": module.__file__, "sha256": module.__segma_sha256__}
    distribution = _distribution_of(cls.__module__)
    if distribution:
        return {"module": cls.__module__, **distribution}
    path = getattr(module, "__file__", None)
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest() if path else None
    return {"module": cls.__module__, "path": path, "sha256": digest}
