"""sk_buff geometry and sharing (pystack/net/core/skbuff.py), as include/linux/skbuff.h draws it:

    head <= data <= tail <= end
    |headroom|  data  |tailroom|
"""

from __future__ import annotations

import pytest

from pystack.net.core.skbuff import (MAX_HEADER, SKB_TRUESIZE, SkBuff, alloc_skb,
                                     skb_from_frame)


def geometry(skb: SkBuff) -> tuple[int, int, int, int]:
    return skb.head, skb.data, skb.tail, skb.end


def test_alloc_skb_reserves_headroom_for_every_header():
    skb = alloc_skb(100)
    assert geometry(skb) == (0, MAX_HEADER, MAX_HEADER, MAX_HEADER + 100)
    assert (len(skb), skb.headroom(), skb.tailroom()) == (0, MAX_HEADER, 100)
    # Ethernet (14) + IP with options (60) + UDP (8) all fit without reallocating.
    assert skb.headroom() >= 14 + 60 + 8


def test_reserve_moves_data_and_tail_of_an_empty_buffer():
    skb = alloc_skb(100, headroom=0)
    skb.reserve(16)
    assert geometry(skb) == (0, 16, 16, 100)
    assert skb.tailroom() == 84


def test_put_extends_at_the_tail_and_returns_the_new_area():
    skb = alloc_skb(100, headroom=10)
    assert skb.put(30) == 10
    assert skb.put(20) == 40
    assert (skb.data, skb.tail, len(skb)) == (10, 60, 50)


def test_put_data_copies_bytes_in():
    skb = alloc_skb(10, headroom=4)
    off = skb.put_data(b"hello")
    assert off == 4 and skb.tobytes() == b"hello"
    assert bytes(skb.view()) == b"hello"


def test_put_past_the_end_raises():
    skb = alloc_skb(10, headroom=0)
    skb.put(8)
    with pytest.raises(OverflowError):
        skb.put(3)
    assert skb.tail == 8  # unchanged


def test_push_extends_at_the_head_and_returns_the_new_data():
    skb = alloc_skb(10, headroom=30)
    skb.put_data(b"payload")
    assert skb.push(8) == 22
    assert skb.push(20) == 2
    assert (skb.headroom(), len(skb)) == (2, 35)
    assert skb.tobytes().endswith(b"payload")


def test_push_past_the_headroom_raises():
    skb = alloc_skb(10, headroom=4)
    with pytest.raises(OverflowError):
        skb.push(5)
    assert skb.data == 4  # unchanged
    assert skb.push(4) == 0


def test_pull_drops_bytes_at_the_head():
    skb = alloc_skb(20, headroom=0)
    skb.put_data(b"HEADERpayload")
    assert skb.pull(6) is True
    assert skb.tobytes() == b"payload"
    assert skb.headroom() == 6


def test_pull_beyond_the_length_returns_false_and_changes_nothing():
    skb = alloc_skb(20, headroom=0)
    skb.put_data(b"short")
    assert skb.pull(6) is False
    assert skb.tobytes() == b"short"
    assert skb.pull(5) is True and len(skb) == 0


def test_trim_cuts_the_tail_but_never_extends():
    skb = alloc_skb(20, headroom=2)
    skb.put_data(b"datagram+padding")
    skb.trim(8)
    assert skb.tobytes() == b"datagram"
    skb.trim(100)
    assert skb.tobytes() == b"datagram"
    skb.trim(0)
    assert len(skb) == 0 and skb.data == 2


def test_header_offsets_follow_data():
    skb = alloc_skb(20)
    skb.put_data(b"udp+payload")
    skb.reset_transport_header()
    skb.push(20)
    skb.reset_network_header()
    skb.push(14)
    skb.reset_mac_header()
    assert skb.transport_header - skb.network_header == 20
    assert skb.network_header - skb.mac_header == 14
    assert skb.mac_header == skb.data


