"""``python -m benchmarks [NAME...] [--quick] [--json PATH] [--list] [--strict]``.

Runs the named figures (all by default) in one process, prints the table — pystack beside
its anchor, the ratio pystack ÷ anchor, the target and whether it is met — and writes the
rows to ``benchmarks/results.json``. See the package docstring for how to read the ratios.

Exit status: 0 when every anchor was measured (pystack rows may be n/a or miss their
targets: that is a result, not an error); 1 when an anchor failed, or with ``--strict``
when any target is not met; 2 for a bad command line.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import trio

from pystack.lib.compiled import is_compiled

from .figures import FIGURES
from .harness import Row, compare, configure, table

DEFAULT_JSON = Path(__file__).resolve().parent / "results.json"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="pystack benchmarks, each beside an anchor measured in the same run.",
    )
    ap.add_argument("names", nargs="*", metavar="NAME", help="figures to run (default: all)")
    ap.add_argument("--quick", action="store_true", help="small sizes, one repetition")
    ap.add_argument(
        "--json",
        type=Path,
        default=DEFAULT_JSON,
        metavar="PATH",
        help="where to write the rows (default: benchmarks/results.json)",
    )
    ap.add_argument("--list", action="store_true", help="name the figures and exit")
    ap.add_argument("--strict", action="store_true", help="exit 1 if a target is not met")
    args = ap.parse_args(argv)
    unknown = [n for n in args.names if n not in FIGURES]
    if unknown:
        ap.error(f"unknown figure(s) {', '.join(unknown)}; choose from {', '.join(FIGURES)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list:
        for f in FIGURES.values():
            print(f"{f.name:20} {f.title}  (target {f.target})")
        return 0
    names = args.names or list(FIGURES)
    configure(quick=args.quick)
    mode = "quick (small sizes, 1 repetition: indicative only)" if args.quick else "full"
    build = "compiled by mypyc" if is_compiled() else "plain Python"
    print(
        f"pystack benchmarks — {mode}; pystack {build}; Python {platform.python_version()}, "
        f"trio {trio.__version__}; ratio = pystack ÷ anchor, same process",
        flush=True,
    )
    rows: list[Row] = []
    started = time.perf_counter()
    for name in names:
        fig = FIGURES[name]
        plan = fig.quick if args.quick else fig.full
        t0 = time.perf_counter()

        def progress(step: str, name: str = name) -> None:
            if sys.stderr.isatty():
                print(f"  {name}: {step:<30}", end="\r", flush=True, file=sys.stderr)

        row = compare(
            name=fig.name,
            title=fig.title,
            unit=fig.unit,
            pystack=fig.pystack,
            anchor=fig.anchor,
            target=fig.target,
            plan=plan,
            self_anchored=fig.self_anchored,
            progress=progress,
        )
        rows.append(row)
        if sys.stderr.isatty():
            print(" " * 70, end="\r", file=sys.stderr)
        print(f"  {name}: done in {time.perf_counter() - t0:.1f} s", flush=True)
    print(f"\n{table(rows)}\n")
    print(f"total {time.perf_counter() - started:.1f} s")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps([r.as_json() for r in rows], indent=2) + "\n")
    print(f"wrote {args.json}")
    if any(r.anchor_failure for r in rows):
        return 1
    if args.strict and not all(r.met for r in rows):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
