"""The Trusted MPTCP agent: one process per host, inside the host's network namespace.

    python -m hosts.agent --url http://172.31.254.1:PORT --key-file KEY --state FILE
                          [--addr 10.1.0.10 --addr 10.2.0.10] [--enforce] [--ttl 6]

It makes the kernel use the userspace path manager, listens to its events and drives it
(announce, subflows), learns its own addresses' trust from the SAVI controller's signed
export, exchanges trust with the peer (ADDR_TRUST, ADD_ADDR's T flag) by rewriting only
the host's own control packets in NFQUEUE, keeps the TPBT and writes it to ``--state``
(read it with ``python -m hosts.tpbt_show``). Stopping it (SIGTERM) removes its rules;
connections keep working as plain MPTCP.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import logging
import os
import queue
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from hosts import firewall
from hosts.extension import Announce, Carry, CreateSubflow, DestroySubflow, Extension
from hosts.options import (
    ADDR_TRUST_DEFAULT,
    KIND_MPTCP,
    AddAddr,
    AddrTrust,
    MpCapable,
    MpJoin,
    OptionError,
    encode,
    mptcp_options,
    parse_mptcp,
    tcp_options,
)
from hosts.pm_netlink import EventListener, PathManager, PathManagerError
from hosts.segment import parse, with_options
from hosts.sniffer import Sniffer
from hosts.tpbt import Tpbt
from hosts.trust_client import TrustError, fetch, trusted_addresses

LOG = logging.getLogger("agent")
TICK = 0.2
RETRIES, RETRY_DELAY = 100, 0.05


class Agent:
    def __init__(self, args):
        self.args = args
        self.ext = Extension(
            {a: i for i, a in enumerate(args.addr, start=1)},
            Tpbt(),
            ttl=args.ttl,
            enforce=args.enforce,
            addr_trust_subtype=args.addr_trust_subtype,
        )
        self.carries: dict[tuple, list[bytes]] = {}  # subflow -> encoded options to carry
        self.retry: list = []  # (due, tries, action) of path-manager commands to repeat
        self.nft_sets: dict[str, set] = {"carriers": set(), "guarded": set()}
        self.trust_updates: queue.Queue = queue.Queue()
        self.wake_r, self.wake_w = os.pipe()
        self.stopping = False
        self.stats = {"queued_out": 0, "queued_in": 0, "rewritten": 0, "dropped": 0,
                      "sniffed": 0, "pm_errors": 0, "injected": 0}  # fmt: skip

    # -- set-up ----------------------------------------------------------------------------
    def start(self) -> None:
        use_userspace_pm()
        # The namespace's limits also bound what a userspace PM may accept (default 2).
        subprocess.run(["ip", "mptcp", "limits", "set", "subflows", "8", "add_addr_accepted", "8"],
                       check=True, timeout=10)  # fmt: skip
        existing = subprocess.run(["ss", "-HMn"], capture_output=True, text=True).stdout
        if existing.strip():
            LOG.warning("%d MPTCP connections existed before this agent started; their keys "
                        "are unknown, so they stay plain MPTCP", len(existing.splitlines()))  # fmt: skip
        self.pm = PathManager()
        self.events = EventListener()
        self.sniffer = Sniffer(self.args.addr_trust_subtype)
        # One raw socket per address, bound to it: the kernel routes a raw packet by the
        # socket's address, not the header's, and each address has its own route (source
        # routing). Unbound, a packet from the unprotected address left through the SAVI
        # network, whose switch dropped it as spoofed.
        self.raw_sockets = {}
        for addr in self.args.addr:
            raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, firewall.MARK_INJECTED)
            raw.bind((addr, 0))
            self.raw_sockets[addr] = raw
        firewall.install()
        from netfilterqueue import NetfilterQueue

        self.q_out, self.q_in = NetfilterQueue(), NetfilterQueue()
        self.q_out.bind(firewall.QUEUE_OUT, self.on_outgoing)
        self.q_in.bind(firewall.QUEUE_IN, self.on_incoming)
        threading.Thread(target=self.trust_loop, daemon=True).start()

    def stop(self) -> None:
        firewall.remove()
        for closer in (self.q_out.unbind, self.q_in.unbind, self.events.close, self.pm.close,
                       self.sniffer.close):  # fmt: skip
            try:
                closer()
            except Exception as e:  # stopping anyway; say what failed
                LOG.warning("while stopping: %s", e)

    # -- trust from the controller (its own thread: a long poll) ------------------------------
    def trust_loop(self) -> None:
        key = Path(self.args.key_file).read_bytes().strip()
        seq = None
        while not self.stopping:
            try:
                doc = fetch(self.args.url, key, wait_seq=seq, timeout=self.args.ttl / 2)
                seq = doc["seq"]
                self.trust_updates.put(trusted_addresses(doc))
            except TrustError as e:
                LOG.warning("trust: %s", e)
                self.trust_updates.put({})  # unverifiable: trust nothing
                time.sleep(1)
            os.write(self.wake_w, b"x")

    # -- main loop ------------------------------------------------------------------------------
    def run(self) -> None:
        fds = [self.events, self.sniffer, self.q_out.get_fd(), self.q_in.get_fd(), self.wake_r]
        next_tick = time.monotonic()
        while not self.stopping:
            ready, _, _ = select.select(fds, [], [], RETRY_DELAY if self.retry else TICK)
            self.retry_due()
            now = time.time()
            for fd in ready:
                if fd is self.events:
                    try:
                        events = self.events.read()
                    except PathManagerError as e:
                        LOG.error("%s", e)
                        continue
                    for ev in events:
                        LOG.debug("event %s", ev)
                        self.do(self.ext.on_event(ev, now))
                elif fd is self.sniffer:
                    self.on_sniffed(now)
                elif fd == self.wake_r:
                    os.read(self.wake_r, 4096)
                    while not self.trust_updates.empty():
                        self.do(self.ext.on_trust(self.trust_updates.get(), now))
                elif fd == self.q_out.get_fd():
                    self.q_out.run(block=False)
                else:
                    self.q_in.run(block=False)
            if time.monotonic() >= next_tick:
                next_tick = time.monotonic() + TICK
                self.do(self.ext.tick(now))
                self.sync_sets(now)
                self.write_state(now)

    def do(self, actions: list, tries: int = 0) -> None:
        for a in actions:
            if isinstance(a, Announce | CreateSubflow) and a.token not in self.ext.conns:
                continue  # the connection is gone
            try:
                if isinstance(a, Announce):
                    self.pm.announce(a.token, a.addr_id, a.address)
                elif isinstance(a, CreateSubflow):
                    self.pm.subflow_create(a.token, a.local_id, a.local, a.remote, a.rport)
                elif isinstance(a, DestroySubflow):
                    self.pm.subflow_destroy(a.token, *a.subflow)
                elif isinstance(a, Carry):
                    self.carry(a.subflow, encode(a.option, self.args.addr_trust_subtype))
                LOG.info("%s", a)
            except PathManagerError as e:
                # Until the MPTCP connection is fully established (the peer acknowledged
                # the third ACK), announce and subflow creation fail: try again shortly.
                if tries < RETRIES and isinstance(a, Announce | CreateSubflow):
                    self.retry.append((time.monotonic() + RETRY_DELAY, tries + 1, a))
                    LOG.debug("%s: %s; retrying", a, e)
                else:
                    self.stats["pm_errors"] += 1
                    LOG.warning("%s: %s", a, e)
        self.sync_sets(time.time())

    def retry_due(self) -> None:
        now, due = time.monotonic(), []
        for item in list(self.retry):
            if item[0] <= now:
                self.retry.remove(item)
                due.append(item)
        for _, tries, action in due:
            self.do([action], tries)

    def carry(self, subflow, option: bytes) -> None:
        pending = self.carries.setdefault(subflow, [])
        if option not in pending:
            pending.append(option)

    def sync_sets(self, now: float) -> None:
        wanted = {"carriers": set(self.carries),
                  "guarded": self.ext.guarded(now) if self.args.enforce else set()}  # fmt: skip
        # guarded holds incoming orientation: (remote, rport, local, lport)
        wanted["guarded"] = {(r, rp, lo, lp) for (lo, lp, r, rp) in wanted["guarded"]}
        for name, elements in wanted.items():
            if elements != self.nft_sets[name]:
                firewall.set_elements(name, elements, self.nft_sets[name])
                self.nft_sets[name] = elements

    # -- sniffed copies: keys and ADDR_TRUST ----------------------------------------------------
    def on_sniffed(self, now: float) -> None:
        for seg in self.sniffer.read():
            self.stats["sniffed"] += 1
            try:
                opts = mptcp_options(seg.options, self.args.addr_trust_subtype)
            except OptionError:
                continue
            for opt in opts:
                if isinstance(opt, MpCapable) and opt.receiver_key is not None:
                    self.do(self.ext.on_keys(opt.sender_key, opt.receiver_key))
                elif isinstance(opt, MpJoin):
                    outgoing = seg.src in self.ext.local_addrs
                    if opt.token is not None and seg.flags & 0x12 == 0x02:  # SYN
                        self.ext.on_join_syn(seg.four_tuple, opt.token, outgoing)
                    elif opt.token is None and opt.nonce is None:  # the third ACK
                        self.do(self.ext.on_join_ack(seg.four_tuple, outgoing, now))
                elif isinstance(opt, AddrTrust) and seg.dst in self.ext.local_addrs:
                    self.do(self.ext.on_addr_trust(seg.four_tuple, opt, now))

    # -- NFQUEUE: our own control packets out, control packets in -------------------------------
    def on_outgoing(self, pkt) -> None:
        self.stats["queued_out"] += 1
        self._verdict(pkt, self.rewrite_outgoing)

    def on_incoming(self, pkt) -> None:
        self.stats["queued_in"] += 1
        self._verdict(pkt, self.check_incoming)

    def _verdict(self, pkt, decide) -> None:
        """Apply ``decide(raw, segment) -> (verdict, new packet or None)`` to a queued
        packet. A packet we cannot handle passes unchanged: never let it kill the agent."""
        verdict = "accept"
        try:
            raw = pkt.get_payload()
            verdict, new = decide(raw, parse(raw))
            if new is not None:
                pkt.set_payload(new)
                self.stats["rewritten"] += 1
        except Exception as e:
            LOG.warning("queued packet passed unchanged: %s", e)
        if verdict == "drop":
            self.stats["dropped"] += 1
            pkt.drop()
        else:
            pkt.accept()

    def rewrite_outgoing(self, raw: bytes, seg):
        """('accept' or 'drop', new packet or None) for one of our own queued packets."""
        now = time.time()
        subtype = self.args.addr_trust_subtype
        out = seg.four_tuple
        changed, relocated = False, []
        area = b""
        for kind, opt in tcp_options(seg.options):
            if kind == KIND_MPTCP and opt[2] >> 4 == 3:
                new = self.ext.outgoing_add_addr(out, parse_add_addr(opt, subtype), now)
                if new is not None:
                    opt, changed = encode(new, subtype), True
                target = self.ext.relocation(out, now) if seg.pure_ack else None
                if target is not None:  # the kernel picked an untrusted subflow: move it
                    relocated.append((target, opt))
                    continue
            area += opt if kind != 8 else b"\x01\x01" + opt
        if relocated:
            for target, opt in relocated:
                self.carry(target, opt)
            self.sync_sets(now)
            LOG.info("moved %d control option(s) from %s to %s", len(relocated), out,
                     relocated[0][0])  # fmt: skip
            # A pure ACK that only carried the moved option is not needed any more.
            if not any(k == KIND_MPTCP for k, _ in tcp_options(area)):
                return "drop", None
            changed = True
        pending = self.carries.pop(out, None)
        if pending:
            self.nft_sets["carriers"].discard(out)  # the rule deleted it in the packet path
            # Right after the timestamps: where the sniffer's filter looks for ADDR_TRUST.
            ts, rest = _split_timestamps(area)
            trial = ts + b"".join(pending) + rest
            if seg.pure_ack and len(trial) <= 40:
                area, changed = trial, True
            else:  # a data segment, or no room: empty ACKs right behind it carry them
                for opt in pending:
                    self.inject(with_options(_empty(raw, seg), seg, ts + opt))
        return "accept", (with_options(raw, seg, area) if changed else None)

    def inject(self, packet: bytes) -> None:
        seg = parse(packet)
        self.raw_sockets[seg.src].sendto(packet, (seg.dst, 0))
        self.stats["injected"] += 1

    def check_incoming(self, raw: bytes, seg):
        now = time.time()
        subtype = self.args.addr_trust_subtype
        options = tcp_options(seg.options)
        subtypes = [opt[2] >> 4 for kind, opt in options if kind == KIND_MPTCP and len(opt) > 2]
        drop = self.ext.enforcement_drop(seg.four_tuple, subtypes, now)
        if drop:
            LOG.info("dropped from %s: %s", seg.four_tuple, drop)
            return "drop", None
        area, changed = b"", False
        for kind, opt in options:
            if kind == KIND_MPTCP and opt[2] >> 4 == 3:
                verdict, new = self.ext.incoming_add_addr(seg.four_tuple,
                                                          parse_add_addr(opt, subtype), now)  # fmt: skip
                if verdict == "drop":
                    LOG.info("dropped ADD_ADDR from %s: %s", seg.four_tuple, new)
                    return "drop", None
                if new is not None:
                    opt, changed = encode(new, subtype), True
            area += opt if kind != 8 else b"\x01\x01" + opt
        return "accept", (with_options(raw, seg, area) if changed else None)

    # -- state for `python -m hosts.tpbt_show` ----------------------------------------------------
    def write_state(self, now: float) -> None:
        if not self.args.state:
            return
        state = {
            "time": now,
            "table": self.ext.tpbt.render(now),
            "entries": json.loads(self.ext.tpbt.to_json(now)),
            "local_trusted": sorted(self.ext.tpbt.trusted_local(now)),
            "connections": len(self.ext.conns),
            "counters": vars(self.ext.counters),
            "stats": self.stats,
        }
        tmp = Path(self.args.state + ".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(self.args.state)


def use_userspace_pm() -> None:
    """Select the kernel's userspace path manager in this namespace: the string sysctl
    ``net.mptcp.path_manager`` where the kernel has it, else the older ``pm_type``."""
    subprocess.run(["sysctl", "-qw", "net.mptcp.enabled=1"], check=True)
    if Path("/proc/sys/net/mptcp/path_manager").exists():
        subprocess.run(["sysctl", "-qw", "net.mptcp.path_manager=userspace"], check=True)
    else:
        subprocess.run(["sysctl", "-qw", "net.mptcp.pm_type=1"], check=True)


def parse_add_addr(opt: bytes, subtype: int) -> AddAddr:
    parsed = parse_mptcp(opt, subtype)
    if not isinstance(parsed, AddAddr):
        raise OptionError("not an ADD_ADDR")
    return parsed


def _empty(raw: bytes, seg) -> bytes:
    """An empty ACK right behind ``raw``: its headers, no payload, ACK only, and the
    sequence number just after its data, so the peer takes it as in-window and current."""
    t = seg.tcp_at
    doff = (raw[t + 12] >> 4) * 4
    out = bytearray(raw[: t + doff])
    out[t + 13] = 0x10
    seq = (int.from_bytes(out[t + 4 : t + 8], "big") + seg.payload_len) & 0xFFFFFFFF
    out[t + 4 : t + 8] = seq.to_bytes(4, "big")
    return bytes(out)


def _split_timestamps(area: bytes) -> tuple[bytes, bytes]:
    """(NOP NOP TIMESTAMP, every other option) of an option area (NOPs re-added)."""
    ts, rest = b"", b""
    for kind, opt in tcp_options(area):
        if kind == 8:
            ts = b"\x01\x01" + opt
        else:
            rest += opt
    return ts, rest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m hosts.agent", description=__doc__.split("\n")[0])
    ap.add_argument("--url", required=True, help="the SAVI controller's REST base URL")
    ap.add_argument("--key-file", required=True, help="the topology's trust key")
    ap.add_argument("--addr", action="append", required=True,
                    help="a local address the agent manages (repeat; the first gets ID 1)")  # fmt: skip
    ap.add_argument("--state", help="file the live TPBT is written to (JSON)")
    ap.add_argument("--enforce", action="store_true",
                    help="drop ADD_ADDR/RM_ADDR/MP_PRIO/MP_FASTCLOSE on untrusted subflows")  # fmt: skip
    ap.add_argument("--ttl", type=float, default=6.0,
                    help="seconds a peer's trust notification stays valid (6)")  # fmt: skip
    ap.add_argument("--addr-trust-subtype", type=lambda s: int(s, 0), default=ADDR_TRUST_DEFAULT,
                    help="ADDR_TRUST's MPTCP subtype (0x9)")  # fmt: skip
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")  # fmt: skip
    if not 9 <= args.addr_trust_subtype <= 15:
        ap.error("--addr-trust-subtype must be an unassigned subtype, 0x9..0xf")
    if os.geteuid() != 0:
        print("agent: needs root (netlink path manager, nftables, NFQUEUE)", file=sys.stderr)
        return 2
    if not Path(args.key_file).is_file():
        print(f"agent: {args.key_file}: no such key file", file=sys.stderr)
        return 2
    faulthandler.register(signal.SIGUSR2)  # kill -USR2 <pid>: where is it stuck?
    agent = Agent(args)
    try:
        agent.start()
    except (PathManagerError, firewall.FirewallError, OSError, subprocess.CalledProcessError) as e:
        print(f"agent: cannot start: {e}", file=sys.stderr)
        return 1

    def stop(*_):
        agent.stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        agent.run()
    finally:
        agent.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
