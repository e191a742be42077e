"""The tokenizer of packetdrill's script language, and the errors of the whole front end.

Read first: /work/shared/conformance/packetdrill/syntax.md (the bison grammar, whose terminals
are the token kinds below) and a handful of the corpus's `.pkt` scripts. packetdrill's own
flex lexer is not used or copied; this one is written from the grammar and the scripts.

What the language needs from a lexer, and why some rules look odd:

* Comments are C99's `//` to end of line and `/* ... */`, and vanish.
* Numbers: `0x1f` (hex integer), `12`, `0.200`, `.1` (floats, used for times). A float needs a
  digit after its dot, so `+0...0.2` lexes as `0`, `...`, `0.2` and `S.` as `S`, `.`.
* A digit run followed by letters (`3021b9d889017eeb`, `1234abcd`) is one WORD: TCP Fast Open
  cookies and MD5 keys are hex blobs that may start with a digit. Every token keeps its source
  text, so a blob of digits only (`0011`) keeps its leading zeros for the parser too.
* `192.0.2.1` is one IPV4 token (tried before floats).
* `--name` / `--name=value` at the head of a script are command-line options: one OPTION
  token whose value is the raw text up to white space (quotes may protect spaces). Values
  such as `fd::1` would not survive ordinary tokenizing, which is why this is done here.
* `"..."` strings (C escapes decoded), `` `...` `` shell commands and `%{ ... }%` Python
  blocks may span lines; the last two are kept as raw text.
* Any other single character becomes a CHAR token instead of an error: the free-text notes of
  syscalls, `(Operation now in progress)`, may contain anything, and for real input the parser
  reports "unexpected character" with its line anyway.
"""

from __future__ import annotations

import re

import attrs

__all__ = [
    "PacketdrillError",
    "PacketdrillSyntaxError",
    "PacketdrillUnsupported",
    "Token",
    "tokenize",
]


class PacketdrillError(Exception):
    """Base of the front end's errors: a message about line `line` of script `filename`."""

    def __init__(self, message: str, filename: str = "<script>", line: int = 0) -> None:
        self.message = message
        self.filename = filename
        self.line = line
        super().__init__(f"{filename}:{line}: {message}")


class PacketdrillSyntaxError(PacketdrillError):
    """The script is not valid packetdrill: bad token, unexpected token, bad value."""


class PacketdrillUnsupported(PacketdrillError):
    """Valid packetdrill that this front end deliberately does not model (GRE, MPLS, IPv6
    packet prefixes, PSP encapsulation). Kept apart from syntax errors so a corpus walk can
    record such scripts as skipped rather than broken."""


@attrs.frozen
class Token:
    """One token. `kind` is INT, FLOAT, IPV4, WORD, STRING, BACKQUOTE, CODE, OPTION, CHAR,
    EOF, or the punctuation itself (`...`, `<`, `(`, ...). `value` is the decoded value (int,
    float, str) where one makes sense; for OPTION it is (name, value-or-None). `pos`/`end` are
    offsets into the source, `line` is 1-based (the first line, for multi-line tokens)."""

    kind: str
    text: str
    value: object
    line: int
    pos: int
    end: int


# Longest first: `...` before `.`.
_PUNCT = ("...", "<", ">", "[", "]", "{", "}", ":", "(", ")", ",", "=", "~", "+", "*", "|", "-",
          ".")

_IPV4 = re.compile(r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}(?![\w.])")
_HEX = re.compile(r"0[xX][0-9a-fA-F]+(?!\w)")
_FLOAT = re.compile(r"(?:\d+\.\d+|\.\d+)(?!\w)")
_DIGIT_WORD = re.compile(r"\d+[A-Za-z_]\w*")
_INT = re.compile(r"\d+")
_WORD = re.compile(r"[A-Za-z_]\w*")
_OPTION = re.compile(r"--([A-Za-z][\w-]*)")
_SPACE = re.compile(r"[ \t\r\f\v]+")

_ESCAPES = {"n": 10, "t": 9, "r": 13, "a": 7, "b": 8, "f": 12, "v": 11}


def _decode_string(body: str) -> str:
    """Decode the C escapes of a string literal's body (`\\n`, `\\x41`, `\\101`, ...).

    A C string is bytes: escapes give bytes, other characters their UTF-8. The bytes are
    returned as UTF-8 text with `surrogateescape`, so `"\\xf7"` survives as '\\udcf7' and
    `.encode("utf-8", "surrogateescape")` gets the exact bytes back (ast.String.to_bytes)."""
    out = bytearray()
    i = 0
    while i < len(body):
        c = body[i]
        if c != "\\" or i + 1 == len(body):
            out += c.encode()
            i += 1
            continue
        nxt = body[i + 1]
        hexm = re.match(r"x([0-9a-fA-F]{1,2})", body[i + 1:])
        octm = re.match(r"[0-7]{1,3}", body[i + 1:])
        if hexm:
            out.append(int(hexm.group(1), 16))
            i += 1 + hexm.end()
        elif octm:
            out.append(int(octm.group(0), 8) & 0xFF)
            i += 1 + octm.end()
        else:
            # \n and friends; any other escaped character (\\, \", \') stands for itself.
            out += bytes([_ESCAPES[nxt]]) if nxt in _ESCAPES else nxt.encode()
            i += 2
    return out.decode("utf-8", "surrogateescape")


