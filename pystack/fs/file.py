"""Per-process file descriptor tables and `struct file`, as fs/file.c and fs/file_table.c.

Read first: fs/file.c (alloc_fd: the lowest free descriptor, EMFILE against RLIMIT_NOFILE;
close_fd), include/linux/fs.h (struct file, f_op), man 2 socket, man 2 close.

Descriptors 0, 1 and 2 are taken by the process's standard streams, so the first socket is 3,
as in a real process (and as packetdrill scripts expect).
"""

from __future__ import annotations

import errno
from typing import Any, Final

from ..kernel.errors import KernelError

RLIMIT_NOFILE_DEFAULT: Final = 1024
O_NONBLOCK: Final = 0o4000
O_CLOEXEC: Final = 0o2000000


class File:
    """`struct file`: operations, private data (the socket), flags."""

    __slots__ = ("f_op", "private_data", "f_flags", "f_count", "__weakref__")

    def __init__(self, f_op: Any, private_data: Any, f_flags: int = 0):
        self.f_op = f_op
        self.private_data = private_data
        self.f_flags = f_flags
        self.f_count = 1


class _StdStream:
    """The file ops of a standard stream placeholder (0, 1, 2)."""

    name = "stdio"

    @staticmethod
    def release(file: File) -> None:
        pass


class FdTable:
    """`struct files_struct`: descriptor → file."""

    def __init__(self, nofile: int = RLIMIT_NOFILE_DEFAULT):
        self.fds: list[File | None] = [File(_StdStream, None) for _ in range(3)]
        self.nofile = nofile
        self.cloexec: set[int] = set()
        self._free_hint = 3

    def alloc_fd(self, file: File, flags: int = 0) -> int:
        fds = self.fds
        fd = self._free_hint
        while fd < len(fds) and fds[fd] is not None:
            fd += 1
        if fd >= self.nofile:
            raise KernelError(errno.EMFILE)
        if fd == len(fds):
            fds.append(file)
        else:
            fds[fd] = file
        self._free_hint = fd + 1
        if flags & O_CLOEXEC:
            self.cloexec.add(fd)
        return fd

    def fget(self, fd: int) -> File:
        if fd < 0 or fd >= len(self.fds):
            raise KernelError(errno.EBADF)
        f = self.fds[fd]
        if f is None:
            raise KernelError(errno.EBADF)
        return f

    def close_fd(self, fd: int) -> File:
        f = self.fget(fd)
        self.fds[fd] = None
        self.cloexec.discard(fd)
        if fd < self._free_hint:
            self._free_hint = fd
        while self.fds and self.fds[-1] is None:
            self.fds.pop()
        return f

    def open_fds(self) -> list[int]:
        return [fd for fd, f in enumerate(self.fds) if f is not None]


def fput(file: File) -> None:
    """Drop a reference; the last one releases the file."""
    file.f_count -= 1
    if file.f_count == 0:
        file.f_op.release(file)
