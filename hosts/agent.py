"""The Trusted MPTCP agent: one process per host, inside the host's network namespace.

    python -m hosts.agent --url http://172.31.254.1:PORT --pubkey-file RUN/trust.pub --state FILE
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
import math
import os
import queue
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from hosts import firewall
from hosts.events import EventKind
from hosts.extension import Announce, Carry, CreateSubflow, Extension, Scope, Tuple4, Verdict
from hosts.guard import BpfError, CarryMode, Guard, GuardError, allowed_subtypes
from hosts.options import (
    ADDR_TRUST_DEFAULT,
    AddrTrust,
    OptionError,
    Unknown,
    encode,
    mptcp_options,
)
from hosts.pm_netlink import EventListener, PathManager, PathManagerError
from hosts.rewrite import judge_incoming, plan_outgoing
from hosts.segment import parse, with_options
from hosts.sniffer import Sniffer
from hosts.sock_diag import SockDiag
from hosts.state_file import StateWriter
from hosts.tpbt import HistoryJson, TrustHistory
from hosts.trust_client import (
    TrustError,
    TrustRejected,
    TrustUnavailable,
    Verifier,
    address_owners,
    fetch_document,
    load_public_key,
    trusted_addresses,
)

LOG = logging.getLogger("agent")
# s: the tick's period while anything is in motion (a young connection, options waiting
# for a carrier, anything handled since the last tick). Otherwise the agent ticks when
# the pure core next has something due (Extension.next_due) and at least every
# STATE_EVERY: five wake-ups a second of two idle agents took 0.7 % of the core the
# hosts' traffic runs on (perf, experiments.bench --only goodput_profile).
TICK = 0.2
# s: the longest the state file goes without a write when nothing a reader waits for has
# changed (only lifetimes and the classifier's counters). Written every tick, encoding
# and writing an unchanged state cost each agent 5-10 ms of CPU a second, idle or not:
# about 1 % of the core the hosts' traffic runs on, taken from every transfer.
STATE_EVERY = 1.0
RETRIES, RETRY_DELAY = 100, 0.05
MAX_CARRIED = 8  # options waiting for one subflow; more means the subflow is stuck
# s: how long options nothing waits for wait for a segment without payload before any
# segment of the subflow may take them. The kick's ACK comes at once (a second kick
# within the kernel's challenge-ACK limit is a window kick: see kick()); only a kick the
# kernel held back with no window kick possible (the peer's handshake not seen) leaves
# them waiting, and the tick kicks again.
EMPTY_WAIT = 1.0
MAX_RETRIES_QUEUED = 256
MAX_ANNOUNCED_SHOWN = 64  # distinct announced addresses kept by name in the state file


@dataclass
class Waiting:
    """Encoded options waiting to ride one subflow."""

    since: float  # monotonic: when the first came
    options: list[bytes] = field(default_factory=list)
    urgent: bool = False  # something waits for one of them (see extension.Carry)
    kicked: float = -math.inf  # monotonic: the subflow's last kick for them

    def mode(self, now: float) -> CarryMode:
        """Which of the subflow's segments go to the agent to take them: any, when
        something waits for them or no segment without payload came in EMPTY_WAIT;
        else only those without payload, so a sender's data stays in the kernel."""
        if self.urgent or now - self.since >= EMPTY_WAIT:
            return CarryMode.ANY
        return CarryMode.EMPTY


