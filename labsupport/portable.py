"""Send a function defined in a notebook to a fresh process (where `__main__` is not the notebook).

    >>> import pickle
    >>> from labsupport import portable
    >>> def double(x):
    ...     return 2 * x
    >>> ref = portable.portable(double)                 # code, modules and constants it uses
    >>> pickle.loads(pickle.dumps(ref)).load()(21)      # what the child does
    42
    >>> portable.sendable(len)                          # importable functions go by name
    'builtins:len'

Pickle sends a function by its module and name; a notebook's functions live in `__main__`,
which a child process does not have. `portable()` sends the compiled code instead, with the
modules, imported functions and plain constants the function reads; `load()` rebuilds it.
Closures and references to other notebook functions are not supported (a clear error says so).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PortableFunction:
    """A function defined in a notebook, sent to a fresh process: its code, modules, constants.

    Pickle sends functions by name, and a notebook's `__main__` does not exist in the child.
    This sends the compiled code instead; `load()` rebuilds the function there.
    """

    __srelab_learner_code__ = True  # it runs contained (labsupport.contain)

    name: str
    code: bytes
    refs: tuple  # (global name, module name, attribute path or "") for modules and functions
    constants: tuple  # (global name, value) for plain values the function reads
    defaults: tuple | None

    def load(self):
        import builtins
        import importlib
        import marshal
        import types

        env: dict = {"__builtins__": builtins, "__name__": "__notebook__"}
        for name, module, attr in self.refs:
            obj = importlib.import_module(module)
            for part in filter(None, attr.split(".")):
                obj = getattr(obj, part)
            env[name] = obj
        env.update(self.constants)
        return types.FunctionType(marshal.loads(self.code), env, self.name, self.defaults)


def _names(code) -> set[str]:
    """Names the code (and code nested in it) loads as globals; attribute names are not."""
    import dis

    names = {
        ins.argval
        for ins in dis.get_instructions(code)
        if ins.opname in ("LOAD_GLOBAL", "LOAD_NAME", "STORE_GLOBAL", "DELETE_GLOBAL")
    }
    for const in code.co_consts:
        if hasattr(const, "co_names"):
            names |= _names(const)
    return names


def portable(fn) -> PortableFunction:
    """Make `fn` (no closures; it may use modules, imported functions and constants) portable."""
    import marshal
    import types

    if fn.__closure__:
        raise ValueError(
            f"{fn.__name__} uses variables of an enclosing function: define it at top level"
        )
    refs, constants = [], []
    for name in sorted(_names(fn.__code__) & fn.__globals__.keys()):
        value = fn.__globals__[name]
        if isinstance(value, types.ModuleType):
            refs.append((name, value.__name__, ""))
        elif isinstance(value, (int, float, str, bytes, bool, tuple, type(None))):
            constants.append((name, value))
        elif getattr(value, "__module__", "__main__") not in ("__main__", None) and hasattr(
            value, "__qualname__"
        ):
            refs.append((name, value.__module__, value.__qualname__))
    return PortableFunction(
        fn.__name__, marshal.dumps(fn.__code__), tuple(refs), tuple(constants), fn.__defaults__
    )


def sendable(hook):
    """What can cross to the child: refs and strings as they are, functions made portable."""
    if isinstance(hook, (list, tuple)):
        return tuple(sendable(h) for h in hook)
    if hook is None or isinstance(hook, str) or hasattr(hook, "load") or not callable(hook):
        return hook
    module = getattr(hook, "__module__", "__main__")
    if module != "__main__" and "<locals>" not in hook.__qualname__:
        return f"{module}:{hook.__qualname__}"
    return portable(hook)