class _Lexer:
    def __init__(self, text: str, filename: str) -> None:
        self.text = text
        self.filename = filename
        self.pos = 0
        self.line = 1
        self.tokens: list[Token] = []

    def error(self, message: str, line: int | None = None) -> PacketdrillSyntaxError:
        return PacketdrillSyntaxError(message, self.filename, self.line if line is None else line)

    def emit(self, kind: str, end: int, value: object = None) -> None:
        text = self.text[self.pos:end]
        self.tokens.append(Token(kind, text, value, self.line, self.pos, end))
        self.line += text.count("\n")
        self.pos = end

    def skip_to(self, end: int) -> None:
        self.line += self.text.count("\n", self.pos, end)
        self.pos = end

    def delimited(self, opener: str, closer: str, what: str) -> int:
        """End offset of a construct opened at self.pos by `opener` and closed by `closer`."""
        close = self.text.find(closer, self.pos + len(opener))
        if close < 0:
            raise self.error(f"unterminated {what} (opened here)")
        return close + len(closer)

    def run(self) -> list[Token]:
        text = self.text
        while self.pos < len(text):
            pos = self.pos
            c = text[pos]
            if c == "\n":
                self.skip_to(pos + 1)
                continue
            m = _SPACE.match(text, pos)
            if m:
                self.skip_to(m.end())
                continue
            if text.startswith("//", pos):
                eol = text.find("\n", pos)
                self.skip_to(len(text) if eol < 0 else eol)
                continue
            if text.startswith("/*", pos):
                self.skip_to(self.delimited("/*", "*/", "/* comment"))
                continue
            if text.startswith("%{", pos):
                end = self.delimited("%{", "}%", "%{ code block")
                self.emit("CODE", end, text[pos + 2:end - 2])
                continue
            if c == "`":
                end = self.delimited("`", "`", "back-quoted command")
                self.emit("BACKQUOTE", end, text[pos + 1:end - 1])
                continue
            if c == '"':
                self.string()
                continue
            if self.option():
                continue
            if self.number_or_word():
                continue
            for p in _PUNCT:
                if text.startswith(p, pos):
                    self.emit(p, pos + len(p))
                    break
            else:
                self.emit("CHAR", pos + 1, c)
        self.tokens.append(Token("EOF", "", None, self.line, self.pos, self.pos))
        return self.tokens

    def string(self) -> None:
        text, i = self.text, self.pos + 1
        while i < len(text) and text[i] != '"':
            if text[i] == "\n":
                raise self.error("unterminated string literal")
            i += 2 if text[i] == "\\" else 1
        if i >= len(text):
            raise self.error("unterminated string literal")
        self.emit("STRING", i + 1, _decode_string(text[self.pos + 1:i]))

    def option(self) -> bool:
        m = _OPTION.match(self.text, self.pos)
        if not m:
            return False
        name, end, value = m.group(1), m.end(), None
        if end < len(self.text) and self.text[end] == "=":
            # Raw value up to white space; quotes (`"a b"`, `` `cmd arg` ``) protect spaces.
            i = end + 1
            while i < len(self.text) and not self.text[i].isspace():
                if self.text[i] in "\"`":
                    close = self.text.find(self.text[i], i + 1)
                    if close < 0:
                        raise self.error(f"unterminated quote in option --{name}")
                    i = close
                i += 1
            value = self.text[end + 1:i]
            if not value:
                raise self.error(f"option --{name}= has no value")
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = _decode_string(value[1:-1])
            end = i
        self.emit("OPTION", end, (name, value))
        return True

    def number_or_word(self) -> bool:
        text, pos = self.text, self.pos
        c = text[pos]
        if not (c.isdigit() or c == "." or c.isalpha() or c == "_"):
            return False
        if m := _IPV4.match(text, pos):
            self.emit("IPV4", m.end(), m.group(0))
        elif m := _HEX.match(text, pos):
            self.emit("INT", m.end(), int(m.group(0), 16))
        elif m := _FLOAT.match(text, pos):
            self.emit("FLOAT", m.end(), float(m.group(0)))
        elif m := _DIGIT_WORD.match(text, pos):
            self.emit("WORD", m.end(), m.group(0))
        elif m := _INT.match(text, pos):
            self.emit("INT", m.end(), int(m.group(0)))
        elif m := _WORD.match(text, pos):
            self.emit("WORD", m.end(), m.group(0))
        else:
            return False  # a lone `.`: punctuation
        return True


def tokenize(text: str, filename: str = "<script>") -> list[Token]:
    """Split `text` into tokens, ending with one EOF token. Raises PacketdrillSyntaxError for
    unterminated comments, strings, commands and code blocks."""
    return _Lexer(text, filename).run()