class Agent:
    def __init__(self, args, pubkey):
        self.args = args
        self.pubkey = pubkey
        self.ext = Extension(
            {a: i for i, a in enumerate(args.addr, start=1)},
            ttl=args.ttl,
            enforce=args.enforce,
            addr_trust_subtype=args.addr_trust_subtype,
        )
        self.carries: dict[Tuple4, Waiting] = {}  # subflow -> options to carry on it
        self.holding: set[Tuple4] = set()  # incoming subflows read from the queue this round
        self.kicked = False  # a kick's ACK may wait in the outgoing queue
        self.kicked_at: dict[Tuple4, float] = {}  # subflow -> its last SYN kick (monotonic)
        self.oow_limit = oow_rate_limit()
        self.retry: list = []  # (due, tries, action) of path-manager commands to repeat
        self.trust_updates: queue.Queue = queue.Queue()
        self.wake_r, self.wake_w = os.pipe()
        self.stopping = False
        self.stats = dict.fromkeys(
            (
                "queued_out",
                "queued_in",
                "rewritten",
                "dropped_in",
                "dropped_out",
                "sniffed",
                "copies_lost",
                "unreadable_copies",
                "pm_errors",
                "unreadable_events",
                "injected",
                "kicks",
                "window_kicks",
                "malformed_copies",
                "malformed_queued",
                "carried_overflow",
                "handler_errors",
                "unknown_subtypes",
                "trust_unavailable",
                "trust_rejected",
                "wrong_interface",
                "out_of_window",
                "state_write_errors",
            ),
            0,
        )
        self.guard: Guard | None = None
        self.bound: dict[str, tuple[int, str]] = {}  # address -> (ifindex, name)
        self.kernel_events: Counter[str] = Counter()
        # Which addresses the kernel took announcements of (the tests' oracle for a forged
        # ADD_ADDR: the kernel counts a peer's genuine retransmissions in the same MIB).
        self.peer_announced: Counter[str] = Counter()
        self.history = TrustHistory()
        self.history_json = HistoryJson(self.history)
        self.state_writer = StateWriter(args.state) if args.state else None
        self.state_written: tuple[float, tuple] = (-STATE_EVERY, ())  # (when, state_mark)

    # -- set-up ----------------------------------------------------------------------------
    def start(self) -> None:
        use_userspace_pm()
        # The namespace's limits also bound what a userspace PM may accept (default 2).
        subprocess.run(
            ["ip", "mptcp", "limits", "set", "subflows", "8", "add_addr_accepted", "8"],
            check=True,
            timeout=10,
        )
        existing = subprocess.run(["ss", "-HMn"], capture_output=True, text=True).stdout
        if existing.strip():
            LOG.warning(
                "%d MPTCP connections existed before this agent started; their keys "
                "are unknown, so they stay plain MPTCP",
                len(existing.splitlines()),
            )
        # The kernel classifier first: it enforces and marks what the queues get.
        self.guard, self.bound = attach_guard(
            f"agent-{os.getpid()}", self.args.enforce, self.args.addr
        )
        for addr, (_, ifname) in self.bound.items():
            LOG.info("%s is bound to %s", addr, ifname)
        for addr in set(self.args.addr) - set(self.bound):
            LOG.warning("%s is on no interface of this host: not bound", addr)
        self.pm = PathManager()
        self.diag = SockDiag()
        self.events = EventListener()
        self.sniffer = Sniffer()
        # One raw socket per address, bound to it: the kernel routes a raw packet by the
        # socket's address, not the header's, and each address has its own route (source
        # routing). Unbound, a packet from the unprotected address left through the SAVI
        # network, whose switch dropped it as spoofed.
        self.raw_sockets = {}
        # (IPPROTO_RAW: we write the IP header, for IPv6 too.)
        for addr in self.args.addr:
            raw = injecting_socket(addr)
            raw.bind((addr, 0))
            self.raw_sockets[addr] = raw
        # Kicks go to ourselves (loopback), in the peer's name: see kick().
        self.kick_sockets = {v: injecting_socket(a) for v, a in ((4, "0.0.0.0"), (6, "::"))}
        firewall.install(str(self.guard.control_out_prog), self.args.addr_trust_subtype)
        from netfilterqueue import NetfilterQueue

        self.q_out, self.q_in = NetfilterQueue(), NetfilterQueue()
        self.q_out.bind(firewall.QUEUE_OUT, self.on_outgoing)
        self.q_in.bind(firewall.QUEUE_IN, self.on_incoming)
        threading.Thread(target=self.trust_loop, daemon=True).start()

    def stop(self) -> None:
        closers = [firewall.remove]
        for name in ("q_out", "q_in"):
            if hasattr(self, name):
                closers.append(getattr(self, name).unbind)
        sockets = {**getattr(self, "raw_sockets", {}), **getattr(self, "kick_sockets", {})}
        closers += [sock.close for sock in sockets.values()]
        for name in ("events", "pm", "diag", "sniffer", "guard", "state_writer"):
            if getattr(self, name, None) is not None:
                closers.append(getattr(self, name).close)
        for closer in closers:
            try:
                closer()
            except Exception as e:  # stopping anyway; say what failed
                LOG.warning("while stopping: %s", e)

    # -- trust from the controller (its own thread: a long poll) ------------------------------
    def trust_loop(self) -> None:
        """The long poll. A controller that does not answer changes nothing: what was
        verified stays until its lifetimes end (no flapping, no withdrawals). A document
        that does not verify is counted and logged and changes nothing either. Nothing
        ends this loop but the agent's stop."""
        verifier = Verifier(self.pubkey)
        seq = None
        while not self.stopping:
            try:
                doc = verifier.verify(
                    fetch_document(self.args.url, wait_seq=seq, timeout=self.args.ttl / 2)
                )
                seq = doc["seq"]
                self.trust_updates.put((trusted_addresses(doc), address_owners(doc)))
                os.write(self.wake_w, b"x")
                continue
            except TrustUnavailable as e:
                self.note("trust_unavailable", f"trust: {e}")
            except TrustRejected as e:
                self.note("trust_rejected", f"trust: {e}")
            except Exception as e:  # a bug of ours: say so, keep polling
                self.note("handler_errors", f"trust loop: {e!r}")
            time.sleep(1)

    # -- main loop ------------------------------------------------------------------------------
    def run(self) -> None:
        # Copies before events: the client's keys (its third ACK's copy) are then known
        # when `created` is read, and its notification leaves before its first join.
        fds = [self.sniffer, self.events, self.q_out.get_fd(), self.q_in.get_fd(), self.wake_r]
        next_tick = time.monotonic()
        while not self.stopping:
            wait = max(0.0, next_tick - time.monotonic())
            ready, _, _ = select.select(fds, [], [], min(wait, RETRY_DELAY) if self.retry else wait)
            self.retry_due()
            now = time.time()
            for fd in ready:
                try:
                    self.handle(fd, now)
                except Exception as e:  # a bug of ours must not stop enforcement
                    self.note("handler_errors", f"while handling {fd}: {e!r}")
            if ready:  # what changed is ticked on (and written) within TICK, as always
                next_tick = min(next_tick, time.monotonic() + TICK)
            if time.monotonic() >= next_tick:
                try:
                    self.on_tick(now)
                except Exception as e:
                    self.note("handler_errors", f"on the tick: {e!r}")
                next_tick = time.monotonic() + self.tick_interval(time.time())
            # After every change (and on the tick, for expiry): experiments label each
            # packet by the TPBT state when it was sent.
            seen_at = time.time()
            self.history.observe(self.ext.tpbt.entries(seen_at), seen_at)

    def handle(self, fd, now: float) -> None:
        if fd is self.events:
            try:
                events = self.events.read()
            except PathManagerError as e:
                LOG.error("%s", e)
                return
            self.stats["unreadable_events"] = self.events.unreadable
            for ev in events:
                LOG.debug("event %s", ev)
                # What the kernel acted on (an RM_ADDR shows only here with this path
                # manager when no subflow matched): the tests' oracle.
                self.kernel_events[ev.kind.value] += 1
                if ev.kind is EventKind.ANNOUNCED:
                    self.note_announced(ev.daddr)
                self.do(self.ext.on_event(ev, now))
        elif fd is self.sniffer:
            self.on_sniffed(now)
        elif fd == self.wake_r:
            os.read(self.wake_r, 4096)
            while not self.trust_updates.empty():
                lifetimes, owners = self.trust_updates.get()
                self.do(self.ext.on_trust(lifetimes, now, owners))
        elif fd == self.q_out.get_fd():
            self.kicked = False
            self.q_out.run(block=False)
        else:
            # Copies first: an ADDR_TRUST that makes a subflow trusted is tapped before
            # the segments behind it reach the classifier and this queue.
            self.on_sniffed(now)
            self.q_in.run(block=False)
            self.release_held()

    def release_held(self) -> None:
        """Nothing waits in the incoming queue now: the subflows the classifier held
        behind an ADD_ADDR pass in the kernel again. (Released sooner, segments let
        through would overtake those still queued.)"""
        for incoming in self.holding:
            try:
                self.guard.release(incoming)
            except (OSError, ValueError) as e:
                LOG.error("held map: %s", e)
        self.holding.clear()

    def note_announced(self, address: str | None) -> None:
        """Count an announcement by address; past MAX_ANNOUNCED_SHOWN addresses (a flood
        of forged ones) the rest share one key, so the counts still add up."""
        key = address or "(none)"
        if key not in self.peer_announced and len(self.peer_announced) >= MAX_ANNOUNCED_SHOWN:
            key = "(more)"
        self.peer_announced[key] += 1

    def request_stop(self) -> None:
        """End the loop now, not when its wait ends: Python resumes an interrupted
        select() after the signal's handler (PEP 475), and an idle agent waits up to
        STATE_EVERY (a path-manager comparison stops the agents 30 times)."""
        self.stopping = True
        os.write(self.wake_w, b"s")

    def tick_interval(self, now: float) -> float:
        """Seconds to the next tick: TICK while options wait for a carrier (the kicks
        are repeated on the tick) or the core has something due by then; else when it
        is due, and at least every STATE_EVERY (the state file's longest silence)."""
        if self.carries:
            return TICK
        due = self.ext.next_due(now)
        until = STATE_EVERY if due is None else due - now
        return min(max(until, TICK), STATE_EVERY)

    def on_tick(self, now: float) -> None:
        self.do(self.ext.tick(now))
        limit = time.monotonic() - self.oow_limit
        self.kicked_at = {f: at for f, at in self.kicked_at.items() if at > limit}
        self.forget_stale_carries()
        self.kick_again(time.monotonic())
        self.write_state(now)

    def do(self, actions: list, tries: int = 0) -> None:
        """Carry options first, and let the kicks' ACKs out of our queue before any
        path-manager command (of this call or a later one): a notification is what the
        peer's answer and announcement wait for, and a command (0.3-0.8 ms: the kernel
        sends the join's SYN inside it) would hold it in the queue. The kick's ACK is
        queued before the kick's send returns (loopback is handled in the sender's
        softirq)."""
        for a in sorted(actions, key=lambda a: not isinstance(a, Carry)):  # stable
            if self.kicked and not isinstance(a, Carry):
                self.kicked = False
                self.q_out.run(block=False)
            self.act(a, tries)
        self.sync_guard(time.time())

    def act(self, a: Announce | CreateSubflow | Carry, tries: int) -> None:
        if isinstance(a, Announce | CreateSubflow) and a.token not in self.ext.conns:
            return  # the connection is gone
        try:
            if isinstance(a, Announce):
                self.pm.announce(a.token, a.addr_id, a.address)
            elif isinstance(a, CreateSubflow):
                self.pm.subflow_create(a.token, a.local_id, a.local, a.remote, a.rport)
            else:
                self.carry(a.subflow, encode(a.option, self.args.addr_trust_subtype), a.urgent)
            LOG.info("%s", a)
        except PathManagerError as e:
            # Until the MPTCP connection is fully established (the peer acknowledged
            # the third ACK), announce and subflow creation fail: try again shortly.
            if tries < RETRIES and len(self.retry) < MAX_RETRIES_QUEUED:
                self.retry.append((time.monotonic() + RETRY_DELAY, tries + 1, a))
                LOG.debug("%s: %s; retrying", a, e)
            else:
                self.stats["pm_errors"] += 1
                LOG.warning("%s: %s", a, e)

    def retry_due(self) -> None:
        now, due = time.monotonic(), []
        for item in list(self.retry):
            if item[0] <= now:
                self.retry.remove(item)
                due.append(item)
        for _, tries, action in due:
            self.do([action], tries)

    # -- carrying options on a chosen subflow -----------------------------------------------------
    def carry(self, subflow: Tuple4, option: bytes, urgent: bool = True) -> None:
        """Put ``option`` on the next packet of ``subflow`` (``urgent``: whatever it is;
        else one without payload), and make that packet now."""
        waiting = self.carries.setdefault(subflow, Waiting(time.monotonic()))
        waiting.urgent |= urgent
        pending = waiting.options
        if option in pending:
            self.sync_carriers()
            return
        if len(pending) >= MAX_CARRIED:
            self.stats["carried_overflow"] += 1
            LOG.warning(
                "subflow %s has %d options waiting; dropping the oldest", subflow, len(pending)
            )
            pending.pop(0)
        pending.append(option)
        self.sync_carriers()
        self.kick(subflow)
        waiting.kicked = time.monotonic()

    def kick_again(self, now: float) -> None:
        """Kick the subflows whose options still wait (a kick the kernel held back, with
        the peer's handshake unseen, or an ACK lost) since their last kick at least half
        a tick ago: a tick right after a kick would only make a duplicate ACK."""
        for subflow, waiting in self.carries.items():
            if now - waiting.kicked >= TICK / 2:
                self.kick(subflow)
                waiting.kicked = now

    def sync_carriers(self) -> None:
        """The classifier's carriers map holds the subflows with options waiting."""
        try:
            now = time.monotonic()
            self.guard.set_carriers({s: w.mode(now) for s, w in self.carries.items()})
        except (OSError, ValueError) as e:  # ValueError: a 4-tuple of two families
            LOG.error("carriers map: %s", e)

    def forget_stale_carries(self) -> None:
        live = {f for c in self.ext.conns.values() for f in c.subflows}
        for subflow in set(self.carries) - live:
            del self.carries[subflow]
        self.sync_carriers()

    def kick(self, subflow: Tuple4) -> None:
        """Make our kernel send an ACK on ``subflow`` now, so carried options leave at
        once rather than with the subflow's next segment (an idle subflow may have none
        for seconds). A SYN for an established socket, delivered to ourselves over
        loopback in the peer's name, is answered with a challenge ACK (RFC 5961 4.2)
        carrying current sequence numbers and timestamps. The kernel sends at most one
        such ACK per socket in net.ipv4.tcp_invalid_ratelimit (0.5 s), and a set-up
        often needs a second within milliseconds (the answer, then an ADD_ADDR moved off
        an untrusted subflow: the kernel resent it after its 200-ms timeout instead). So
        a kick within that time of the last is a data segment beyond the receive window,
        which the kernel answers at once whatever the limit ("data packets without SYNs
        are not likely part of an ACK loop") and drops (`window_kick_segment`); it needs
        the subflow's next expected sequence number, so without it (handshake not seen)
        the SYN goes and the tick kicks again while options wait. Nothing but that ACK
        leaves the host."""
        local, lport, remote, rport = subflow
        now = time.monotonic()
        segment = None
        if now - self.kicked_at.get(subflow, -math.inf) < self.oow_limit:
            rcv_nxt = self.next_expected(subflow)
            if rcv_nxt is not None:
                segment = window_kick_segment(remote, rport, local, lport, rcv_nxt)
                self.stats["window_kicks"] += 1
        if segment is None:
            seq = int.from_bytes(os.urandom(4), "big")
            segment = kick_segment(remote, rport, local, lport, seq)
            self.kicked_at[subflow] = now
        try:
            self.kick_sockets[6 if ":" in local else 4].sendto(segment, (local, 0))
            self.stats["kicks"] += 1
            self.kicked = True
        except OSError as e:
            LOG.warning("kick %s: %s", subflow, e)

    def next_expected(self, subflow: Tuple4) -> int | None:
        """The sequence number ``subflow`` expects next from the peer, if known."""
        try:
            received = self.diag.bytes_received(*subflow)
        except OSError as e:
            LOG.warning("kick %s: sock_diag: %s", subflow, e)
            return None
        return self.ext.next_expected(subflow, received, time.time())

    def inject(self, packet: bytes) -> None:
        seg = parse(packet)
        self.raw_sockets[seg.src].sendto(packet, (seg.dst, 0))
        self.stats["injected"] += 1

    def sync_guard(self, now: float) -> None:
        """The kernel classifier's guarded map, in incoming orientation."""
        subtype = self.args.addr_trust_subtype
        lifted = allowed_subtypes(None, subtype)
        incoming = {(r, rp, lo, lp): lifted for (lo, lp, r, rp) in self.ext.lifted(now)}
        incoming |= {
            (r, rp, lo, lp): allowed_subtypes(scope, subtype)
            for (lo, lp, r, rp), scope in self.ext.guarded(now).items()
        }
        # While a trusted subflow is expected, the classifier itself puts every MPTCP
        # handshake that arrives in an opening (before our copy of it is read).
        expecting = self.args.enforce and bool(self.ext.tpbt.trusted_local(now))
        try:
            self.guard.configure(
                self.args.enforce,
                firewall.MARK_IN,
                allowed_subtypes(Scope.OPENING, subtype) if expecting else 0,
                int(self.ext.opening_guard * 1000),
            )
        except BpfError as e:
            LOG.error("classifier settings: %s", e)
        if incoming != self.guard.guarded:
            try:
                self.guard.set_guarded(incoming)
            except OSError as e:
                LOG.error("guarded map: %s", e)

    # -- sniffed copies: keys, joins and ADDR_TRUST -----------------------------------------------
    def on_sniffed(self, now: float) -> None:
        copies = self.sniffer.read()
        if self.sniffer.overflows > self.stats["copies_lost"]:
            self.stats["copies_lost"] = self.sniffer.overflows
            LOG.warning("NFLOG: copies lost (%d overflows)", self.sniffer.overflows)
        self.stats["unreadable_copies"] = self.sniffer.unreadable
        for copy in copies:
            self.stats["sniffed"] += 1
            seg = copy.segment
            bound = self.bound.get(seg.dst)
            if not copy.outgoing and bound is not None and bound[1] != copy.ifname:
                # The classifier drops these before netfilter logs them; should one come
                # (the classifier detached?), take nothing from it either.
                self.note("wrong_interface", f"{seg.four_tuple} arrived on {copy.ifname}")
                continue
            try:
                opts = mptcp_options(seg.options, self.args.addr_trust_subtype)
            except OptionError as e:
                self.note("malformed_copies", f"copied segment {seg.four_tuple}: {e}")
                continue
            for opt in opts:
                if isinstance(opt, Unknown):
                    self.note("unknown_subtypes", f"MPTCP subtype {opt.subtype:#x} from {seg.src}")
            if not copy.outgoing and any(isinstance(o, AddrTrust) for o in opts):
                # The kernel checks sequence numbers after our copy was taken: do it here.
                try:
                    received = self.diag.bytes_received(seg.dst, seg.dport, seg.src, seg.sport)
                except OSError as e:  # fail closed: a window we cannot see is not ours
                    self.note("sock_diag_errors", f"{seg.four_tuple}: {e}")
                    received = None
                if not self.ext.in_window(seg.four_tuple, seg.seq, received, now):
                    local = (seg.dst, seg.dport, seg.src, seg.sport)
                    self.note(
                        "out_of_window",
                        f"ADDR_TRUST outside {seg.four_tuple}'s window (seq {seg.seq}, peer's "
                        f"ISN {self.ext.peer_isn.get(local, now)}, received {received})",
                    )
                    opts = [o for o in opts if not isinstance(o, AddrTrust)]
            self.do(self.ext.on_copy(seg.four_tuple, seg.flags, opts, now, seg.seq))

    def note(self, counter: str, message: str) -> None:
        """Count a bad input and log it (the first ten, then every hundredth)."""
        self.stats[counter] += 1
        n = self.stats[counter]
        if n <= 10 or n % 100 == 0:
            LOG.warning("%s (%s: %d)", message, counter, n)

    # -- NFQUEUE: our own control packets out, marked packets in ------------------------------
    def on_outgoing(self, pkt) -> None:
        """Decide, release the packet, then do the slower rest (carry what moved, send
        the empty ACKs that follow it: after it, so they arrive in order)."""
        self.stats["queued_out"] += 1
        try:
            raw = pkt.get_payload()
            seg = parse(raw)
            waiting = self.carries.pop(seg.four_tuple, None)
            pending = waiting.options if waiting else []
            plan = plan_outgoing(
                raw, seg, self.ext, time.time(), pending, self.args.addr_trust_subtype
            )
        except Exception as e:  # our own packet: never lose it for a bug of ours
            self.note("handler_errors", f"outgoing packet passed unchanged: {e!r}")
            pkt.accept()
            return
        if plan.verdict is Verdict.DROP:
            self.stats["dropped_out"] += 1
            pkt.drop()
        else:
            if plan.packet is not None:
                pkt.set_payload(plan.packet)
                self.stats["rewritten"] += 1
            pkt.accept()
        for packet in plan.injected:
            self.inject(packet)
        if plan.problem:
            self.note("malformed_queued", plan.problem)
        if pending:
            self.sync_carriers()  # the rest of this subflow's packets pass again
        for target, option in plan.moved:
            self.carry(target, option)
        if plan.moved:
            LOG.info(
                "moved %d control option(s) from %s to %s",
                len(plan.moved),
                seg.four_tuple,
                plan.moved[0][0],
            )

    def on_incoming(self, pkt) -> None:
        """Fail closed: what cannot be judged is dropped."""
        self.stats["queued_in"] += 1
        try:
            raw = pkt.get_payload()
            seg = parse(raw)
            self.holding.add(seg.four_tuple)
            result = judge_incoming(raw, seg, self.ext, time.time(), self.args.addr_trust_subtype)
        except Exception as e:
            self.note("malformed_queued", f"incoming packet dropped: {e!r}")
            self.stats["dropped_in"] += 1
            pkt.drop()
            return
        if result.decision.drop:
            LOG.info("dropped from %s: %s", seg.four_tuple, result.decision.reason)
            self.stats["dropped_in"] += 1
            pkt.drop()
            return
        if result.packet is not None:
            pkt.set_payload(result.packet)
            self.stats["rewritten"] += 1
        pkt.accept()

    # -- state for `python -m hosts.tpbt_show` ----------------------------------------------------
    def state_mark(self) -> tuple:
        """What readers of the state file wait for, cheap to compare: trust changes (the
        history), subflows, connections, our addresses' trust and every count of ours.
        Not the lifetimes, which change every moment, nor the classifier's counters,
        which cost a system call each to read (they are at most STATE_EVERY old)."""
        return (
            self.history.total,
            len(self.ext.tpbt.subflows),
            len(self.ext.conns),
            tuple(self.ext.tpbt.local),
            tuple(self.guard.guarded.items()),
            tuple(vars(self.ext.counters).values()),
            tuple(self.stats.items()),
            tuple(self.kernel_events.items()),
            tuple(self.peer_announced.items()),
        )

    def write_state(self, now: float) -> None:
        """On the tick: the state when any of its marks changed, else every STATE_EVERY."""
        if self.state_writer is None:
            return
        self.stats["state_write_errors"] = self.state_writer.errors
        mark = self.state_mark()
        if mark == self.state_written[1] and now - self.state_written[0] < STATE_EVERY:
            return
        self.state_written = (now, mark)
        state = {
            "time": now,
            "table": self.ext.tpbt.render(now),
            "entries": self.ext.tpbt.records(now),
            "local_trusted": sorted(self.ext.tpbt.trusted_local(now)),
            "connections": len(self.ext.conns),
            "guarded": sorted([*t, allowed] for t, allowed in self.guard.guarded.items()),
            "counters": vars(self.ext.counters),
            "guard": self.guard.counters(),
            "stats": self.stats,
            "kernel_events": self.kernel_events,
            "peer_announced": self.peer_announced,
        }
        # Compact (json's C encoder; indented, it takes the pure-Python one) and the
        # history spliced in as kept encoded: this runs on the agent's only loop.
        text = json.dumps(state, separators=(",", ":"))
        self.state_writer.submit(text[:-1] + ',"history":' + self.history_json.text() + "}")


