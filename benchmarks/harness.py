"""Timing machinery of the benchmark suite: runs, repetitions, medians, targets, the table.

A *measurement function* runs one repetition of a figure and returns a `Measurement`: the
figure's value (a rate such as round trips per second, or a cost such as KiB per connection)
and an optional note. It times only its steady-state loop, with `time.perf_counter`, after
its setup; it bounds that loop both in count (a size argument) and in wall time (a
``seconds`` argument), and computes its value from the work actually done, so a slow run
ends early instead of running long.

`compare` runs a figure's anchor and pystack functions after a warm-up, interleaving the
repetitions (anchor, pystack, anchor, pystack, ...) so that the machine's drifting speed
hits both sides alike, and keeps the median of each side. The ratio is always
pystack ÷ anchor, the quotient of the two medians. The note also gives the lowest and
highest *pair* ratio (each pystack repetition over the anchor repetition run just before
it): how much the machine moved during the row. (Taking the median of the pair ratios as
the row's ratio was tried: over five runs of the UDP row it varied three times as much as
the quotient of medians, sd 0.031 against 0.011, and no less for echo, so it is only shown.)
`Target` says whether a row is judged on that ratio or on the pystack value itself, and in
which direction.

The pystack side runs in virtual time (`run_virtual`: ``trio.run`` with an autojump
``MockClock``). Two guards keep an unfinished stack from hanging the suite: a virtual-time
limit (a deadlock makes the autojump clock leap straight to it) and a wall-clock watchdog
thread that cancels the run. Both surface as `TimeoutError`, an `OSError`, so the row reads
"n/a (...)" like any other failure of the pystack side.
"""

from __future__ import annotations

import gc
import math
import statistics
import sys
import threading
import time
import traceback
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import attrs
import trio
import trio.testing

# Failures that mean "pystack cannot do this yet": reported quietly as n/a. Anything else
# is reported as n/a too (one unfinished figure must not hide the others) but its traceback
# goes to stderr, since it may be a bug in the benchmark or in the stack.
EXPECTED_FAILURES: tuple[type[BaseException], ...] = (
    ImportError,
    AttributeError,
    NotImplementedError,
    OSError,
)


@attrs.frozen
class Measurement:
    """One repetition's result: the figure's value, in the figure's unit."""

    value: float
    note: str = ""


def rate(count: float, seconds: float, note: str = "") -> Measurement:
    """Work per second; `seconds` is the timed section's wall time."""
    if count <= 0:
        raise RuntimeError("the timed loop did no work")
    return Measurement(count / max(seconds, 1e-9), note)


@attrs.frozen
class Target:
    """What a row must reach: ``op`` (">=" or "<=") applied to ``bound``.

    ``on="ratio"`` judges pystack ÷ anchor; ``on="value"`` judges the pystack value itself.
    """

    op: str
    bound: float
    on: str
    unit: str = ""

    def met(self, value: float | None, ratio: float | None) -> bool:
        x = ratio if self.on == "ratio" else value
        if x is None or math.isnan(x):
            return False
        return x >= self.bound if self.op == ">=" else x <= self.bound

    def __str__(self) -> str:
        if self.on == "ratio":
            return f"{self.op} {self.bound:,g}x anchor"
        return f"{self.op} {self.bound:,g} {self.unit}".rstrip()


@attrs.frozen
class Row:
    """One line of the table and one object of results.json."""

    name: str
    title: str
    unit: str
    pystack: float | None
    anchor: float | None
    ratio: float | None
    target: Target
    met: bool
    note: str = ""
    pystack_failure: str = ""  # "reason" of "n/a (reason)"; empty when pystack ran
    anchor_failure: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "pystack": self.pystack,
            "anchor": self.anchor,
            "ratio": self.ratio,
            "target": str(self.target),
            "met": self.met,
            "title": self.title,
            "unit": self.unit,
            "note": "; ".join(
                x
                for x in (
                    self.pystack_failure and f"pystack n/a ({self.pystack_failure})",
                    self.anchor_failure and f"anchor failed ({self.anchor_failure})",
                    self.note,
                )
                if x
            ),
        }


class Failed(Exception):
    """A side of a figure could not be measured; ``reason`` is one line for the table."""

    def __init__(self, reason: str, expected: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.expected = expected


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for sub in exc.exceptions for leaf in _leaves(sub)]
    return [exc]


