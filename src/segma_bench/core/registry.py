"""One registry class, instantiated once per kind (methods, datasets): `@REGISTRY.register("name")`."""
from segma_bench.core.errors import BadValueError

from .errors import UnknownNameError


class Register:
    """A name -> object mapping filled by a decorator; `kind` words its error messages."""

    def __init__(self, kind, hint="", replaceable=False):
        self.kind = kind
        self.hint = hint  # appended to the unknown-name message, e.g. how to add one
        self.replaceable = replaceable  # a second object under a taken name replaces the first, not refused
        self.entries = {}

    def register(self, name, on_register=None):
        """Decorator: make `obj` available as `name`; a second object under the same name is refused."""
        def wrap(obj):
            if name in self.entries and self.entries[name] is not obj and not self.replaceable:
                raise BadValueError(f"{self.kind} name {name!r} is already registered by "
                                 f"{getattr(self.entries[name], '__module__', '?')}")
            if on_register is not None:
                on_register(name, obj)
            self.entries[name] = obj
            return obj
        return wrap

    def get(self, name):
        if name not in self.entries:
            raise UnknownNameError(f"unknown {self.kind} {name!r}; registered {self.kind}s: "
                                   f"{', '.join(sorted(self.entries))}.{' ' + self.hint if self.hint else ''}")
        return self.entries[name]

    def __contains__(self, name):
        return name in self.entries

    def __iter__(self):
        return iter(self.entries)

    def __len__(self):
        return len(self.entries)

    def names(self):
        return sorted(self.entries)
