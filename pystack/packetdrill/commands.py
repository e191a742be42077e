"""Back-quoted shell commands of packetdrill scripts, mapped onto the emulated host.

Read first: the corpus harness files gtests/net/common/defaults.sh and
gtests/net/tcp/common/set_sysctls.py (what every script runs first), packetdrill's
run_command.c (a command runs at its event's time; a non-zero exit fails the script), and
pystack/net/ipv4/sysctl.py (which sysctls pystack has).

Only what configures the kernel is understood, by a small interpreter of the shell subset the
corpus uses (lines, `;`, `&&`, `||`, quotes, `$((arithmetic))`, redirections to /dev/null):
* `sysctl [-q] [-e] [-w] name=value ...` and `set_sysctls.py /proc/sys/...=value ...` set the
  host's sysctls. A sysctl pystack lacks is ignored when the value is Linux's default (so
  nothing changes); otherwise it is *unsupported* when the script asks for it, and a recorded
  warning when the harness does (defaults.sh sets several TCP knobs pystack has not grown yet).
* `defaults.sh` is read from the corpus (relative to the script, as packetdrill runs it) and
  interpreted line by line; its `tc qdisc add dev tun0 root pfifo` and
  `ip tcp_metrics flush` describe what a fresh emulated host already is.
* `/tmp/sysctl_restore_*.sh` (the cleanup set_sysctls.py writes) does nothing: every script
  gets a fresh host.
* anything else — `tc`, `ip`, `ethtool`, `nstat`, `echo > /sys/...`, pipes — makes the script
  unsupported, naming the command.
"""

from __future__ import annotations

import os
import re
import shlex
from typing import TYPE_CHECKING, Any

from .expr import Unsupported

if TYPE_CHECKING:
    from ..host import Host

__all__ = ["Shell", "LINUX_SYSCTL_DEFAULTS"]

# Linux's defaults for sysctls that pystack may not have (Documentation/networking/
# ip-sysctl.rst, v6.x), to tell a harmless write from one that changes behaviour.
LINUX_SYSCTL_DEFAULTS: dict[str, str] = {
    "net.ipv4.tcp_frto": "2",
    "net.ipv4.tcp_reordering": "3",
    "net.ipv4.tcp_max_reordering": "300",
    "net.ipv4.tcp_slow_start_after_idle": "1",
    "net.ipv4.tcp_early_retrans": "3",
    "net.ipv4.tcp_recovery": "1",
    "net.ipv4.tcp_tso_win_divisor": "3",
    "net.ipv4.tcp_min_tso_segs": "2",
    "net.ipv4.tcp_ecn": "2",
    "net.ipv4.tcp_ecn_option": "2",
    "net.ipv4.tcp_ecn_fallback": "1",
    "net.ipv4.tcp_pacing_ss_ratio": "200",
    "net.ipv4.tcp_pacing_ca_ratio": "120",
    "net.ipv4.tcp_notsent_lowat": "4294967295",
    "net.ipv4.tcp_fastopen": "1",
    "net.ipv4.tcp_fastopen_blackhole_timeout_sec": "0",
    "net.ipv4.tcp_mtu_probing": "0",
    "net.ipv4.tcp_base_mss": "1024",
    "net.ipv4.tcp_autocorking": "1",
    "net.ipv4.tcp_moderate_rcvbuf": "1",
    "net.ipv4.tcp_no_metrics_save": "0",
    "net.ipv4.tcp_thin_linear_timeouts": "0",
    "net.ipv4.tcp_limit_output_bytes": "1048576",
    "net.ipv4.tcp_adv_win_scale": "1",
    "net.ipv4.tcp_app_win": "31",
    "net.ipv4.tcp_workaround_signed_windows": "0",
    "net.ipv4.tcp_fin_timeout": "60",
}
# Gone from Linux (tcp_fack since 4.15): writing them changes nothing.
OBSOLETE_SYSCTLS = {"net.ipv4.tcp_fack"}

_ARITH = re.compile(r"\$\(\(([0-9+\-*/%() ]+)\)\)")
# `> /dev/null`, `2>/dev/null`, `&> /dev/null`, `2>&1`: they only silence a command.
_DEVNULL = re.compile(r"(?<![\w/])(\d?>>?|&>>?)\s*/dev/null\b|(?<![\w/])\d>&\d")


