"""compat/: each pair of unmodified programs gives the same transcript on the real kernel's
127.0.0.1 and on pystack (`python -m pystack run`).

Read first: compat/run.py.
"""

from __future__ import annotations

import concurrent.futures
import importlib.util
import pathlib

import pytest

RUN = pathlib.Path(__file__).resolve().parents[1] / "compat" / "run.py"
_spec = importlib.util.spec_from_file_location("compat_run", RUN)
compat = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(compat)


@pytest.fixture(scope="module")
def results():
    # The pairs run in parallel: each is a few subprocesses, mostly waiting.
    with concurrent.futures.ThreadPoolExecutor(len(compat.PAIRS)) as pool:
        return dict(zip([p.name for p in compat.PAIRS], pool.map(compat.compare, compat.PAIRS)))


@pytest.mark.parametrize("name", [p.name for p in compat.PAIRS])
def test_pair_gives_the_same_transcript(results, name) -> None:
    same, real, emulated, err = results[name]
    assert real, f"the real run printed nothing: {err}"
    assert emulated == real, err


def test_transcripts_mask_addresses_ports_and_descriptors() -> None:
    assert compat.normalize("accepted <socket.socket fd=7, laddr=('10.0.0.1', 50007)> from "
                            "('10.0.0.2', 41234)\nparent: connecting to server:50007", 50007) == [
        "accepted <socket.socket fd=N, laddr=('ADDR', PORT)> from ('ADDR', N)",
        "parent: connecting to ADDR:PORT"]
