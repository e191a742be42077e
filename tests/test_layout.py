"""The layout rules of DESIGN.md §2 and §4, checked on the source tree.

Code that softirq, hardirq or a timer can reach must be synchronous: no `async def`, no
`await`. Only the modules listed here may hold async code: the process-context entry points,
the wait helpers, and the world's own tasks.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

import pystack

ROOT = pathlib.Path(pystack.__file__).parent

ASYNC_ALLOWED = {
    "world.py",             # the wire's task, Network's async context manager
    "host.py",              # process contexts, ping
    "kernel/sched.py",      # ksoftirqd's loop
    "net/socket.py",        # the syscalls that may block
    "net/core/wait.py",     # sk_wait_event
    "tap.py",               # the TAP bridge's wire task (frames from real Linux)
    "programs.py",          # servers and clients for tests: process-context entry points
    "demo.py",
    "__main__.py",
}
ASYNC_ALLOWED_DIRS = ("dropin/", "packetdrill/")


def _modules() -> list[pathlib.Path]:
    return sorted(p for p in ROOT.rglob("*.py"))


def _is_async_allowed(rel: str) -> bool:
    return rel in ASYNC_ALLOWED or rel.startswith(ASYNC_ALLOWED_DIRS)


@pytest.mark.parametrize("path", [p for p in _modules()
                                  if not _is_async_allowed(p.relative_to(ROOT).as_posix())],
                         ids=lambda p: p.relative_to(ROOT).as_posix())
def test_softirq_reachable_module_has_no_await(path: pathlib.Path) -> None:
    tree = ast.parse(path.read_text(), str(path))
    offenders = [f"line {node.lineno}: {type(node).__name__}" for node in ast.walk(tree)
                 if isinstance(node, (ast.AsyncFunctionDef, ast.Await, ast.AsyncFor,
                                      ast.AsyncWith))]
    assert offenders == [], f"{path.relative_to(ROOT)} must stay synchronous"


@pytest.mark.parametrize("linux,ours", [
    ("net/core/dev.c", "net/core/dev.py"),
    ("net/core/skbuff.c", "net/core/skbuff.py"),
    ("net/core/neighbour.c", "net/core/neighbour.py"),
    ("net/core/sock.c", "net/core/sock.py"),
    ("net/ethernet/eth.c", "net/ethernet/eth.py"),
    ("net/ipv4/af_inet.c", "net/ipv4/af_inet.py"),
    ("net/ipv4/arp.c", "net/ipv4/arp.py"),
    ("net/ipv4/devinet.c", "net/ipv4/devinet.py"),
    ("net/ipv4/icmp.c", "net/ipv4/icmp.py"),
    ("net/ipv4/ip_input.c", "net/ipv4/ip_input.py"),
    ("net/ipv4/ip_output.c", "net/ipv4/ip_output.py"),
    ("net/ipv4/ip_forward.c", "net/ipv4/ip_forward.py"),
    ("net/ipv4/ip_fragment.c", "net/ipv4/ip_fragment.py"),
    ("net/ipv4/route.c", "net/ipv4/route.py"),
    ("net/ipv4/udp.c", "net/ipv4/udp.py"),
    ("net/sched/sch_generic.c", "net/sched/sch_generic.py"),
    ("net/socket.c", "net/socket.py"),
    ("drivers/net/loopback.c", "drivers/net/loopback.py"),
    ("kernel/softirq.c", "kernel/softirq.py"),
    ("fs/file.c", "fs/file.py"),
])
def test_linux_files_have_their_counterpart(linux: str, ours: str) -> None:
    assert (ROOT / ours).is_file(), f"{linux} should be mirrored at pystack/{ours}"


def test_every_module_opens_with_a_docstring() -> None:
    missing = [p.relative_to(ROOT).as_posix() for p in _modules()
               if ast.get_docstring(ast.parse(p.read_text())) is None]
    assert missing == []


def test_public_names_are_exported_explicitly() -> None:
    assert set(pystack.__all__) == {
        "Network", "Host", "Link", "LinkProfile", "Switch", "PathTrace", "Hop", "TraceEvent",
        "run_script", "asyncio_run", "Program", "ProgramError", "__version__"}
    for name in pystack.__all__:
        assert hasattr(pystack, name)
