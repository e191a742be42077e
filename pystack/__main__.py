"""Command line: `python -m pystack demo [SEED]`, `python -m pystack run SCRIPT`.

Read first: pystack/demo.py, pystack/dropin/runner.py.
"""

from __future__ import annotations

import sys

USAGE = """usage: python -m pystack COMMAND

commands:
  demo [SEED]    two hosts on a switch: ping, UDP echo over Ethernet and loopback with
                 faults, the counters and one packet's path through the kernel
  run [--client SCRIPT]... [--forward PORT[:PORT]] [--pcap FILE] [--delay S] [--loss P]
      [--seed N] [--trace[=PREFIX]] [--path] [--time virtual|real] SCRIPT [ARGS]
                 run an unmodified script on an emulated host `server` (clients on
                 client1, client2 ... on one switch), in virtual time; --forward makes
                 the real 127.0.0.1:PORT lead to it (in real time, until Ctrl-C)
"""


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command == "demo":
        from .demo import main as demo_main
        return demo_main(rest)
    if command == "run":
        from .dropin.runner import main as run_main
        return run_main(rest)
    print(f"unknown command {command!r}\n\n{USAGE}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
