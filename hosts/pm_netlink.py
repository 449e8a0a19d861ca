"""The kernel's userspace MPTCP path manager over generic netlink (family ``mptcp_pm``).

pyroute2 0.9.7 wraps only the endpoint and limit commands, so the userspace-PM commands
and the event group get their own attribute maps here (include/uapi/linux/mptcp.h).
"""

from __future__ import annotations

import ipaddress
import socket
import struct

from pyroute2.netlink import NLM_F_ACK, NLM_F_REQUEST, genlmsg, nla
from pyroute2.netlink.generic import GenericNetlinkSocket

from hosts.events import KIND_OF_CMD, Event, unmapped
from hosts.plain_netlink import HEADER, NetlinkRequestError, PlainNetlink, attributes, split

FAMILY = "mptcp_pm"
NETLINK_GENERIC, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP = 16, 270, 1
EVENTS_GROUP = "mptcp_pm_events"

CMD_SET_FLAGS, CMD_ANNOUNCE, CMD_REMOVE, CMD_SUBFLOW_CREATE, CMD_SUBFLOW_DESTROY = 7, 8, 9, 10, 11
FLAG_SIGNAL, FLAG_SUBFLOW, FLAG_BACKUP = 1, 2, 4


class pm_addr(nla):
    prefix = "MPTCP_PM_ADDR_ATTR_"
    nla_map = (
        ("MPTCP_PM_ADDR_ATTR_UNSPEC", "none"),
        ("MPTCP_PM_ADDR_ATTR_FAMILY", "uint16"),
        ("MPTCP_PM_ADDR_ATTR_ID", "uint8"),
        ("MPTCP_PM_ADDR_ATTR_ADDR4", "ip4addr"),
        ("MPTCP_PM_ADDR_ATTR_ADDR6", "ip6addr"),
        ("MPTCP_PM_ADDR_ATTR_PORT", "uint16"),
        ("MPTCP_PM_ADDR_ATTR_FLAGS", "uint32"),
        ("MPTCP_PM_ADDR_ATTR_IF_IDX", "int32"),
    )


class pm_cmd(genlmsg):
    prefix = "MPTCP_PM_ATTR_"
    nla_map = (
        ("MPTCP_PM_ATTR_UNSPEC", "none"),
        ("MPTCP_PM_ATTR_ADDR", "pm_addr|nested"),
        ("MPTCP_PM_ATTR_RCV_ADD_ADDRS", "uint32"),
        ("MPTCP_PM_ATTR_SUBFLOWS", "uint32"),
        ("MPTCP_PM_ATTR_TOKEN", "uint32"),
        ("MPTCP_PM_ATTR_LOC_ID", "uint8"),
        ("MPTCP_PM_ATTR_ADDR_REMOTE", "pm_addr|nested"),
    )
    pm_addr = pm_addr


class pm_event(genlmsg):
    prefix = "MPTCP_ATTR_"
    nla_map = (
        ("MPTCP_ATTR_UNSPEC", "none"),
        ("MPTCP_ATTR_TOKEN", "uint32"),
        ("MPTCP_ATTR_FAMILY", "uint16"),
        ("MPTCP_ATTR_LOC_ID", "uint8"),
        ("MPTCP_ATTR_REM_ID", "uint8"),
        ("MPTCP_ATTR_SADDR4", "ip4addr"),
        ("MPTCP_ATTR_SADDR6", "ip6addr"),
        ("MPTCP_ATTR_DADDR4", "ip4addr"),
        ("MPTCP_ATTR_DADDR6", "ip6addr"),
        ("MPTCP_ATTR_SPORT", "be16"),
        ("MPTCP_ATTR_DPORT", "be16"),
        ("MPTCP_ATTR_BACKUP", "uint8"),
        ("MPTCP_ATTR_ERROR", "uint8"),
        ("MPTCP_ATTR_FLAGS", "uint16"),
        ("MPTCP_ATTR_TIMEOUT", "uint32"),
        ("MPTCP_ATTR_IF_IDX", "uint32"),
        ("MPTCP_ATTR_RESET_REASON", "uint32"),
        ("MPTCP_ATTR_RESET_FLAGS", "uint32"),
        ("MPTCP_ATTR_SERVER_SIDE", "uint8"),
    )


