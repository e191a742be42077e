"""Tests of the corpus report's pieces (pystack.packetdrill.report)."""

from __future__ import annotations

import json

from pystack.packetdrill.report import (find_scripts, format_report, load_inventory,
                                        reason_key, tier_of)
from pystack.packetdrill.runner import Result


def test_scripts_are_found_recursively_in_order(tmp_path):
    for name in ("b/2.pkt", "a/1.pkt", "a/notes.txt", "0.pkt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    found = [p[len(str(tmp_path)) + 1:] for p in find_scripts(str(tmp_path))]
    assert found == ["0.pkt", "a/1.pkt", "b/2.pkt"]


def test_inventory_is_found_above_and_matched_by_longest_suffix(tmp_path):
    (tmp_path / "inventory.json").write_text(json.dumps({"files": {
        "x.pkt": {"tier": "B"}, "tcp/x.pkt": {"tier": "A"}}}))
    (tmp_path / "gtests" / "net" / "tcp").mkdir(parents=True)
    inv = load_inventory(str(tmp_path / "gtests"))
    assert tier_of(str(tmp_path / "gtests/net/tcp/x.pkt"), inv) == "A"
    assert tier_of(str(tmp_path / "gtests/net/udp/x.pkt"), inv) == "B"
    assert tier_of(str(tmp_path / "gtests/net/tcp/y.pkt"), inv) == "?"


def test_reasons_fold_numbers_lines_and_commands():
    a = Result("a", "fail", "line 12: Expected result 3 but got -1 with errno 11 EAGAIN")
    b = Result("b", "fail", "line 40: Expected result 4 but got -1 with errno 11 EAGAIN")
    assert reason_key(a) == reason_key(b)
    c = Result("c", "unsupported", "unsupported: tc: command `tc qdisc add dev tun0 root fq`")
    assert reason_key(c) == "unsupported: tc: command `...`"


def test_report_lists_failures_and_harness_warnings():
    rows = [("s1.pkt", "A", Result("s1.pkt", "pass", warnings=["sysctl x=1"])),
            ("s2.pkt", "A", Result("s2.pkt", "fail", "line 3: boom", warnings=["sysctl x=1"]))]
    text = format_report(rows)
    assert "s2.pkt" in text and "line 3: boom" in text
    assert "     2  sysctl x=1" in text
    assert "     1  boom" in text
