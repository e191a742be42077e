"""The front end of packetdrill's script language: tokenizer, syntax tree and parser.

packetdrill (github.com/google/packetdrill) tests a TCP stack with scripts that interleave
system calls with the packets the stack must send and the packets injected into it. This
package turns such a script's text into a tree of `ast` nodes; running that tree against
pystack is a separate concern. The grammar is in
/work/shared/conformance/packetdrill/syntax.md; start with `parser.parse`.
"""

from __future__ import annotations

from . import ast
from .lexer import PacketdrillError, PacketdrillSyntaxError, PacketdrillUnsupported, tokenize
from .parser import parse

__all__ = [
    "ast",
    "parse",
    "tokenize",
    "PacketdrillError",
    "PacketdrillSyntaxError",
    "PacketdrillUnsupported",
]