class PathManagerError(RuntimeError):
    pass


def _addr_attrs(
    address: str, addr_id: int | None = None, port: int | None = None, flags: int | None = None
) -> dict:
    ip = ipaddress.ip_address(address)
    attrs = [
        ("MPTCP_PM_ADDR_ATTR_FAMILY", socket.AF_INET if ip.version == 4 else socket.AF_INET6),
        ("MPTCP_PM_ADDR_ATTR_ADDR4" if ip.version == 4 else "MPTCP_PM_ADDR_ATTR_ADDR6", str(ip)),
    ]
    if addr_id is not None:
        attrs.append(("MPTCP_PM_ADDR_ATTR_ID", addr_id))
    if port is not None:
        attrs.append(("MPTCP_PM_ADDR_ATTR_PORT", port))
    if flags is not None:
        attrs.append(("MPTCP_PM_ADDR_ATTR_FLAGS", flags))
    return {"attrs": attrs}


class PathManager:
    """Commands to the userspace path manager of this network namespace. pyroute2 finds
    the family once; the commands go on a plain socket (hosts.plain_netlink: they are on
    the critical path of every subflow the agent opens)."""

    def __init__(self):
        probe = GenericNetlinkSocket()
        try:
            probe.bind(FAMILY, pm_cmd)
            self.family_id = probe.prid
        except Exception as e:
            raise PathManagerError(f"generic netlink family {FAMILY} unavailable: {e}") from e
        finally:
            probe.close()
        self.sock = PlainNetlink(NETLINK_GENERIC)

    def close(self) -> None:
        self.sock.close()

    def _request(self, cmd: int, attrs: list) -> None:
        msg = pm_cmd()
        msg["cmd"] = cmd
        msg["version"] = 1
        msg["attrs"] = attrs
        try:
            self.sock.request(msg, self.family_id, NLM_F_REQUEST | NLM_F_ACK)
        except (OSError, ValueError, struct.error) as e:  # the kernel's errno, or a bad value
            raise PathManagerError(f"mptcp_pm command {cmd} failed: {e}") from e

    def announce(self, token: int, addr_id: int, address: str) -> None:
        self._request(
            CMD_ANNOUNCE,
            [
                ("MPTCP_PM_ATTR_TOKEN", token),
                ("MPTCP_PM_ATTR_ADDR", _addr_attrs(address, addr_id, flags=FLAG_SIGNAL)),
            ],
        )

    def remove(self, token: int, addr_id: int) -> None:
        self._request(
            CMD_REMOVE, [("MPTCP_PM_ATTR_TOKEN", token), ("MPTCP_PM_ATTR_LOC_ID", addr_id)]
        )

    def subflow_create(
        self, token: int, local_id: int, local: str, remote: str, rport: int, backup: bool = False
    ) -> None:
        flags = FLAG_BACKUP if backup else None
        self._request(
            CMD_SUBFLOW_CREATE,
            [
                ("MPTCP_PM_ATTR_TOKEN", token),
                ("MPTCP_PM_ATTR_ADDR", _addr_attrs(local, local_id, flags=flags)),
                ("MPTCP_PM_ATTR_ADDR_REMOTE", _addr_attrs(remote, port=rport)),
            ],
        )

    def subflow_destroy(self, token: int, local: str, lport: int, remote: str, rport: int) -> None:
        self._request(
            CMD_SUBFLOW_DESTROY,
            [
                ("MPTCP_PM_ATTR_TOKEN", token),
                ("MPTCP_PM_ATTR_ADDR", _addr_attrs(local, port=lport)),
                ("MPTCP_PM_ATTR_ADDR_REMOTE", _addr_attrs(remote, port=rport)),
            ],
        )

    def set_backup(
        self, token: int, local: str, lport: int, remote: str, rport: int, backup: bool
    ) -> None:
        self._request(
            CMD_SET_FLAGS,
            [
                ("MPTCP_PM_ATTR_TOKEN", token),
                (
                    "MPTCP_PM_ATTR_ADDR",
                    _addr_attrs(local, port=lport, flags=FLAG_BACKUP if backup else 0),
                ),
                ("MPTCP_PM_ATTR_ADDR_REMOTE", _addr_attrs(remote, port=rport)),
            ],
        )


