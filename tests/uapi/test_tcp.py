"""TCP option parsing (pystack/uapi/tcp.py): the aligned-timestamp fast path agrees with the
general walk."""

from __future__ import annotations

import struct

from hypothesis import example, given, settings
from hypothesis import strategies as st

from pystack.uapi.tcp import TcpOptions, parse_options

SEEDED = settings(derandomize=True, max_examples=300, deadline=None)


def fields(opts: TcpOptions) -> dict:
    return {name: getattr(opts, name) for name in TcpOptions.FIELDS}


def test_nop_nop_timestamp_gives_the_timestamp_and_nothing_else():
    block = bytes([1, 1, 8, 10]) + struct.pack("!II", 0xDEADBEEF, 7)
    opts = parse_options(block, 0, len(block), syn=False)
    assert (opts.saw_tstamp, opts.rcv_tsval, opts.rcv_tsecr) == (True, 0xDEADBEEF, 7)
    assert (opts.mss, opts.wscale, opts.sack_ok, list(opts.sacks)) == (0, -1, False, [])


@SEEDED
@given(st.binary(min_size=12, max_size=12), st.booleans())
@example(bytes([1, 1, 8, 10]) + bytes(8), False)
@example(bytes([1, 1, 8, 10]) + b"\xff" * 8, True)
@example(bytes([1, 1, 8, 9]) + bytes(8), False)  # a timestamp option of the wrong length
@example(bytes([1, 1, 5, 10]) + bytes(8), False)  # SACK, not a timestamp
def test_a_12_byte_block_parses_as_the_walk_does(block, syn):
    # Appending an end-of-options byte makes the block 13 bytes long: the fast path is not
    # taken and the general walk reads the same 12 bytes, then stops.
    fast = parse_options(block, 0, 12, syn)
    walked = parse_options(block + b"\x00", 0, 13, syn)
    if block[:4] == bytes([1, 1, 8, 10]):
        assert fields(fast) == fields(walked)
    # A block the fast path does not recognise goes through the walk itself.
    assert fields(fast) == fields(parse_options(bytearray(b"\x00") + block, 1, 13, syn))
