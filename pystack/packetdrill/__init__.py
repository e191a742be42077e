"""packetdrill scripts against pystack: the language's front end and a runner.

packetdrill (github.com/google/packetdrill) tests a TCP stack with scripts that interleave
system calls with the packets the stack must send and the packets injected into it.

Read first: the grammar in /work/shared/conformance/packetdrill/syntax.md, then
* the front end: lexer.py -> parser.py (`parse(text) -> ast.Script`), ast.py;
* the runner: runner.py (`run_script(path_or_text) -> Result`, the harness), events.py (the
  event loop and timing), matcher.py + packet.py (packets), syscalls.py + expr.py (calls),
  commands.py (back-quoted commands), tcp_info.py (`%{ }%`), report.py (`--report DIR`);
* the device underneath: pystack/drivers/net/tun.py.

Command line: `python -m pystack.packetdrill SCRIPT...` or `--report DIR [--json]`.
"""

from __future__ import annotations

from . import ast
from .lexer import PacketdrillError, PacketdrillSyntaxError, PacketdrillUnsupported, tokenize
from .parser import parse
from .runner import Result, run_script, run_script_async

__all__ = [
    "ast",
    "parse",
    "tokenize",
    "PacketdrillError",
    "PacketdrillSyntaxError",
    "PacketdrillUnsupported",
    "Result",
    "run_script",
    "run_script_async",
]
