"""`python -m pystack.packetdrill SCRIPT... | --report DIR [--json]`: run packetdrill scripts
against an emulated Linux host.

Read first: runner.py (what one run does) and report.py (the corpus report).

With scripts: each runs in its own fresh world; the exit status is 0 when every one passes.
With --report DIR: every .pkt under DIR runs and a table with totals per INVENTORY tier is
printed; the exit status is 0 whatever the scripts did (it is a report, not a gate).
"""

from __future__ import annotations

import argparse
import json
import sys

from .report import format_report, report_json, run_report
from .runner import run_script


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pystack.packetdrill",
                                 description="Run packetdrill scripts against pystack.")
    ap.add_argument("scripts", nargs="*", help=".pkt files to run")
    ap.add_argument("--report", metavar="DIR", help="run every .pkt under DIR and summarise")
    ap.add_argument("--json", action="store_true", help="print machine-readable results")
    ap.add_argument("--ip_version", default="ipv4", choices=["ipv4", "ipv6",
                                                            "ipv4-mapped-ipv6"])
    ap.add_argument("-v", "--verbose", action="store_true",
                    help="print each failure's full message (expected and actual packets)")
    args = ap.parse_args(argv)
    if not args.scripts and not args.report:
        ap.error("give scripts to run, or --report DIR")

    if args.report:
        def progress(rel: str, res) -> None:
            if not args.json:
                print(f"  {res.status:<11} {rel}", file=sys.stderr, flush=True)
        rows = run_report(args.report, progress=progress)
        print(report_json(rows) if args.json else format_report(rows))
        return 0

    results = [run_script(path, ip_version=args.ip_version) for path in args.scripts]
    if args.json:
        print(json.dumps([r.to_json() for r in results], indent=1))
    else:
        for r in results:
            if r.status == "pass":
                print(f"{r.path}: PASS")
            else:
                print(f"{r.path}: {r.status.upper()}: {r.reason}")
                if args.verbose and r.details and r.details != r.reason:
                    print("    " + r.details.replace("\n", "\n    "))
            for w in r.warnings if args.verbose else ():
                print(f"    warning: {w}")
    return 0 if all(r.status == "pass" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
