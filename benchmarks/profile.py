"""``python -m benchmarks.profile NAME [--quick] [--anchor] [--top N] [--save FILE]``.

Runs one repetition of one figure's pystack side (or, with ``--anchor``, of its anchor),
setup included, under cProfile, then prints the hottest functions twice: by cumulative time
(which call paths the time goes through) and by total time (where it is actually spent,
callees excluded). The profiler slows Python code two- to three-fold, so the figure printed first
is only a guide; what matters is the ranking. Compare a pystack profile with its anchor's to
see what the stack adds over plain trio. ``--save`` keeps the raw stats for snakeviz or
``python -m pstats``.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys

from .figures import FIGURES
from .harness import Failed, attempt, configure, fmt


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.profile",
        description="Run one benchmark figure under cProfile and print its hottest functions.",
    )
    ap.add_argument("name", metavar="NAME", choices=list(FIGURES), help=", ".join(FIGURES))
    ap.add_argument("--quick", action="store_true", help="the small sizes of --quick")
    ap.add_argument("--anchor", action="store_true", help="profile the anchor instead")
    ap.add_argument("--top", type=int, default=25, help="rows per listing (default 25)")
    ap.add_argument("--save", metavar="FILE", help="also write the raw pstats to FILE")
    args = ap.parse_args(argv)

    fig = FIGURES[args.name]
    plan = fig.quick if args.quick else fig.full
    configure(quick=args.quick)
    if args.anchor:
        if fig.anchor is None:
            ap.error(f"{fig.name} has no anchor")
        fn, kwargs, side = fig.anchor, {**plan.kwargs, **plan.anchor_kwargs}, "anchor"
    else:
        fn, kwargs, side = fig.pystack, plan.kwargs, "pystack"

    print(f"profiling {fig.name} ({fig.title}), {side} side, {kwargs}", flush=True)
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        m = attempt(fn, kwargs)
    except Failed as f:
        profiler.disable()
        print(f"{side}: n/a ({f.reason}); nothing worth profiling")
        return 1
    profiler.disable()
    note = f" ({m.note})" if m.note else ""
    print(f"{side}: {fmt(m.value)} {fig.unit} under the profiler{note}")

    if args.save:
        profiler.dump_stats(args.save)
    for key, label in (("cumulative", "cumulative time"), ("tottime", "total time")):
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.strip_dirs().sort_stats(key).print_stats(args.top)
        print(f"\n=== {args.top} hottest functions by {label} ===")
        # Drop pstats' preamble down to the column header: the header line says it all.
        text = out.getvalue()
        start = text.find("   ncalls")
        print(text[start:].rstrip() if start >= 0 else text.rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