class MicrosecondFormatter(logging.Formatter):
    """Log times to the microsecond: a connection's set-up takes a few milliseconds, and
    its steps are compared with capture timestamps (the same wall clock)."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return datetime.fromtimestamp(record.created).strftime("%Y-%m-%d %H:%M:%S.%f")


def attach_guard(
    name: str, enforce: bool, addresses: list[str]
) -> tuple[Guard, dict[str, tuple[int, str]]]:
    """The kernel classifier on every interface of this host but lo, configured to enforce
    or not, and each of ``addresses`` found here bound to its own interface (trust is
    bound to the interface: each address is reached through its own only). Returns the
    classifier and address -> (ifindex, interface name) of those bound. On a failure,
    what was attached is taken off again."""
    guard = Guard(name)
    try:
        guard.configure(enforce, firewall.MARK_IN)
        for _, ifname in socket.if_nameindex():
            if ifname != "lo":
                guard.attach(ifname)
        bound = interfaces_of(addresses)
        for addr, (ifindex, _) in bound.items():
            guard.bind(addr, ifindex)
    except BaseException:
        guard.close()
        raise
    return guard, bound


def interfaces_of(addresses: list[str]) -> dict[str, tuple[int, str]]:
    """address -> (ifindex, interface name) for those of ``addresses`` configured here."""
    from pyroute2 import IPRoute

    wanted, out = set(addresses), {}
    with IPRoute() as ipr:
        for msg in ipr.get_addr():
            addr = msg.get_attr("IFA_ADDRESS")
            if addr in wanted:
                out[addr] = (msg["index"], socket.if_indextoname(msg["index"]))
    return out


def oow_rate_limit() -> float:
    """Seconds the kernel waits between two challenge ACKs on a socket (this namespace's
    net.ipv4.tcp_invalid_ratelimit; its default when unreadable)."""
    try:
        return int(Path("/proc/sys/net/ipv4/tcp_invalid_ratelimit").read_text()) / 1000
    except (OSError, ValueError):
        return 0.5


def injecting_socket(address: str) -> socket.socket:
    """A raw socket of ``address``'s family on which we write whole IP packets; what it
    sends is marked as ours, so our own rules never queue it again."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    raw = socket.socket(family, socket.SOCK_RAW, socket.IPPROTO_RAW)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, firewall.MARK_INJECTED)
    return raw