def describe(exc: BaseException) -> tuple[str, bool]:
    """One line naming the failure (exception groups flattened), and whether it is expected."""
    leaves = _leaves(exc)
    reasons: list[str] = []
    for leaf in leaves:
        text = str(leaf).strip().splitlines()[0] if str(leaf).strip() else ""
        reason = f"{type(leaf).__name__}: {text}" if text else type(leaf).__name__
        if reason not in reasons:
            reasons.append(reason)
    expected = all(isinstance(leaf, EXPECTED_FAILURES) for leaf in leaves)
    return "; ".join(reasons), expected


def attempt(fn: Callable[..., Measurement], kwargs: dict[str, Any]) -> Measurement:
    """Run one repetition; turn any failure (not KeyboardInterrupt) into `Failed`."""
    gc.collect()
    try:
        return fn(**kwargs)
    except Exception as exc:  # noqa: BLE001 — a figure must never stop the suite
        reason, expected = describe(exc)
        if not expected:
            print(f"--- {fn.__module__}.{fn.__qualname__} failed unexpectedly:", file=sys.stderr)
            traceback.print_exception(exc, file=sys.stderr)
        raise Failed(reason, expected) from exc


# ---------------------------------------------------------------------------------------
# Running trio


def run_virtual(
    async_fn: Callable[..., Awaitable[Any]],
    *args: Any,
    wall_limit: float,
    virtual_limit: float = 7200.0,
) -> Any:
    """``trio.run(async_fn, *args)`` in virtual time, guarded in virtual and wall time."""

    async def main() -> Any:
        token = trio.lowlevel.current_trio_token()
        with trio.CancelScope() as watchdog:

            def fire() -> None:
                try:
                    token.run_sync_soon(watchdog.cancel)
                except trio.RunFinishedError:
                    pass

            timer = threading.Timer(wall_limit, fire)
            timer.daemon = True
            timer.start()
            try:
                with trio.fail_after(virtual_limit):
                    return await async_fn(*args)
            except trio.TooSlowError:
                raise TimeoutError(
                    f"virtual-time limit {virtual_limit:g} s reached (deadlock?)"
                ) from None
            finally:
                timer.cancel()
        raise TimeoutError(f"wall-clock limit of {wall_limit:g} s exceeded")

    return trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def run_real(async_fn: Callable[..., Awaitable[Any]], *args: Any, wall_limit: float) -> Any:
    """``trio.run(async_fn, *args)`` on the real clock, failing after `wall_limit` seconds."""

    async def main() -> Any:
        try:
            with trio.fail_after(wall_limit):
                return await async_fn(*args)
        except trio.TooSlowError:
            raise TimeoutError(f"wall-clock limit of {wall_limit:g} s exceeded") from None

    return trio.run(main)


# Wall seconds a run may take beyond its own ``seconds`` budget (setup, teardown) before the
# watchdog ends it. The loops stop themselves; this only catches a stack that hangs, so it is
# generous in a full run and short in a quick one (`configure`).
_grace = 30.0


def configure(*, quick: bool) -> None:
    global _grace
    _grace = 8.0 if quick else 30.0


def grace() -> float:
    return _grace


class Deadline:
    """A wall-clock budget for a timed loop: `expired()` is cheap enough to call per item."""

    __slots__ = ("end",)

    def __init__(self, seconds: float) -> None:
        self.end = time.perf_counter() + seconds

    def expired(self) -> bool:
        return time.perf_counter() >= self.end


# ---------------------------------------------------------------------------------------
# Repetitions


@attrs.frozen
class Plan:
    """How one figure is run in this invocation."""

    kwargs: dict[str, Any]  # passed to both sides (anchor_kwargs overrides for the anchor)
    reps: int
    warmup: dict[str, Any] | None  # kwargs of a warm-up run of each side, or None
    anchor_kwargs: dict[str, Any] = attrs.Factory(dict)


@attrs.define
class _Side:
    fn: Callable[..., Measurement] | None
    kwargs: dict[str, Any]
    values: list[float] = attrs.Factory(list)
    notes: list[str] = attrs.Factory(list)
    failure: str = ""
    expected: bool = True

    @property
    def alive(self) -> bool:
        return self.fn is not None and not self.failure

    def run(self, kwargs: dict[str, Any] | None = None, record: bool = True) -> None:
        assert self.fn is not None
        try:
            m = attempt(self.fn, self.kwargs if kwargs is None else kwargs)
        except Failed as f:
            self.failure, self.expected = f.reason, f.expected
            return
        if record:
            self.values.append(m.value)
            if m.note and m.note not in self.notes:
                self.notes.append(m.note)

    def median(self) -> float | None:
        return statistics.median(self.values) if self.values else None


