"""The compiled build (pystack/lib/compiled.py): the suite runs against it under
`make test-compiled`, and this says which build a run tested."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pystack.lib.compiled import COMPILED_MODULES, EXCLUDED, is_compiled, mypyc_attr


ROOT = Path(__file__).resolve().parents[2]
SCENARIO = ROOT / "tests" / "determinism_scenario.py"


def test_the_run_tests_the_build_it_was_asked_to():
    # make test-compiled sets PYSTACK_EXPECT_COMPILED=1; a stale source tree shadowing the
    # compiled install would make every other test pass against the wrong build.
    expected = os.environ.get("PYSTACK_EXPECT_COMPILED") == "1"
    assert is_compiled() is expected


def test_the_compiled_list_names_directories_of_this_tree():
    import pystack
    root = os.path.dirname(os.path.dirname(pystack.__file__))
    for top in COMPILED_MODULES:
        assert os.path.isdir(os.path.join(root, top)), top
    assert "__init__.py" in EXCLUDED


def test_the_mark_leaves_a_plain_class_as_it_was():
    @mypyc_attr(native_class=False)
    class Knobs:
        pass

    k = Knobs()
    k.anything = 1  # an ordinary class takes attributes by name
    assert Knobs.__name__ == "Knobs" and k.anything == 1


def _in_subprocess(args: list[str], plain: bool) -> str:
    # -P: no script directory on sys.path. With this tree's root on PYTHONPATH the process
    # imports the plain source; without it, the installed build (the compiled one, here).
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    if plain:
        env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.run([sys.executable, "-P", *args], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.skipif(not is_compiled(), reason="compares the compiled build with the plain "
                    "one: runs under make test-compiled")
def test_the_compiled_build_writes_the_plain_build_s_capture(tmp_path):
    which = "from pystack.lib.compiled import is_compiled; print(is_compiled())"
    outputs = {}
    for plain in (False, True):
        assert _in_subprocess(["-c", which], plain).split() == [str(not plain)]
        outputs[plain] = _in_subprocess([str(SCENARIO), "7", str(tmp_path / f"{plain}.pcapng")],
                                        plain).split()
    assert outputs[False] == outputs[True]  # (pcap digest, frames lost, frames reordered)
