"""FdTable and struct file (pystack/fs/file.py): fs/file.c's rules, unit by unit."""

from __future__ import annotations

import errno

import pytest

from pystack.fs.file import O_CLOEXEC, RLIMIT_NOFILE_DEFAULT, FdTable, File, fput
from pystack.kernel.errors import KernelError


class Recorder:
    """File ops that record releases."""

    def __init__(self) -> None:
        self.released: list[File] = []

    def release(self, file: File) -> None:
        self.released.append(file)


def new_file(ops=None) -> File:
    return File(ops or Recorder(), object())


def errno_of(fn, *args) -> int:
    with pytest.raises(KernelError) as e:
        fn(*args)
    return e.value.errno


def test_a_new_table_holds_the_three_standard_streams():
    table = FdTable()
    assert table.open_fds() == [0, 1, 2]
    assert table.nofile == RLIMIT_NOFILE_DEFAULT == 1024


def test_the_first_descriptor_is_3():
    assert FdTable().alloc_fd(new_file()) == 3


def test_alloc_returns_the_lowest_free_descriptor():
    table = FdTable()
    assert [table.alloc_fd(new_file()) for _ in range(3)] == [3, 4, 5]
    table.close_fd(4)
    assert table.alloc_fd(new_file()) == 4
    table.close_fd(3)
    table.close_fd(5)
    assert table.alloc_fd(new_file()) == 3
    assert table.alloc_fd(new_file()) == 5
    assert table.alloc_fd(new_file()) == 6


def test_a_closed_standard_stream_is_reused_first():
    table = FdTable()
    table.alloc_fd(new_file())
    table.close_fd(0)
    assert table.alloc_fd(new_file()) == 0


def test_closing_the_last_descriptors_trims_the_table():
    table = FdTable()
    for _ in range(4):
        table.alloc_fd(new_file())
    for fd in (6, 5, 4):
        table.close_fd(fd)
    assert len(table.fds) == 4
    assert table.alloc_fd(new_file()) == 4


def test_fget_returns_the_file():
    table = FdTable()
    f = new_file()
    fd = table.alloc_fd(f)
    assert table.fget(fd) is f


@pytest.mark.parametrize("fd", [-1, 3, 1000, 1 << 40])
def test_fget_of_a_descriptor_never_opened_is_ebadf(fd):
    assert errno_of(FdTable().fget, fd) == errno.EBADF


def test_a_closed_descriptor_is_ebadf():
    table = FdTable()
    fd = table.alloc_fd(new_file())
    table.alloc_fd(new_file())  # fd + 1 keeps the slot inside the list
    table.close_fd(fd)
    assert errno_of(table.fget, fd) == errno.EBADF
    assert errno_of(table.close_fd, fd) == errno.EBADF


def test_emfile_at_the_limit():
    table = FdTable(nofile=8)
    assert [table.alloc_fd(new_file()) for _ in range(5)] == [3, 4, 5, 6, 7]
    assert errno_of(table.alloc_fd, new_file()) == errno.EMFILE
    assert table.open_fds() == list(range(8))
    table.close_fd(5)
    assert table.alloc_fd(new_file()) == 5
    assert errno_of(table.alloc_fd, new_file()) == errno.EMFILE


def test_emfile_at_rlimit_nofile_1024():
    table = FdTable()
    for _ in range(1024 - 3):
        table.alloc_fd(new_file())
    assert errno_of(table.alloc_fd, new_file()) == errno.EMFILE
    assert len(table.fds) == 1024


def test_o_cloexec_is_remembered_per_descriptor_and_forgotten_on_close():
    table = FdTable()
    fd = table.alloc_fd(new_file(), O_CLOEXEC)
    plain = table.alloc_fd(new_file())
    assert table.cloexec == {fd}
    table.close_fd(fd)
    assert table.cloexec == set()
    assert plain not in table.cloexec


def test_close_fd_returns_the_file_without_releasing_it():
    ops = Recorder()
    f = new_file(ops)
    table = FdTable()
    fd = table.alloc_fd(f)
    assert table.close_fd(fd) is f
    assert ops.released == []


def test_fput_releases_on_the_last_reference_only():
    ops = Recorder()
    f = new_file(ops)
    f.f_count += 1  # a second holder (a dup, an in-flight syscall)
    fput(f)
    assert ops.released == []
    fput(f)
    assert ops.released == [f]


def test_tables_are_independent():
    t1, t2 = FdTable(), FdTable()
    f1, f2 = new_file(), new_file()
    assert t1.alloc_fd(f1) == t2.alloc_fd(f2) == 3
    t1.close_fd(3)
    assert t2.fget(3) is f2
