"""MPTCP option codec (RFC 8684) with the Trusted MPTCP extension, and its HMACs.

Pure functions over bytes. ``parse_mptcp`` turns one kind-30 option into a dataclass and
``encode`` turns it back; ``tcp_options`` splits a TCP header's option area. Anything
truncated or inconsistent raises ``OptionError`` with the reason. The extension's wire
format (T flag, ADDR_TRUST, the HMAC inputs) is specified in docs/wire-format.md.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import ipaddress
import struct
from dataclasses import dataclass

KIND_MPTCP = 30
MP_CAPABLE, MP_JOIN, DSS, ADD_ADDR, REMOVE_ADDR, MP_PRIO, MP_FAIL, MP_FASTCLOSE = range(8)
ADDR_TRUST_DEFAULT = 0x9  # unassigned by IANA; configurable (--addr-trust-subtype)

FLAG_ECHO = 0x1  # ADD_ADDR and ADDR_TRUST: E
FLAG_TRUST = 0x2  # ADD_ADDR: T, a reserved bit of RFC 8684's flag field
FLAG_WITHDRAW = 0x2  # ADDR_TRUST: W, the address is no longer protected


class OptionError(ValueError):
    """A truncated or inconsistent MPTCP option."""


@dataclass(frozen=True)
class MpCapable:
    version: int
    flags: int
    sender_key: int | None = None
    receiver_key: int | None = None
    data_len: int | None = None


@dataclass(frozen=True)
class MpJoin:
    """SYN: token + nonce; SYN/ACK: 8-byte HMAC + nonce; third ACK: 20-byte HMAC."""

    backup: bool
    addr_id: int | None = None
    token: int | None = None
    nonce: int | None = None
    hmac: bytes | None = None


@dataclass(frozen=True)
class Dss:
    flags: int
    raw: bytes


@dataclass(frozen=True)
class AddAddr:
    addr_id: int
    address: str
    port: int | None = None
    echo: bool = False
    trust: bool = False
    hmac: bytes | None = None  # 8 bytes when not an echo


@dataclass(frozen=True)
class RemoveAddr:
    addr_ids: tuple[int, ...]


@dataclass(frozen=True)
class MpPrio:
    backup: bool
    addr_id: int | None = None


@dataclass(frozen=True)
class MpFastclose:
    receiver_key: int


@dataclass(frozen=True)
class AddrTrust:
    """E=0, the notification: the segment's source address is protected for
    ``lifetime`` seconds. E=1, the answer: the same for the responder. W=1, the
    withdrawal: the sender's address with ID ``addr_id`` is no longer protected. The
    address is not on the wire (docs/wire-format.md); ``counter`` grows with every
    message a sender sends on a connection, so none can be replayed."""

    addr_id: int
    counter: int
    lifetime: int
    hmac: bytes
    echo: bool = False
    withdraw: bool = False


@dataclass(frozen=True)
class Unknown:
    subtype: int
    raw: bytes


# -- TCP option area -------------------------------------------------------------------
def tcp_options(area: bytes) -> list[tuple[int, bytes]]:
    """Split a TCP option area into (kind, whole option bytes); NOPs are dropped."""
    out, i = [], 0
    while i < len(area):
        kind = area[i]
        if kind == 0:  # end of option list
            break
        if kind == 1:
            i += 1
            continue
        if i + 1 >= len(area):
            raise OptionError(f"option kind {kind} cut off before its length")
        length = area[i + 1]
        if length < 2 or i + length > len(area):
            raise OptionError(f"option kind {kind} with bad length {length}")
        out.append((kind, bytes(area[i : i + length])))
        i += length
    return out


def mptcp_options(area: bytes, addr_trust_subtype: int = ADDR_TRUST_DEFAULT) -> list:
    return [parse_mptcp(o, addr_trust_subtype) for k, o in tcp_options(area) if k == KIND_MPTCP]


# -- one MPTCP option ---------------------------------------------------------------------
def _addr(raw: bytes) -> str:
    return str(ipaddress.ip_address(raw))


def parse_mptcp(opt: bytes, addr_trust_subtype: int = ADDR_TRUST_DEFAULT):
    if len(opt) < 3 or opt[0] != KIND_MPTCP:
        raise OptionError(f"not an MPTCP option: {opt[:3].hex()}")
    length = opt[1]
    if length != len(opt):
        raise OptionError(f"MPTCP option length field {length} but {len(opt)} bytes")
    subtype, low = opt[2] >> 4, opt[2] & 0x0F
    if subtype == MP_CAPABLE:
        return _mp_capable(opt, low)
    if subtype == MP_JOIN:
        return _mp_join(opt, low)
    if subtype == DSS:
        return Dss(opt[3] if length > 3 else 0, opt)
    if subtype == ADD_ADDR:
        return _add_addr(opt, low)
    if subtype == REMOVE_ADDR:
        return RemoveAddr(tuple(opt[3:]))
    if subtype == MP_PRIO:
        if length not in (3, 4):
            raise OptionError(f"MP_PRIO of length {length}")
        return MpPrio(bool(low & 1), opt[3] if length == 4 else None)
    if subtype == MP_FASTCLOSE:
        if length != 12:
            raise OptionError(f"MP_FASTCLOSE of length {length}")
        return MpFastclose(struct.unpack("!Q", opt[4:12])[0])
    if subtype == addr_trust_subtype:
        return _addr_trust(opt, low)
    return Unknown(subtype, opt)


def _mp_capable(opt: bytes, version: int) -> MpCapable:
    n = len(opt)
    if n < 4 or n not in (4, 12, 20, 22, 24):
        raise OptionError(f"MP_CAPABLE of length {n}")
    flags = opt[3]
    sender = struct.unpack("!Q", opt[4:12])[0] if n >= 12 else None
    receiver = struct.unpack("!Q", opt[12:20])[0] if n >= 20 else None
    data_len = struct.unpack("!H", opt[20:22])[0] if n >= 22 else None
    return MpCapable(version, flags, sender, receiver, data_len)


def _mp_join(opt: bytes, low: int) -> MpJoin:
    n, backup = len(opt), bool(low & 1)
    if n == 12:
        token, nonce = struct.unpack("!II", opt[4:12])
        return MpJoin(backup, opt[3], token=token, nonce=nonce)
    if n == 16:
        return MpJoin(backup, opt[3], hmac=opt[4:12], nonce=struct.unpack("!I", opt[12:16])[0])
    if n == 24:
        return MpJoin(backup, hmac=opt[4:24])
    raise OptionError(f"MP_JOIN of length {n}")


# (address length, has port, has HMAC) for each valid ADD_ADDR length
_ADD_ADDR_LAYOUTS = {
    8: (4, False, False),
    10: (4, True, False),
    16: (4, False, True),
    18: (4, True, True),
    20: (16, False, False),
    22: (16, True, False),
    28: (16, False, True),
    30: (16, True, True),
}


def _add_addr(opt: bytes, low: int) -> AddAddr:
    layout = _ADD_ADDR_LAYOUTS.get(len(opt))
    if layout is None:
        raise OptionError(f"ADD_ADDR of length {len(opt)}")
    alen, has_port, has_hmac = layout
    echo = bool(low & FLAG_ECHO)
    if echo == has_hmac:
        raise OptionError("ADD_ADDR: an echo carries no HMAC and an announcement needs one")
    i = 4 + alen
    port = struct.unpack("!H", opt[i : i + 2])[0] if has_port else None
    i += 2 if has_port else 0
    return AddAddr(
        addr_id=opt[3],
        address=_addr(opt[4 : 4 + alen]),
        port=port,
        echo=echo,
        trust=bool(low & FLAG_TRUST),
        hmac=opt[i : i + 8] if has_hmac else None,
    )


ADDR_TRUST_LEN = 18


def _addr_trust(opt: bytes, low: int) -> AddrTrust:
    if len(opt) != ADDR_TRUST_LEN:
        raise OptionError(f"ADDR_TRUST of length {len(opt)}, not {ADDR_TRUST_LEN}")
    echo, withdraw = bool(low & FLAG_ECHO), bool(low & FLAG_WITHDRAW)
    if echo and withdraw:
        raise OptionError("ADDR_TRUST: a withdrawal is not answered (E and W both set)")
    counter, lifetime = struct.unpack("!IH", opt[4:10])
    return AddrTrust(opt[3], counter, lifetime, opt[10:18], echo, withdraw)


# -- encoding --------------------------------------------------------------------------------
def encode(opt, addr_trust_subtype: int = ADDR_TRUST_DEFAULT) -> bytes:
    if isinstance(opt, AddAddr):
        if opt.echo == (opt.hmac is not None):
            raise OptionError("ADD_ADDR: an echo carries no HMAC and an announcement needs one")
        low = (FLAG_ECHO if opt.echo else 0) | (FLAG_TRUST if opt.trust else 0)
        body = bytes([opt.addr_id]) + ipaddress.ip_address(opt.address).packed
        if opt.port is not None:
            body += struct.pack("!H", opt.port)
        if opt.hmac is not None:
            body += _exact(opt.hmac, 8, "ADD_ADDR HMAC")
        return _option(ADD_ADDR, low, body)
    if isinstance(opt, AddrTrust):
        if opt.echo and opt.withdraw:
            raise OptionError("ADDR_TRUST: a withdrawal is not answered (E and W both set)")
        if not (0 <= opt.counter < 2**32 and 0 <= opt.lifetime < 2**16):
            raise OptionError("ADDR_TRUST: counter or lifetime out of range")
        body = bytes([opt.addr_id]) + struct.pack("!IH", opt.counter, opt.lifetime)
        body += _exact(opt.hmac, 8, "ADDR_TRUST HMAC")
        return _option(addr_trust_subtype, addr_trust_flags(opt), body)
    if isinstance(opt, RemoveAddr):
        if not opt.addr_ids:
            raise OptionError("REMOVE_ADDR needs at least one address ID")
        return _option(REMOVE_ADDR, 0, bytes(opt.addr_ids))
    if isinstance(opt, MpPrio):
        return _option(
            MP_PRIO, int(opt.backup), b"" if opt.addr_id is None else bytes([opt.addr_id])
        )
    if isinstance(opt, MpFastclose):
        return _option(MP_FASTCLOSE, 0, b"\x00" + struct.pack("!Q", opt.receiver_key))
    if isinstance(opt, MpCapable):
        body = bytes([opt.flags])
        for key in (opt.sender_key, opt.receiver_key):
            if key is not None:
                body += struct.pack("!Q", key)
        if opt.data_len is not None:
            body += struct.pack("!H", opt.data_len)
        return _option(MP_CAPABLE, opt.version, body)
    if isinstance(opt, MpJoin):
        if opt.token is not None:
            body = bytes([opt.addr_id]) + struct.pack("!II", opt.token, opt.nonce)
        elif opt.nonce is not None:
            body = (
                bytes([opt.addr_id])
                + _exact(opt.hmac, 8, "MP_JOIN HMAC")
                + struct.pack("!I", opt.nonce)
            )
        else:
            body = b"\x00" + _exact(opt.hmac, 20, "MP_JOIN HMAC")
        return _option(MP_JOIN, int(opt.backup), body)
    if isinstance(opt, Dss | Unknown):
        return opt.raw
    raise OptionError(f"cannot encode {type(opt).__name__}")


def _option(subtype: int, low: int, body: bytes) -> bytes:
    return bytes([KIND_MPTCP, 3 + len(body), (subtype << 4) | (low & 0x0F)]) + body


def _exact(value: bytes | None, n: int, what: str) -> bytes:
    if value is None or len(value) != n:
        raise OptionError(f"{what} must be {n} bytes")
    return value


# -- keys and HMACs (RFC 8684 3.1, 3.2, 3.4.1; docs/wire-format.md) ----------------------------
def token_of(key: int) -> int:
    """The connection token a key gives: the most significant 32 bits of SHA-256(key)."""
    return struct.unpack("!I", hashlib.sha256(struct.pack("!Q", key)).digest()[:4])[0]


def _hmac8(sender_key: int, receiver_key: int, msg: bytes) -> bytes:
    key = struct.pack("!QQ", sender_key, receiver_key)
    return hmac.new(key, msg, hashlib.sha256).digest()[-8:]


# Domain separation: every extension HMAC starts with its own label.
LABEL_ADD_ADDR_T = b"tmptcp add-addr-t v2"
LABEL_ADDR_TRUST = b"tmptcp addr-trust v2"


def add_addr_hmac(
    sender_key: int,
    receiver_key: int,
    addr_id: int,
    address: str,
    port: int | None = None,
    trust: bool = False,
) -> bytes:
    """ADD_ADDR's truncated HMAC. Without T exactly RFC 8684's (ID, address, port); with T
    over the extension's label and the flags as well, so neither can pass for the other."""
    msg = bytes([addr_id]) + ipaddress.ip_address(address).packed + struct.pack("!H", port or 0)
    if trust:
        msg = LABEL_ADD_ADDR_T + bytes([(ADD_ADDR << 4) | FLAG_TRUST]) + msg
    return _hmac8(sender_key, receiver_key, msg)


