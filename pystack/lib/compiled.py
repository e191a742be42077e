"""The compiled build: which modules mypyc compiles, and the marks it reads.

pystack runs as plain Python, or with its kernel (the modules `COMPILED_MODULES` names)
compiled to C by mypyc: `make compiled` builds that into `.venv-compiled` (profile-guided
with GCC), and `make bench` measures it. Both run the same source; the compiled one spends
about 40% less CPU per packet and behaves identically (the determinism scenario's capture
is the same byte for byte).

What mypyc needs of the source, and what this module gives it:

* A class whose instances take attributes by name at run time (`setattr` over a table,
  `__dict__`, a builtin base) is marked `@mypyc_attr(native_class=False)`: mypyc then leaves
  it an ordinary Python class. Without mypy_extensions installed the mark does nothing.
* Every other class in a compiled module becomes a native class: its attributes are the
  ones `__init__` assigns, by name, with the types they are annotated with, and mypyc checks
  those types at run time. A wrong annotation is a `TypeError` in the compiled build only, so
  the compiled suite (`make test-compiled`) is part of CI.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mypy_extensions import mypyc_attr
else:
    try:
        from mypy_extensions import mypyc_attr
    except ImportError:  # the plain build: the mark is for mypyc only
        def mypyc_attr(*args: object, **kwargs: object):
            return lambda cls: cls

__all__ = ["COMPILED_MODULES", "is_compiled", "mypyc_attr"]

# The directories whose modules mypyc compiles (setup.py reads this list): the kernel below
# the socket layer, and the socket layer itself. The faces (dropin), the world, the host and
# the tools stay Python: they hold user callbacks, and run once per call, not per packet.
COMPILED_MODULES = (
    "pystack/kernel",
    "pystack/lib",
    "pystack/uapi",
    "pystack/fs",
    "pystack/net",  # socket.py: the system calls
    "pystack/net/core",
    "pystack/net/ethernet",
    "pystack/net/ipv4",
    "pystack/net/sched",
    "pystack/drivers/net",
)

# Left as Python inside those packages: a package's __init__; ktime, whose per-thread clock
# subclasses threading.local, which mypyc cannot compile; and this module, whose fallback
# mark mypyc would take for unreachable code.
EXCLUDED = ("__init__.py", "ktime.py", "compiled.py")


def is_compiled() -> bool:
    """Whether this process runs the compiled build (its kernel modules are extensions)."""
    mod = importlib.import_module("pystack.net.ipv4.tcp_input")
    return not (mod.__file__ or "").endswith(".py")