def kick_segment(
    src: str, sport: int, dst: str, dport: int, seq: int, flags: int = 0x02, payload: bytes = b""
) -> bytes:
    """A bare TCP segment (no options; a SYN unless ``flags`` say otherwise) from ``src``
    to ``dst``, IPv4 or IPv6, with checksums, for kick()."""
    length = 20 + len(payload)
    if ":" in src:
        ip = struct.pack(
            "!IHBB16s16s",
            6 << 28,
            length,
            6,
            64,
            socket.inet_pton(socket.AF_INET6, src),
            socket.inet_pton(socket.AF_INET6, dst),
        )
    else:
        ip = struct.pack(
            "!BBHHHBBH4s4s",
            0x45,
            0,
            20 + length,
            0,
            0x4000,
            64,
            6,
            0,
            socket.inet_aton(src),
            socket.inet_aton(dst),
        )
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, 0, 5 << 4, flags, 1024, 0, 0)
    packet = ip + tcp + payload
    return with_options(packet, parse(packet), b"")


# How far ahead of the next expected byte a window kick lies: beyond any receive window
# (at most 2^30 bytes, RFC 7323's largest scale) and less than 2^31 ahead, so the kernel
# takes it as beyond the window, not as an old duplicate (which it would D-SACK).
WINDOW_KICK_AHEAD = 3 << 29


