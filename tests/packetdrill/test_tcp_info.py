"""Tests of `%{ }%` support (pystack.packetdrill.tcp_info): decoding TCP_INFO and running the
blocks as packetdrill does."""

from __future__ import annotations

import struct

from pystack.packetdrill.tcp_info import CodeBlock, decode_tcp_info, run_code_blocks


def test_struct_tcp_info_is_decoded_with_linux_layout():
    raw = bytearray(248)
    raw[0] = 1                       # tcpi_state
    raw[6] = 7 | 8 << 4              # snd_wscale 7, rcv_wscale 8
    struct.pack_into("<I", raw, 80, 10)     # tcpi_snd_cwnd
    struct.pack_into("<Q", raw, 120, 4242)  # tcpi_bytes_acked
    struct.pack_into("<H", raw, 240, 3)     # tcpi_total_rto
    info = decode_tcp_info(bytes(raw))
    assert (info["tcpi_state"], info["tcpi_snd_wscale"], info["tcpi_rcv_wscale"]) == (1, 7, 8)
    assert (info["tcpi_snd_cwnd"], info["tcpi_bytes_acked"], info["tcpi_total_rto"]) == (
        10, 4242, 3)


def test_short_struct_gives_the_fields_it_holds():
    info = decode_tcp_info(bytes(104))
    assert "tcpi_total_retrans" in info and "tcpi_pacing_rate" not in info


def test_mapping_and_object_results():
    assert decode_tcp_info({"snd_cwnd": 4}) == {"tcpi_snd_cwnd": 4}

    class Info:
        tcpi_rtt = 5
    assert decode_tcp_info(Info()) == {"tcpi_rtt": 5}


def test_blocks_share_a_namespace_and_see_their_own_snapshot():
    blocks = [CodeBlock(3, " x = tcpi_snd_cwnd ", {"tcpi_snd_cwnd": 10}),
              CodeBlock(9, "\nassert tcpi_snd_cwnd == x + 2, tcpi_snd_cwnd\n",
                        {"tcpi_snd_cwnd": 12})]
    assert run_code_blocks(blocks, "t.pkt") is None


def test_failed_assert_names_line_and_statement():
    blocks = [CodeBlock(7, " assert tcpi_ca_state == TCP_CA_Recovery, tcpi_ca_state ",
                        {"tcpi_ca_state": 0})]
    assert run_code_blocks(blocks, "t.pkt") == ("line 7: error in Python code at `assert "
                                                "tcpi_ca_state == TCP_CA_Recovery, "
                                                "tcpi_ca_state`: AssertionError: 0")