def paired_ratios(anchor: Sequence[float], pystack: Sequence[float]) -> list[float]:
    """pystack ÷ anchor for each interleaved pair of repetitions (anchor first, then pystack);
    empty unless both sides have a value for every repetition."""
    if len(anchor) != len(pystack) or not anchor or not all(anchor):
        return []
    return [p / a for a, p in zip(anchor, pystack)]


def compare(
    *,
    name: str,
    title: str,
    unit: str,
    pystack: Callable[..., Measurement],
    anchor: Callable[..., Measurement] | None,
    target: Target,
    plan: Plan,
    self_anchored: bool = False,
    progress: Callable[[str], None] = lambda s: None,
) -> Row:
    """Warm up, run interleaved repetitions of both sides, and build the row.

    `self_anchored`: the anchor is pystack itself under other conditions, so a failing
    anchor is a failure of the pystack side, not of the suite.
    """
    a = _Side(anchor, {**plan.kwargs, **plan.anchor_kwargs})
    p = _Side(pystack, plan.kwargs)
    if plan.warmup is not None:
        for side in (a, p):
            if side.alive:
                progress("warm-up")
                side.run({**side.kwargs, **plan.warmup}, record=False)
    for i in range(plan.reps):
        for label, side in (("anchor", a), ("pystack", p)):
            if side.alive:
                progress(f"{label} {i + 1}/{plan.reps}")
                side.run()
    pv, av = p.median(), a.median()
    if self_anchored and a.failure:
        p.failure = p.failure or a.failure
        a.failure, av = "", None
    if p.failure:
        pv = None
    ratio = pv / av if pv is not None and av else None
    notes = a.notes + p.notes
    pairs = paired_ratios(a.values, p.values) if ratio is not None else []
    if len(pairs) > 1:
        notes.append(f"pair ratios {fmt(min(pairs))}–{fmt(max(pairs))} "
                     f"over {len(pairs)} interleaved repetitions")
    return Row(
        name=name,
        title=title,
        unit=unit,
        pystack=pv,
        anchor=av,
        ratio=ratio,
        target=target,
        met=pv is not None and target.met(pv, ratio),
        note="; ".join(notes),
        pystack_failure=p.failure,
        anchor_failure=a.failure,
    )


# ---------------------------------------------------------------------------------------
# Printing


def fmt(x: float | None) -> str:
    """A number for a human: three significant digits, thousands separated."""
    if x is None or math.isnan(x):
        return "—"
    ax = abs(x)
    if ax >= 100:
        return f"{x:,.0f}"
    if ax >= 10:
        return f"{x:.1f}"
    if ax >= 1:
        return f"{x:.2f}"
    return f"{x:.3g}"


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def table(rows: Sequence[Row], reason_width: int = 60) -> str:
    """The results as an aligned text table, then any notes in full."""
    header = ("figure", "pystack", "anchor", "ratio", "target", "met")
    lines: list[tuple[str, ...]] = []
    notes: list[str] = []
    for r in rows:
        if r.pystack_failure:
            pcell = f"n/a ({_clip(r.pystack_failure, reason_width)})"
        else:
            pcell = f"{fmt(r.pystack)} {r.unit}"
        if r.anchor_failure:
            acell = "failed"
        elif r.anchor is None:
            acell = "—"
        else:
            acell = f"{fmt(r.anchor)} {r.unit}"
        lines.append(
            (r.title, pcell, acell, fmt(r.ratio), str(r.target), "yes" if r.met else "no")
        )
        extra = [
            r.pystack_failure
            and len(r.pystack_failure) > reason_width
            and f"pystack n/a ({r.pystack_failure})",
            r.anchor_failure and f"anchor failed ({r.anchor_failure})",
            r.note,
        ]
        if any(extra):
            notes.append(f"  {r.name}: " + "; ".join(x for x in extra if x))
    widths = [max(len(x[i]) for x in [header, *lines]) for i in range(len(header))]
    aligns = ("<", "<", ">", ">", "<", "<")

    def render(cells: tuple[str, ...]) -> str:
        return "  ".join(f"{c:{a}{w}}" for c, a, w in zip(cells, aligns, widths)).rstrip()

    out = [render(header), render(tuple("-" * w for w in widths))]
    out += [render(x) for x in lines]
    if notes:
        out += ["", "notes:", *notes]
    return "\n".join(out)
