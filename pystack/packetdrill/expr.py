"""Syscall arguments as values, and the two ways a script can go wrong besides a mismatch.

Read first: packetdrill's parser.y (the `expression` rules) and symbols.c (how names become
numbers); ast.py for the tree evaluated here.

`evaluate` turns an argument's tree into plain Python values: ints, bytes, lists for `[...]`,
dicts for `{name=value, ...}`, tuples for positional structs (iovecs), and `ELLIPSIS` for
`...`, whose meaning depends on the call (syscalls.py). Names are `-D` defines first, then
Linux's constants (symbols.py). A name the runner does not know makes the script unsupported,
not failed: packetdrill would have known it.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from . import ast
from .symbols import lookup

__all__ = ["ELLIPSIS", "evaluate", "Unsupported", "ScriptError"]


class Unsupported(Exception):
    """The script uses something the runner or pystack does not model."""


class ScriptError(Exception):
    """The syscall did not do what the script says (packetdrill's runtime error)."""


class _Ellipsis:
    def __repr__(self) -> str:
        return "..."


ELLIPSIS = _Ellipsis()

# --- expressions ------------------------------------------------------------------------------

def evaluate(expr: ast.Expr, defines: dict[str, str]) -> Any:
    """A syscall argument as a Python value: ints, bytes, lists, dicts (named struct members),
    tuples (positional struct members) or ELLIPSIS."""
    if isinstance(expr, ast.Int):
        return expr.value
    if isinstance(expr, ast.Name):
        return _name(expr.name, defines)
    if isinstance(expr, ast.String):
        return expr.to_bytes()
    if isinstance(expr, ast.Null):
        return 0
    if isinstance(expr, ast.EllipsisExpr):
        return ELLIPSIS
    if isinstance(expr, ast.BinaryOp):
        left, right = evaluate(expr.left, defines), evaluate(expr.right, defines)
        if not isinstance(left, int) or not isinstance(right, int):
            raise ScriptError(f"'{expr.op}' needs integers")
        return left | right
    if isinstance(expr, ast.Array):
        return [evaluate(e, defines) for e in expr.items]
    if isinstance(expr, ast.Struct):
        if expr.items and all(isinstance(i, ast.Assign) for i in expr.items):
            out = {}
            for item in expr.items:
                target = item.target
                key = target.name
                out[key] = evaluate(item.value, defines)
            return out
        return tuple(evaluate(e, defines) for e in expr.items)
    if isinstance(expr, ast.Call):
        args = [evaluate(a, defines) for a in expr.args]
        if expr.name in ("htons", "htonl", "ntohs", "ntohl") and len(args) == 1:
            return args[0]  # values stay in host order here; the sockaddr code knows
        if expr.name == "inet_addr" and len(args) == 1 and isinstance(args[0], bytes):
            return int(ipaddress.IPv4Address(args[0].decode()))
        raise Unsupported(f"expression {expr.name}(...)")
    if isinstance(expr, ast.Assign):
        raise ScriptError("a 'name=value' member outside a struct")
    raise ScriptError(f"cannot evaluate {expr!r}")


def _name(name: str, defines: dict[str, str]) -> Any:
    if name in defines:
        text = defines[name]
        try:
            return int(text, 0)
        except ValueError:
            value = lookup(text)
            return value if value is not None else text.encode()
    value = lookup(name)
    if value is None:
        raise Unsupported(f"symbol {name} (the runner's symbol table lacks it)")
    return value
