"""`--set key=value`: each value is checked and converted against the type of the method's config field,
before any data is loaded or any run folder is made."""
import dataclasses
import json
import math
import typing

from segma_bench.core.errors import BadValueError, UserError

SET_SYNTAX = ("KEY=VALUE, converted to the setting's type: float (1e-3, 5), int (10; 2.5 is refused), "
              "bool (true/false, 1/0, yes/no), str (mlp), tuple (64,64 or [64,64]). "
              "`python cli.py methods --settings METHOD` lists a method's settings and their types.")

TRUE, FALSE = {"true", "1", "yes", "on"}, {"false", "0", "no", "off"}


class SettingError(UserError, ValueError):
    """A --set value that does not fit its setting; the message names the setting, its type and an example."""


def field_types(config_class):
    """{field name: (type, default)} of a config dataclass; string annotations are resolved."""
    try:
        hints = typing.get_type_hints(config_class)
    except Exception:  # an annotation that does not resolve: fall back to what the dataclass stored
        hints = {}
    types = {}
    for f in dataclasses.fields(config_class):
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        types[f.name] = (hints.get(f.name, f.type), default)
    return types


def describe_type(kind, default):
    origin = typing.get_origin(kind) or kind
    if origin is tuple:
        element = tuple_element_type(kind, default)
        return f"tuple of {element.__name__}"
    return getattr(origin, "__name__", str(origin))


def tuple_element_type(kind, default):
    """int or float: from the annotation (tuple[int, ...]) or else from the default's entries."""
    args = [a for a in typing.get_args(kind) if a is not Ellipsis]
    if args and args[0] in (int, float):
        return args[0]
    if default and all(isinstance(v, int) and not isinstance(v, bool) for v in default):
        return int
    return float


def to_int(raw):
    try:
        return int(raw)
    except ValueError:
        value = float(raw)  # "1e3" is an integer written as a float; 2.5 is not an integer
        if not value.is_integer():
            raise BadValueError(raw) from None
        return int(value)


def to_float(raw):
    value = float(raw)
    if not math.isfinite(value):
        raise BadValueError(raw)
    return value


def to_bool(raw):
    if raw.lower() in TRUE:
        return True
    if raw.lower() in FALSE:
        return False
    raise BadValueError(raw)


def to_str(raw):
    try:
        value = json.loads(raw)  # a quoted JSON string ("mlp") stays accepted
        return value if isinstance(value, str) else raw
    except json.JSONDecodeError:
        return raw


def to_tuple(raw, element):
    text = raw.strip()
    if text.startswith("[") or text.startswith("("):
        text = text[1:-1] if text[-1:] in "])" else text[1:]
    parts = [p.strip() for p in text.split(",") if p.strip()]
    return tuple((to_int if element is int else to_float)(p) for p in parts)


EXAMPLES = {int: "10", float: "0.001", bool: "true", str: "mlp", tuple: "64,64"}


def convert(name, raw, kind, default):
    """The value of `--set name=raw` as the field's type, or a SettingError saying what would fit."""
    origin = typing.get_origin(kind) or kind
    if origin is typing.Union:  # Optional[X]: convert as X
        origin = next(a for a in typing.get_args(kind) if a is not type(None))
        kind = origin
        origin = typing.get_origin(origin) or origin
    try:
        if origin is bool:
            return to_bool(raw)
        if origin is int:
            return to_int(raw)
        if origin is float:
            return to_float(raw)
        if origin is tuple:
            return to_tuple(raw, tuple_element_type(kind, default))
        if origin is str:
            return to_str(raw)
    except ValueError:
        example = EXAMPLES.get(origin, "...")
        described = describe_type(kind, default)
        article = "an" if described[0] in "aeiou" else "a"
        raise SettingError(f"--set {name}={raw}: {name} takes {article} {described} "
                           f"(e.g. --set {name}={example})") from None
    value = json.loads(raw) if raw else raw  # a type this parser does not know: read as JSON, as before
    return tuple(value) if isinstance(value, list) else value


# Ranges by a setting's name: sizes of networks and counts must be positive (a default of 0 means "automatic"
# or "off", so such a setting may stay 0), rates positive, clipping thresholds not negative. A config field may
# state its own lower bound instead: `field(default=..., metadata={"minimum": 1})`.
SIZE_WORDS = ("dim", "hidden", "width", "size", "channels", "components", "samples", "epochs", "every", "layers",
              "units", "steps")
ZERO_OK_WORDS = ("epochs",)  # e.g. m1m2's m1_epochs=0: no M1 stage


def minimum_of(name, default, metadata=None):
    """(lower bound, inclusive?, what it is) of a numeric setting, or None where its name implies none."""
    if metadata and "minimum" in metadata:
        return metadata["minimum"], True, "its stated minimum"
    words = name.lower().split("_")
    if any(word in SIZE_WORDS or word.rstrip("s") in SIZE_WORDS for word in words) or name.endswith("_dim"):
        zero_allowed = default == 0 or (isinstance(default, tuple) and 0 in default) or \
            any(word in ZERO_OK_WORDS for word in words)
        return (0 if zero_allowed else 1), True, "a size or count" + (" (0 allowed)" if zero_allowed else "")
    if "rate" in words or name == "learning_rate":
        return 0, False, "a rate"
    if "clip" in words:
        return 0, True, "a clipping threshold (0: off)"
    return None


def check_range(name, raw, value, default, metadata=None):
    """A SettingError where a converted number (or an entry of a tuple) is below its setting's range."""
    bound = minimum_of(name, default, metadata)
    if bound is None or isinstance(value, bool):
        return value
    low, inclusive, what = bound
    values = value if isinstance(value, tuple) else (value,)
    for v in values:
        if isinstance(v, (int, float)) and not isinstance(v, bool) and (v < low or (v == low and not inclusive)):
            where = f" (entry {v!r})" if isinstance(value, tuple) else ""
            limit = f"at least {low}" if inclusive else f"greater than {low}"
            raise SettingError(f"--set {name}={raw}{where}: {name} is {what}, so it must be {limit}")
    return value


def field_metadata(config_class):
    return {f.name: f.metadata for f in dataclasses.fields(config_class)}


def typed_settings(method_class, settings):
    """`settings` ({key: raw string}) converted to the types of `method_class.config_class`'s fields, each within
    its range (check_range)."""
    types = field_types(method_class.config_class)
    unknown = sorted(set(settings) - set(types))
    if unknown:
        raise BadValueError(f"unknown setting(s) {unknown} for method {method_class.name!r}; known: {sorted(types)}")
    metadata = field_metadata(method_class.config_class)
    return {key: check_range(key, raw, convert(key, raw, *types[key]), types[key][1], metadata.get(key))
            for key, raw in settings.items()}


def describe_settings(method_class):
    """One line per setting: name, type and default, for `methods --settings`."""
    return [f"{name:22s} {describe_type(kind, default):16s} default {default!r}"
            for name, (kind, default) in field_types(method_class.config_class).items()]
