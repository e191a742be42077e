"""`--report DIR`: run every script under a directory and summarise, per INVENTORY tier.

Read first: runner.py (`run_script`, `Result`), and the corpus's INVENTORY.md /
inventory.json (tiers A, B, C1..C4, X: what each script needs from a stack).

Each script runs in its own fresh emulated world (run_script never raises), so one script's
trouble never reaches the next. The table lists script, status and first mismatch; the totals
are per tier, then the commonest reasons, with numbers and names folded so that "expected
result 3 but got -1" and "... 4 but got -1" count as one reason.
"""

from __future__ import annotations

import collections
import json
import os
import re
from typing import Any, Callable, Iterable

from .runner import Result, run_script

__all__ = ["find_scripts", "load_inventory", "tier_of", "run_report", "format_report",
           "reason_key"]

TIER_ORDER = ["A", "B", "C1", "C2", "C3", "C4", "X", "?"]


def find_scripts(root: str) -> list[str]:
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        out.extend(os.path.join(dirpath, f) for f in sorted(filenames) if f.endswith(".pkt"))
    return sorted(out)


def load_inventory(root: str) -> dict[str, dict[str, Any]]:
    """inventory.json's `files` (keys are paths under gtests/net/), found in `root` or the
    directories above it; {} when there is none."""
    d = os.path.abspath(root)
    while True:
        candidate = os.path.join(d, "inventory.json")
        if os.path.isfile(candidate):
            with open(candidate, encoding="utf-8") as f:
                data = json.load(f)
            return data.get("files", {}) if isinstance(data, dict) else {}
        parent = os.path.dirname(d)
        if parent == d:
            return {}
        d = parent


def tier_of(path: str, inventory: dict[str, dict[str, Any]]) -> str:
    norm = path.replace(os.sep, "/")
    best = ""
    for key in inventory:
        if norm.endswith("/" + key) and len(key) > len(best):
            best = key
    return inventory[best].get("tier", "?") if best else "?"


def reason_key(result: Result) -> str:
    """A failure reason with the particulars folded away, for counting."""
    text = result.reason
    text = re.sub(r"^line \d+: ", "", text)
    text = re.sub(r"`[^`]*`", "`...`", text)
    text = re.sub(r"0x[0-9a-fA-F]+", "N", text)
    text = re.sub(r"\d+(\.\d+)?", "N", text)
    return text[:140]


def run_report(root: str, *, progress: Callable[[str, Result], None] | None = None
               ) -> list[tuple[str, str, Result]]:
    """(path relative to root, tier, result) for every script under root."""
    inventory = load_inventory(root)
    rows = []
    for path in find_scripts(root):
        result = run_script(path)
        rel = os.path.relpath(path, root)
        result.path = rel
        rows.append((rel, tier_of(path, inventory), result))
        if progress is not None:
            progress(rel, result)
    return rows


def _short(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[:width - 3] + "..."


def format_report(rows: Iterable[tuple[str, str, Result]], *, top: int = 12) -> str:
    rows = list(rows)
    lines = []
    name_w = max([len(r[0]) for r in rows] + [6])
    name_w = min(name_w, 70)
    lines.append(f"{'script':<{name_w}}  tier  {'status':<11}  first mismatch / reason")
    lines.append("-" * (name_w + 70))
    for rel, tier, res in rows:
        lines.append(f"{_short(rel, name_w):<{name_w}}  {tier:<4}  {res.status:<11}  "
                     f"{_short(res.reason, 110)}")
    lines.append("")
    totals: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for _rel, tier, res in rows:
        totals[tier][res.status] += 1
        totals["all"][res.status] += 1
    lines.append(f"{'tier':<5} {'scripts':>7} {'pass':>6} {'fail':>6} {'unsupported':>12}")
    for tier in [t for t in TIER_ORDER if t in totals] + ["all"]:
        c = totals[tier]
        lines.append(f"{tier:<5} {sum(c.values()):>7} {c['pass']:>6} {c['fail']:>6} "
                     f"{c['unsupported']:>12}")
    reasons = collections.Counter(reason_key(res) for _r, _t, res in rows
                                  if res.status != "pass")
    if reasons:
        lines.append("")
        lines.append("commonest reasons:")
        for reason, n in reasons.most_common(top):
            lines.append(f"  {n:>4}  {reason}")
    warnings = collections.Counter(w for _r, _t, res in rows for w in set(res.warnings))
    if warnings:
        lines.append("")
        lines.append("harness settings pystack could not apply (scripts affected):")
        for w, n in warnings.most_common(top):
            lines.append(f"  {n:>4}  {w}")
    return "\n".join(lines)


def report_json(rows: Iterable[tuple[str, str, Result]]) -> str:
    out = []
    for rel, tier, res in rows:
        item = res.to_json()
        item["path"] = rel
        item["tier"] = tier
        out.append(item)
    return json.dumps(out, indent=1)