def window_kick_segment(src: str, sport: int, dst: str, dport: int, rcv_nxt: int) -> bytes:
    """One byte of data (ACK flag, no SYN), WINDOW_KICK_AHEAD beyond ``rcv_nxt``: the
    receiver drops it and acknowledges at once, without the per-socket rate limit that
    holds back challenge ACKs; its acknowledgment number is never looked at."""
    seq = (rcv_nxt + WINDOW_KICK_AHEAD) % 2**32
    return kick_segment(src, sport, dst, dport, seq, flags=0x10, payload=b"\0")


def use_userspace_pm() -> None:
    """Select the kernel's userspace path manager in this namespace: the string sysctl
    ``net.mptcp.path_manager`` where the kernel has it, else the older ``pm_type``."""
    subprocess.run(["sysctl", "-qw", "net.mptcp.enabled=1"], check=True)
    if Path("/proc/sys/net/mptcp/path_manager").exists():
        subprocess.run(["sysctl", "-qw", "net.mptcp.path_manager=userspace"], check=True)
    else:
        subprocess.run(["sysctl", "-qw", "net.mptcp.pm_type=1"], check=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m hosts.agent", description=" ".join(__doc__.split("\n\n")[0].split())
    )
    ap.add_argument("--url", required=True, help="the SAVI controller's REST base URL")
    ap.add_argument(
        "--pubkey-file",
        required=True,
        help="the controller's public key (PEM) that signs the trust export",
    )
    ap.add_argument(
        "--addr",
        action="append",
        required=True,
        help="a local address the agent manages (repeat; the first gets ID 1)",
    )
    ap.add_argument("--state", help="file the live TPBT is written to (JSON)")
    ap.add_argument(
        "--enforce",
        action="store_true",
        help="on untrusted subflows of a connection that has had a trusted one (and in a "
        "connection's opening), drop every MPTCP option but DSS, MP_CAPABLE and MP_JOIN "
        "in the kernel, and admit joins only by the join policy (docs/trusted-mptcp.md)",
    )
    ap.add_argument(
        "--ttl", type=float, default=6.0, help="seconds a peer's trust notification stays valid (6)"
    )
    ap.add_argument(
        "--addr-trust-subtype",
        type=lambda s: int(s, 0),
        default=ADDR_TRUST_DEFAULT,
        help="ADDR_TRUST's MPTCP subtype (0x9)",
    )
    ap.add_argument("--verbose", action="store_true", help="log every event and action")
    args = ap.parse_args(argv)
    handler = logging.StreamHandler()
    handler.setFormatter(MicrosecondFormatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, handlers=[handler])
    if not 9 <= args.addr_trust_subtype <= 15:
        ap.error("--addr-trust-subtype must be an unassigned subtype, 0x9..0xf")
    if os.geteuid() != 0:
        print("agent: needs root (netlink path manager, nftables, NFQUEUE)", file=sys.stderr)
        return 2
    try:
        pubkey = load_public_key(args.pubkey_file)
    except (OSError, TrustError) as e:
        print(f"agent: {e}", file=sys.stderr)
        return 2
    faulthandler.register(signal.SIGUSR2)  # kill -USR2 <pid>: where is it stuck?
    agent = Agent(args, pubkey)
    try:
        agent.start()
    except (
        PathManagerError,
        firewall.FirewallError,
        GuardError,
        OSError,
        subprocess.CalledProcessError,
    ) as e:
        print(f"agent: cannot start: {e}", file=sys.stderr)
        agent.stop()
        return 1

    signal.signal(signal.SIGTERM, lambda *_: agent.request_stop())
    signal.signal(signal.SIGINT, lambda *_: agent.request_stop())
    try:
        agent.run()
    finally:
        agent.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
