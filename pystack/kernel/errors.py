"""How kernel code reports an error to the syscall layer.

Linux functions return -errno; here they raise `KernelError(errno)`, and the syscall edge
(pystack/net/socket.py) turns it into `OSError(errno, strerror)` — the only place an OSError
is made. `KernelError(EAGAIN)` from a protocol's non-blocking attempt is what makes a blocking
syscall wait and try again.
"""

from __future__ import annotations

import errno as _errno
import os


class KernelError(Exception):
    __slots__ = ("errno",)

    def __init__(self, err: int):
        super().__init__(err)
        self.errno = err

    def __str__(self) -> str:
        return f"[Errno {self.errno}] {os.strerror(self.errno)} ({_errno.errorcode.get(self.errno, '?')})"

    def to_oserror(self) -> OSError:
        return OSError(self.errno, os.strerror(self.errno))
