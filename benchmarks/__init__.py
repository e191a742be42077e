"""The pystack benchmark suite (issue 8; DESIGN.md §8 "measure before and after").

Run it with ``make bench`` (``python -m benchmarks``); ``python -m benchmarks NAME...`` runs
some figures, ``--quick`` runs all of them with small sizes and one repetition, ``--list``
names them. It prints a table and writes ``benchmarks/results.json``: a list with one object
per row, with the keys ``name``, ``pystack``, ``anchor``, ``ratio``, ``target``, ``met`` (and,
to help a reader, ``title``, ``unit`` and ``note``).

How to read the figures
-----------------------
The machine running the suite is shared and its speed drifts, so no absolute figure is
meaningful alone. Each pystack figure is printed beside an *anchor* measured in the same
process, in the same run, with the repetitions of the two interleaved (anchor, pystack,
anchor, pystack, ...) so that drift hits both alike; the *ratio* is pystack ÷ anchor (of the
two medians shown), and each row's note gives the range of the ratios of adjacent
repetitions: how much the machine's speed moved during the row.

* Throughput rows (round trips/s, MB/s, pairs/s, connections/s): higher is better, and the
  ratio says what fraction of the anchor's speed pystack reaches: 0.5 means half as fast.
* The socket-scaling row is a cost (µs per packet): its "anchor" is pystack itself with 10
  open sockets, so the ratio is the slowdown that 10,000 open sockets cause (1.0 = none).
* Memory and virtual-hour rows have no anchor; their targets are absolute.

The anchors are the real kernel's loopback TCP through trio, trio's in-memory streams
(``trio.testing.memory_stream_pair``) and trio's UDP FakeNet. A pystack figure whose code
fails (pystack not written yet, a missing feature) is reported as ``n/a (reason)`` with
``pystack: null`` and ``met: false``; the suite never stops because pystack is incomplete.

Files: ``harness`` (timing, repetitions, medians, the table), ``anchors`` (the anchor side),
``figures`` (the pystack side and the list of figures), ``profile`` (one figure under
cProfile: ``python -m benchmarks.profile NAME``), ``steady`` (the small-message loops alone:
CPU time, calls or bytecodes per operation, ``python -m benchmarks.steady udp --bytecodes``). ``NOTES.md`` records where the figures stand,
how to measure a change on a shared machine, and what stands in the way of each target.
"""