def test_clone_shares_the_buffer_and_marks_both():
    skb = alloc_skb(10)
    skb.put_data(b"shared")
    skb.cb = "ip control block"
    c = skb.clone()
    assert c.buf is skb.buf
    assert c.cloned and skb.cloned
    assert geometry(c) == geometry(skb) and c.cb == skb.cb
    c.pull(2)  # the geometry is the clone's own
    assert (c.tobytes(), skb.tobytes()) == (b"ared", b"shared")


def test_clone_and_copy_carry_every_field_but_the_owner():
    # The header copy names SkBuff's fields one by one: a field added to the class and
    # forgotten there fails here.
    skb = alloc_skb(10)
    owner = {"buf", "sk", "destructor", "cloned"}
    # The fields: the slots, or in the compiled build the native class's attributes.
    fields = getattr(SkBuff, "__slots__", None) or SkBuff.__mypyc_attrs__
    assert "gso_segs" in fields
    for i, name in enumerate(fields):
        if name in owner:
            continue
        old = getattr(skb, name)
        new = (old + 1000 + i if isinstance(old, (int, float)) and not isinstance(old, bool)
               else object() if old is None else not old)
        try:
            setattr(skb, name, new)
        except TypeError:  # a field the compiled build types (dst): the plain build checks it
            assert old is None
    for n in (skb.clone(), skb.copy()):
        assert [getattr(n, f) for f in fields if f not in owner] == [
            getattr(skb, f) for f in fields if f not in owner]


def test_a_clone_has_no_owner():
    skb = alloc_skb(10)
    skb.sk = object()
    skb.destructor = lambda s: None
    c = skb.clone()
    assert c.sk is None and c.destructor is None


def test_unshare_copies_a_cloned_buffer_before_writing():
    skb = alloc_skb(10, headroom=0)
    skb.put_data(b"original")
    c = skb.clone()
    c.unshare()
    assert c.buf is not skb.buf and not c.cloned
    c.buf[0:1] = b"O"
    assert (c.tobytes(), skb.tobytes()) == (b"Original", b"original")


def test_unshare_of_a_private_buffer_does_not_copy():
    skb = alloc_skb(10)
    buf = skb.buf
    skb.unshare()
    assert skb.buf is buf


def test_copy_is_independent_headroom_included():
    skb = alloc_skb(10, headroom=8)
    skb.put_data(b"abc")
    skb.push(2)
    skb.buf[skb.data:skb.data + 2] = b"hd"
    c = skb.copy()
    assert c.buf is not skb.buf and not c.cloned and not skb.cloned
    assert geometry(c) == geometry(skb) and c.tobytes() == b"hdabc"
    c.buf[c.data] = ord("X")
    assert skb.tobytes() == b"hdabc"


def test_truesize_charges_the_buffer_and_the_metadata():
    skb = alloc_skb(100)
    assert skb.truesize == SKB_TRUESIZE(MAX_HEADER + 100)
    assert SKB_TRUESIZE(100) - 100 == SKB_TRUESIZE(0) > 0  # a fixed overhead per buffer
    assert SKB_TRUESIZE(0) == 576  # struct sk_buff + skb_shared_info on x86_64, aligned


def test_truesize_is_kept_by_a_clone():
    skb = alloc_skb(100)
    assert skb.clone().truesize == skb.truesize


def test_skb_from_frame_wraps_the_frame_without_copying():
    frame = bytearray(b"\xff" * 60)
    skb = skb_from_frame(frame, 2048)
    assert skb.buf is frame
    assert geometry(skb) == (0, 0, 60, 60) and skb.truesize == 2048


def test_orphan_runs_the_destructor_once():
    calls = []
    skb = alloc_skb(10)
    skb.sk = "owner"
    skb.destructor = calls.append
    skb.orphan()
    skb.orphan()
    assert calls == [skb] and skb.sk is None