def _normalize(value: str) -> list[str]:
    out = []
    for word in value.split():
        try:
            out.append(str(int(word, 0)))
        except ValueError:
            out.append(word)
    return out


class Shell:
    """Runs one script's commands against `host`. `origin` is "harness" inside defaults.sh,
    "script" otherwise."""

    def __init__(self, host: "Host", script_dir: str | None):
        self.host = host
        self.script_dir = script_dir
        self.warnings: list[str] = []
        self.applied: list[tuple[str, str]] = []

    # -- entry points ------------------------------------------------------------------------
    def run(self, text: str, origin: str = "script") -> None:
        """Run a command's text; raises Unsupported for what is not modelled."""
        for pipeline in self._statements(text):
            self._run_list(pipeline, origin)

    # -- parsing -----------------------------------------------------------------------------
    def _statements(self, text: str) -> list[list[Any]]:
        text = re.sub(r"\\\n", " ", text)
        text = _ARITH.sub(lambda m: str(_arith(m.group(1))), text)
        out: list[list[Any]] = []
        for line in text.splitlines():
            line = _DEVNULL.sub(" ", line)  # output silenced: nothing to model
            lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|<>")
            lexer.whitespace_split = True
            lexer.commenters = "#"
            try:
                tokens = list(lexer)
            except ValueError as e:
                raise Unsupported(f"command `{line.strip()}` ({e})") from None
            if tokens:
                out.append(self._split(tokens, line.strip()))
        return out

    @staticmethod
    def _split(tokens: list[str], line: str) -> list[Any]:
        """[cmd_tokens, op, cmd_tokens, op, ...] with ops ';', '&&', '||'. Pipes, background
        jobs and redirections other than to /dev/null (writes to /sys, ...) are refused."""
        items: list[Any] = []
        cur: list[str] = []
        for tok in tokens:
            if tok in (";", "&&", "||"):
                items.extend([cur, tok])
                cur = []
            elif set(tok) <= set("|&<>"):
                raise Unsupported(f"command `{line}`")
            else:
                cur.append(tok)
        items.append(cur)
        return items

    def _run_list(self, items: list[Any], origin: str) -> None:
        ok = True
        op = ";"
        for i in range(0, len(items), 2):
            cmd = items[i]
            if i:
                op = items[i - 1]
            if op == "&&" and not ok or op == "||" and ok:
                continue
            if cmd:
                ok = self._run_one(cmd, origin)

    # -- commands ----------------------------------------------------------------------------
    def _run_one(self, argv: list[str], origin: str) -> bool:
        prog = argv[0]
        base = os.path.basename(prog)
        if base == "defaults.sh":
            self._harness_file(prog)
            return True
        if base == "set_sysctls.py":
            for arg in argv[1:]:
                path, sep, value = arg.partition("=")
                if not sep or not path.startswith("/proc/sys/"):
                    raise Unsupported(f"command `{' '.join(argv)}`")
                self.sysctl(path[len("/proc/sys/"):].replace("/", "."), value, origin)
            return True
        if base.startswith("sysctl_restore_") and base.endswith(".sh"):
            return True  # undoes set_sysctls.py; the host is thrown away anyway
        if base == "sysctl":
            return self._sysctl_command(argv, origin)
        if origin == "harness" and argv[:3] == ["ip", "tcp_metrics", "flush"]:
            return True  # a fresh host has no cached TCP metrics
        if origin == "harness" and argv[:2] == ["tc", "qdisc"] and argv[-1] == "pfifo" and \
                "tun0" in argv:
            return True  # the tun device's qdisc is pfifo already
        if base in ("true", ":"):
            return True
        if base == "ethtool" and len(argv) >= 5 and argv[1] in ("-K", "--features", "--offload"):
            return self._ethtool_features(argv)
        raise Unsupported(f"{base}: command `{' '.join(argv)}`" if base in (
            "tc", "ip", "ethtool") else f"command `{' '.join(argv)}`")

    def _ethtool_features(self, argv: list[str]) -> bool:
        """`ethtool -K DEV tso off gso off`: the device's feature flags. (TCP keeps building
        multi-segment skbs: see tcp_tso.sk_can_gso.) Other features change nothing
        modelled."""
        dev = self.host.net.dev_get_by_name(argv[2])
        if dev is None:
            raise Unsupported(f"ethtool: no device {argv[2]}")
        pairs = argv[3:]
        if len(pairs) % 2 or any(v not in ("on", "off") for v in pairs[1::2]):
            raise Unsupported(f"ethtool: command `{' '.join(argv)}`")
        for name, value in zip(pairs[::2], pairs[1::2]):
            if name in ("tso", "tcp-segmentation-offload"):
                dev.tso = value == "on"
            elif name in ("gso", "generic-segmentation-offload"):
                dev.gso = value == "on"
        return True

    def _harness_file(self, path: str) -> None:
        full = path if os.path.isabs(path) or self.script_dir is None else \
            os.path.normpath(os.path.join(self.script_dir, path))
        if not os.path.isfile(full):
            raise Unsupported(f"harness file {path} not found (looked for {full})")
        with open(full, encoding="utf-8") as f:
            text = f.read()
        target = text.strip()
        if target.endswith(".sh") and len(target.split()) == 1 and "\n" not in target:
            # A symbolic link stored as its target's text (the corpus copy of
            # tcp/common/defaults.sh): follow it from the link's own directory.
            self._depth_guard(full)
            return self._harness_file(os.path.join(os.path.dirname(full), target))
        self._depth_guard(full)
        self.run(text, origin="harness")

    def _depth_guard(self, path: str) -> None:
        self._depth = getattr(self, "_depth", 0) + 1
        if self._depth > 8:
            raise Unsupported(f"harness file {path}: too many nested harness files")

    def _sysctl_command(self, argv: list[str], origin: str) -> bool:
        ignore_unknown = False
        for arg in argv[1:]:
            if arg.startswith("-"):
                if "e" in arg:
                    ignore_unknown = True
                if set(arg[1:]) - set("qew"):
                    raise Unsupported(f"command `{' '.join(argv)}`")
                continue
            name, sep, value = arg.partition("=")
            if not sep:
                continue  # a read: prints, changes nothing
            self.sysctl(name.replace("/", "."), value, origin, ignore_unknown)
        return True

    def sysctl(self, name: str, value: str, origin: str, ignore_unknown: bool = False) -> None:
        """Write one sysctl (see the module docstring for what happens to unknown ones)."""
        value = value.strip().strip('"').strip("'")
        sysctls = self.host.sysctl
        if name in sysctls:
            words = value.split()
            converted: Any = value
            if len(words) == 1:
                try:
                    converted = int(words[0], 0)
                except ValueError:
                    converted = words[0]
            try:
                self.host.set_sysctl(name, converted)
            except (ValueError, TypeError) as e:
                raise Unsupported(f"sysctl {name}={value} ({e})") from None
            self.applied.append((name, value))
            return
        if name in OBSOLETE_SYSCTLS:
            return
        default = LINUX_SYSCTL_DEFAULTS.get(name)
        if default is not None and _normalize(default) == _normalize(value):
            return
        what = f"sysctl {name}={value} (pystack has no such sysctl" + (
            f"; Linux's default is {default})" if default is not None else ")")
        if origin == "harness" or ignore_unknown:
            self.warnings.append(what)
            return
        raise Unsupported(what)


def _arith(expr: str) -> int:
    """$((...)) with integers and + - * / % ( ): evaluated without eval()."""
    tokens = re.findall(r"\d+|[-+*/%()]", expr)
    pos = 0

    def atom() -> int:
        nonlocal pos
        tok = tokens[pos]
        pos += 1
        if tok == "(":
            v = add()
            pos += 1
            return v
        if tok == "-":
            return -atom()
        return int(tok)

    def mul() -> int:
        nonlocal pos
        v = atom()
        while pos < len(tokens) and tokens[pos] in "*/%":
            op = tokens[pos]
            pos += 1
            rhs = atom()
            v = v * rhs if op == "*" else int(v / rhs) if op == "/" else v % rhs
        return v

    def add() -> int:
        nonlocal pos
        v = mul()
        while pos < len(tokens) and tokens[pos] in "+-":
            op = tokens[pos]
            pos += 1
            rhs = mul()
            v = v + rhs if op == "+" else v - rhs
        return v

    return add()