class EventListener:
    """Subscribes to the path-manager events; while subscribed, the kernel's userspace PM
    accepts joins and ADD_ADDRs (platform notes).

    Events are read from a plain netlink socket, not through pyroute2: pyroute2 reads
    ahead into its own buffer, so select() on its socket can sit on an event until the
    next one arrives (seen: ``established`` held until the connection closed). Here the
    kernel's socket buffer is the only buffer, and select() tells the truth."""

    def __init__(self):
        probe = GenericNetlinkSocket()
        try:
            probe.bind(FAMILY, pm_event)
            group = probe.mcast_groups[EVENTS_GROUP]
        except Exception as e:
            raise PathManagerError(f"cannot find {FAMILY}/{EVENTS_GROUP}: {e}") from e
        finally:
            probe.close()
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_GENERIC)
        self.sock.bind((0, 0))
        self.sock.setsockopt(SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, group)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.sock.setblocking(False)
        self.unreadable = 0  # events, or reads' rests, that could not be read (never seen)

    def fileno(self) -> int:
        return self.sock.fileno()

    def read(self) -> list[Event]:
        out = []
        while True:
            try:
                data = self.sock.recv(1 << 16)
            except BlockingIOError:
                return out
            except OSError as e:  # ENOBUFS: events were lost; say so, keep going
                raise PathManagerError(f"path-manager events lost: {e}") from e
            try:
                for _, _, _, body in split(data):
                    try:
                        ev = event_of(body)
                    except (NetlinkRequestError, struct.error, ValueError):
                        self.unreadable += 1  # this event only: the next is framed apart
                        continue
                    if ev is not None:
                        out.append(ev)
            except NetlinkRequestError:
                # The rest of this read cannot be framed; the events before it stand.
                self.unreadable += 1

    def close(self) -> None:
        self.sock.close()


# include/uapi/linux/mptcp.h: enum mptcp_event_attr (pm_event above names them the same)
ATTR_TOKEN, ATTR_LOC_ID, ATTR_REM_ID = 1, 3, 4
ATTR_SADDR4, ATTR_SADDR6, ATTR_DADDR4, ATTR_DADDR6 = 5, 6, 7, 8
ATTR_SPORT, ATTR_DPORT, ATTR_BACKUP, ATTR_ERROR, ATTR_SERVER_SIDE = 9, 10, 11, 12, 18
GENL_HEADER = 4  # cmd, version, reserved


def event_of(message: bytes) -> Event | None:
    """The event in one generic netlink message (header included), or None for a command
    that is not an event we know. A value of the wrong size raises struct.error or
    ValueError. Read by hand on the agent's hot path (hosts.plain_netlink.attributes);
    pm_event is the same format in pyroute2's terms, and the tests hold one to the other."""
    kind = (
        KIND_OF_CMD.get(message[HEADER.size]) if len(message) >= HEADER.size + GENL_HEADER else None
    )
    if kind is None:
        return None
    attrs = attributes(message, HEADER.size + GENL_HEADER)

    def number(attr: int, fmt: str) -> int | None:
        value = attrs.get(attr)
        return None if value is None else struct.unpack(fmt, value)[0]

    def address(v4: int, v6: int) -> str | None:
        if v4 in attrs:
            return socket.inet_ntop(socket.AF_INET, attrs[v4])
        if v6 in attrs:
            return unmapped(socket.inet_ntop(socket.AF_INET6, attrs[v6]))
        return None

    return Event(
        kind=kind,
        token=number(ATTR_TOKEN, "=I") or 0,
        saddr=address(ATTR_SADDR4, ATTR_SADDR6),
        daddr=address(ATTR_DADDR4, ATTR_DADDR6),
        sport=number(ATTR_SPORT, ">H"),
        dport=number(ATTR_DPORT, ">H"),
        loc_id=number(ATTR_LOC_ID, "=B"),
        rem_id=number(ATTR_REM_ID, "=B"),
        server_side=bool(number(ATTR_SERVER_SIDE, "=B")),
        backup=bool(number(ATTR_BACKUP, "=B")),
        error=number(ATTR_ERROR, "=B") or 0,
    )