def addr_trust_flags(opt: AddrTrust) -> int:
    return (FLAG_ECHO if opt.echo else 0) | (FLAG_WITHDRAW if opt.withdraw else 0)


def addr_trust_hmac(
    sender_key: int,
    receiver_key: int,
    opt: AddrTrust,
    address: str,
    src: str,
    dst: str,
    subtype: int = ADDR_TRUST_DEFAULT,
) -> bytes:
    """ADDR_TRUST's truncated HMAC over the label, subtype and flags, address ID, the
    address it speaks of, the carrying segment's source and destination, the counter
    and the lifetime (``opt.hmac`` is not read)."""
    msg = (
        LABEL_ADDR_TRUST
        + bytes([(subtype << 4) | addr_trust_flags(opt), opt.addr_id])
        + b"".join(ipaddress.ip_address(a).packed for a in (address, src, dst))
        + struct.pack("!IH", opt.counter, opt.lifetime)
    )
    return _hmac8(sender_key, receiver_key, msg)


def signed_addr_trust(
    sender_key: int,
    receiver_key: int,
    unsigned: AddrTrust,
    address: str,
    src: str,
    dst: str,
    subtype: int = ADDR_TRUST_DEFAULT,
) -> AddrTrust:
    """``unsigned`` with its HMAC filled in."""
    mac = addr_trust_hmac(sender_key, receiver_key, unsigned, address, src, dst, subtype)
    return dataclasses.replace(unsigned, hmac=mac)
