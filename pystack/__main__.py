"""Command line: `python -m pystack demo [SEED]`."""

from __future__ import annotations

import sys

USAGE = """usage: python -m pystack COMMAND

commands:
  demo [SEED]    two hosts on a switch: ping, UDP echo over Ethernet and loopback with
                 faults, the counters and one packet's path through the kernel
  run SCRIPT     run an unmodified script on an emulated host (not implemented yet)
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
        print("python -m pystack run: running unmodified scripts is not implemented yet",
              file=sys.stderr)
        return 2
    print(f"unknown command {command!r}\n\n{USAGE}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
