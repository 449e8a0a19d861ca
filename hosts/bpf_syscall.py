"""The few bpf(2) commands the agent needs, through ctypes: open a pinned object, read,
write and delete map elements, and run a program on a test packet.

Debian's python3-bpfcc needs kernel headers this machine lacks (platform notes), and
calling bpftool per map update would start a process for each guarded subflow. These
are plain system calls on file descriptors; the program and its maps are loaded by
bpftool (hosts/guard.py).
"""

from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass
from pathlib import Path

SYS_BPF = 321  # x86_64
BPF_MAP_LOOKUP_ELEM, BPF_MAP_UPDATE_ELEM, BPF_MAP_DELETE_ELEM, BPF_MAP_GET_NEXT_KEY = 1, 2, 3, 4
BPF_OBJ_GET, BPF_PROG_TEST_RUN = 7, 10
BPF_ANY = 0
SK_BUFF_SIZE = 192  # sizeof(struct __sk_buff) in the 6.x UAPI
SK_BUFF_MARK = 8  # offsetof(struct __sk_buff, mark)

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


class BpfError(OSError):
    pass


class _ObjGet(ctypes.Structure):
    _fields_ = [
        ("pathname", ctypes.c_uint64),
        ("bpf_fd", ctypes.c_uint32),
        ("file_flags", ctypes.c_uint32),
    ]


class _MapElem(ctypes.Structure):
    _fields_ = [
        ("map_fd", ctypes.c_uint32),
        ("pad", ctypes.c_uint32),
        ("key", ctypes.c_uint64),
        ("value", ctypes.c_uint64),
        ("flags", ctypes.c_uint64),
    ]


class _TestRun(ctypes.Structure):
    _fields_ = [
        ("prog_fd", ctypes.c_uint32),
        ("retval", ctypes.c_uint32),
        ("data_size_in", ctypes.c_uint32),
        ("data_size_out", ctypes.c_uint32),
        ("data_in", ctypes.c_uint64),
        ("data_out", ctypes.c_uint64),
        ("repeat", ctypes.c_uint32),
        ("duration", ctypes.c_uint32),
        ("ctx_size_in", ctypes.c_uint32),
        ("ctx_size_out", ctypes.c_uint32),
        ("ctx_in", ctypes.c_uint64),
        ("ctx_out", ctypes.c_uint64),
        ("flags", ctypes.c_uint32),
        ("cpu", ctypes.c_uint32),
        ("batch_size", ctypes.c_uint32),
    ]


def _bpf(cmd: int, attr: ctypes.Structure, what: str) -> int:
    r = _libc.syscall(SYS_BPF, cmd, ctypes.byref(attr), ctypes.sizeof(attr))
    if r < 0:
        err = ctypes.get_errno()
        raise BpfError(err, f"bpf({what}): {os.strerror(err)}")
    return r


def _addr(buf) -> int:
    return ctypes.addressof(buf)


def obj_get(path: str | Path) -> int:
    """A file descriptor of a pinned program or map."""
    name = ctypes.create_string_buffer(str(path).encode())
    return _bpf(BPF_OBJ_GET, _ObjGet(_addr(name), 0, 0), f"open {path}")


def possible_cpus() -> int:
    """How many per-CPU slots a per-CPU map value has (the kernel's possible CPUs)."""
    text = Path("/sys/devices/system/cpu/possible").read_text().strip()
    n = 0
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        n += int(hi or lo) - int(lo) + 1
    return n


@dataclass
class Map:
    fd: int
    key_size: int
    value_size: int

    def update(self, key: bytes, value: bytes) -> None:
        k, v = ctypes.create_string_buffer(key, self.key_size), ctypes.create_string_buffer(value)
        _bpf(BPF_MAP_UPDATE_ELEM, _MapElem(self.fd, 0, _addr(k), _addr(v), BPF_ANY), "update")

    def delete(self, key: bytes) -> bool:
        """False when the key was not there."""
        k = ctypes.create_string_buffer(key, self.key_size)
        try:
            _bpf(BPF_MAP_DELETE_ELEM, _MapElem(self.fd, 0, _addr(k), 0, 0), "delete")
        except BpfError as e:
            if e.errno == 2:
                return False
            raise
        return True

    def lookup(self, key: bytes) -> bytes | None:
        k = ctypes.create_string_buffer(key, self.key_size)
        v = ctypes.create_string_buffer(self.value_size)
        try:
            _bpf(BPF_MAP_LOOKUP_ELEM, _MapElem(self.fd, 0, _addr(k), _addr(v), 0), "lookup")
        except BpfError as e:
            if e.errno == 2:
                return None
            raise
        return v.raw

    def keys(self) -> list[bytes]:
        """Every key in the map now (hash maps: in no particular order)."""
        out: list[bytes] = []
        nxt = ctypes.create_string_buffer(self.key_size)
        key = 0  # NULL: the first key
        while True:
            try:
                _bpf(BPF_MAP_GET_NEXT_KEY, _MapElem(self.fd, 0, key, _addr(nxt), 0), "next key")
            except BpfError as e:
                if e.errno == 2:
                    return out
                raise
            out.append(nxt.raw)
            previous = ctypes.create_string_buffer(nxt.raw, self.key_size)  # alive until
            key = _addr(previous)  # the next call, which reads it

    def close(self) -> None:
        os.close(self.fd)


def test_run(prog_fd: int, frame: bytes) -> tuple[int, int]:
    """(return code, skb mark afterwards) of a tc program run on one Ethernet frame."""
    retval, mark, _ = test_run_timed(prog_fd, frame, 1)
    return retval, mark


def test_run_frame(prog_fd: int, frame: bytes) -> tuple[int, bytes]:
    """(return code, the frame as the program left it) of a tc program run once."""
    retval, _, _, out = _test_run(prog_fd, frame, 1)
    return retval, out


def test_run_timed(prog_fd: int, frame: bytes, repeat: int) -> tuple[int, int, int]:
    """(return code, skb mark, mean ns per run) of ``repeat`` runs of a program on one
    frame in the kernel (the kernel times the runs itself: no system call per run)."""
    retval, mark, duration, _ = _test_run(prog_fd, frame, repeat)
    return retval, mark, duration


def _test_run(prog_fd: int, frame: bytes, repeat: int) -> tuple[int, int, int, bytes]:
    data = ctypes.create_string_buffer(frame, len(frame))
    out = ctypes.create_string_buffer(len(frame) + 256)
    ctx_in = ctypes.create_string_buffer(SK_BUFF_SIZE)
    ctx_out = ctypes.create_string_buffer(SK_BUFF_SIZE)
    attr = _TestRun(
        prog_fd=prog_fd,
        data_size_in=len(frame),
        data_size_out=len(out),
        data_in=_addr(data),
        data_out=_addr(out),
        repeat=repeat,
        ctx_size_in=SK_BUFF_SIZE,
        ctx_size_out=SK_BUFF_SIZE,
        ctx_in=_addr(ctx_in),
        ctx_out=_addr(ctx_out),
    )
    _bpf(BPF_PROG_TEST_RUN, attr, "test run")
    mark = int.from_bytes(ctx_out.raw[SK_BUFF_MARK : SK_BUFF_MARK + 4], "little")
    return attr.retval, mark, attr.duration, out.raw[: attr.data_size_out]
