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


@SEEDED
@given(st.binary(min_size=20, max_size=20), st.booleans(), st.integers(0, 0xFFFF),
       st.integers(0, 255))
@example(bytes(20), True, 1460, 7)
def test_a_20_byte_syn_block_parses_as_the_walk_does(noise, linux_layout, mss, wscale):
    # Linux's SYN layout (MSS, SACK_PERM + timestamp, NOP + window scale) takes a one-unpack
    # path; with any mss and wscale, and for arbitrary 20 bytes, it must agree with the walk
    # (forced by an end-of-options byte that makes the block 21 bytes long).
    if linux_layout:
        block = (struct.pack("!BBH", 2, 4, mss) + bytes([4, 2, 8, 10]) + noise[:8]
                 + bytes([1, 3, 3, wscale]))
    else:
        block = noise
    for syn in (True, False):
        fast = parse_options(block, 0, 20, syn)
        walked = parse_options(block + b"\x00", 0, 21, syn)
        assert fields(fast) == fields(walked)
