"""The path manager's events as the agent reads them: netlink bytes to plain data."""

import pytest

from hosts.events import EventKind, unmapped
from hosts.pm_netlink import EventListener, pm_event


def event_bytes(cmd: int, **attrs) -> bytes:
    msg = pm_event()
    msg["cmd"], msg["version"] = cmd, 1
    msg["attrs"] = [(f"MPTCP_ATTR_{k.upper()}", v) for k, v in attrs.items()]
    msg.encode()
    return msg.data


def parsed(data: bytes):
    msg = pm_event(data)
    msg.decode()
    return EventListener._event(msg)


@pytest.mark.parametrize(
    ("saddr", "daddr", "expected"),
    [
        # The IPv4 subflow of an IPv6 socket: the kernel names it in IPv4-mapped IPv6.
        ("::ffff:10.1.0.10", "::ffff:10.3.0.20", ("10.1.0.10", "10.3.0.20")),
        ("2001:db8:1::10", "2001:db8:3::20", ("2001:db8:1::10", "2001:db8:3::20")),
    ],
)
def test_ipv6_events_name_ipv4_subflows_as_they_are_on_the_wire(saddr, daddr, expected):
    """So the TPBT, the classifier's keys (which the wire's IPv4 packets must match) and
    the copies of the segments agree: an IPv4 subflow named in IPv6 would be guarded
    under a key no packet has."""
    data = event_bytes(10, token=5, family=10, saddr6=saddr, daddr6=daddr, sport=1, dport=2)
    ev = parsed(data)
    assert ev.kind is EventKind.SUB_ESTABLISHED and (ev.saddr, ev.daddr) == expected
    assert ev.four == (expected[0], 1, expected[1], 2)


def test_ipv4_events_and_missing_addresses_pass_unchanged():
    ev = parsed(event_bytes(2, token=7, family=2, saddr4="10.2.0.10", daddr4="10.4.0.20"))
    assert (ev.kind, ev.saddr, ev.daddr) == (EventKind.ESTABLISHED, "10.2.0.10", "10.4.0.20")
    assert parsed(event_bytes(3, token=7)).saddr is None
    assert unmapped(None) is None and unmapped("::1") == "::1"


class _Datagrams:
    """A non-blocking socket's reads: each datagram once, then nothing to read."""

    def __init__(self, *datagrams: bytes):
        self.datagrams = list(datagrams)

    def recv(self, _size: int) -> bytes:
        if not self.datagrams:
            raise BlockingIOError
        return self.datagrams.pop(0)


def test_a_read_keeps_the_events_before_a_message_that_does_not_fit():
    """Several events arrive in one read; a length running past the read ends it (the
    rest cannot be framed, and is counted), the events before it stand, and the next
    read is parsed afresh."""
    first = event_bytes(1, token=7) + event_bytes(2, token=7)
    torn = bytearray(event_bytes(10, token=7, sport=1, dport=2))
    torn[0:4] = (len(torn) + 64).to_bytes(4, "little")  # says more than was read
    listener = object.__new__(EventListener)
    listener.sock, listener.unreadable = _Datagrams(first + bytes(torn), event_bytes(3)), 0
    events = listener.read()
    assert [(ev.kind, ev.token) for ev in events] == [
        (EventKind.CREATED, 7),
        (EventKind.ESTABLISHED, 7),
        (EventKind.CLOSED, 0),
    ]
    assert listener.unreadable == 1
