"""Header formats, as Linux's include/uapi/linux: frozen values with `parse` and `emit`.

Every `parse` takes untrusted bytes and returns a value or raises `BadPacket`; every `emit`
returns the bytes. The hot paths of the stack do not build these values per packet: they read
fields straight out of the skb with the precompiled `struct.Struct` each module exports, as
Linux casts a header pointer. The values are for tools, tests and traces.
"""

from __future__ import annotations


class BadPacket(ValueError):
    """Bytes from the wire that do not form a valid header. Raised only by `parse`."""
