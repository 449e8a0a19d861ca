"""The path manager's events as the agent reads them: netlink bytes to plain data."""

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hosts.events import KIND_OF_CMD, Event, EventKind, unmapped
from hosts.pm_netlink import EventListener, event_of, pm_event


def event_bytes(cmd: int, **attrs) -> bytes:
    msg = pm_event()
    msg["cmd"], msg["version"] = cmd, 1
    msg["attrs"] = [(f"MPTCP_ATTR_{k.upper()}", v) for k, v in attrs.items()]
    msg.encode()
    return msg.data


def parsed(data: bytes):
    return event_of(data)


def by_pyroute2(data: bytes) -> Event | None:
    """The same event as pyroute2's generic decoder reads it: the reference."""
    msg = pm_event(data)
    msg.decode()
    kind = KIND_OF_CMD.get(msg["cmd"])
    if kind is None:
        return None
    get = msg.get_attr
    return Event(
        kind=kind,
        token=get("MPTCP_ATTR_TOKEN") or 0,
        saddr=unmapped(get("MPTCP_ATTR_SADDR4") or get("MPTCP_ATTR_SADDR6")),
        daddr=unmapped(get("MPTCP_ATTR_DADDR4") or get("MPTCP_ATTR_DADDR6")),
        sport=get("MPTCP_ATTR_SPORT"),
        dport=get("MPTCP_ATTR_DPORT"),
        loc_id=get("MPTCP_ATTR_LOC_ID"),
        rem_id=get("MPTCP_ATTR_REM_ID"),
        server_side=bool(get("MPTCP_ATTR_SERVER_SIDE")),
        backup=bool(get("MPTCP_ATTR_BACKUP")),
        error=get("MPTCP_ATTR_ERROR") or 0,
    )


V4 = st.ip_addresses(v=4).map(str)
V6 = st.ip_addresses(v=6).map(str)


@given(
    cmd=st.sampled_from([*KIND_OF_CMD, 4, 99]),
    attrs=st.fixed_dictionaries(
        {},
        optional={
            "token": st.integers(0, 2**32 - 1),
            "family": st.sampled_from([2, 10]),
            "loc_id": st.integers(0, 255),
            "rem_id": st.integers(0, 255),
            "saddr4": V4,
            "daddr4": V4,
            "saddr6": V6,
            "daddr6": V6,
            "sport": st.integers(0, 65535),
            "dport": st.integers(0, 65535),
            "backup": st.integers(0, 1),
            "error": st.integers(0, 255),
            "timeout": st.integers(0, 2**32 - 1),
            "if_idx": st.integers(0, 2**31),
            "server_side": st.integers(0, 1),
        },
    ),
)
def test_the_hand_reader_reads_every_event_as_pyroute2_does(cmd, attrs):
    data = event_bytes(cmd, **attrs)
    assert event_of(data) == by_pyroute2(data)


def test_an_event_with_a_value_of_the_wrong_size_is_unreadable_and_the_next_is_read():
    good = event_bytes(10, token=7, saddr4="10.1.0.10", sport=1, dport=2)
    bad = bytearray(good)
    at = bytes(bad).index(ipaddress.ip_address("10.1.0.10").packed) - 4
    bad[at : at + 2] = (6).to_bytes(2, "little")  # the address attribute says 2 bytes
    with pytest.raises(ValueError):
        event_of(bytes(bad))
    listener = object.__new__(EventListener)
    listener.sock, listener.unreadable = _Datagrams(bytes(bad) + good), 0
    assert [ev.token for ev in listener.read()] == [7]
    assert listener.unreadable == 1


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
