"""The SAVI switch app: binds source addresses to ports and filters in the switches.

The Ryu shell around ``BindingTable`` (decisions) and ``pipeline`` (flows): it parses what
the switches send up, asks the table, and writes the answers back as flow-mods and
packet-outs. It runs under Ryu or os-ken (see ``compat``); the REST API is in ``rest``.
"""

from __future__ import annotations

import gc
import logging
import time

from controller import compat, ofp, pipeline, settings
from controller import config as config_mod
from controller.batches import FlowBatches
from controller.bindings import (
    BindingTable,
    Bound,
    Probe,
    Rejected,
    Unbound,
    Unchanged,
)
from controller.dhcp6 import Dhcp6Clients
from controller.packets import (
    DECLINE,
    DHCP6_SERVER_MESSAGES,
    DHCP_SERVER_MESSAGES,
    DHCPACK,
    DHCPDECLINE,
    DHCPRELEASE,
    RELEASE,
    REPLY,
    Arp,
    Dhcp,
    Dhcp6,
    Malformed,
    Neighbor,
    parse_frame,
)
from controller.probes import probe_packet
from controller.trust import first_seq, sign, trust_document

TICK = 0.1  # seconds between settling probes and leases
STATS_EVERY = 1.0  # seconds between reads of the switches' drop counters
# A new binding is exported when its switch answers the barrier sent behind its flows;
# a switch that has not answered in this many seconds has it exported anyway.
BARRIER_TIMEOUT = 1.0
# Python's full (generation 2) collections walk every object: with 10,000 bindings each
# took 80-100 ms, every 13th claim of the latency benchmark waited for one. The app turns
# the automatic ones off and collects when no packet-in came for GC_IDLE seconds (at
# most every GC_EVERY), and at least every GC_FORCE seconds under a storm of claims.
GC_IDLE, GC_EVERY, GC_FORCE = 1.0, 30.0, 300.0


def gc_due(now: float, last_packet_in: float, last_collect: float) -> bool:
    """Whether the controller should run a full collection now."""
    since = now - last_collect
    return since >= GC_FORCE or (since >= GC_EVERY and now - last_packet_in >= GC_IDLE)


LOG = logging.getLogger("savi")


class SaviApp(compat.App):
    OFP_VERSIONS = [compat.ofproto_v1_3.OFP_VERSION]
    _CONTEXTS = {"wsgi": compat.wsgi.WSGIApplication} if compat.wsgi else {}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.config = config_mod.load(settings.config_path())
        self.trust_key = settings.trust_key()
        self.api_token = settings.api_token()
        self.table = BindingTable(self.config.max_bindings_per_port, self.config.probe_timeout)
        self.datapaths: dict[int, object] = {}
        self.ports: dict[int, set[int]] = {}
        self.client_ports: dict[tuple[int, str], int] = {}  # (dpid, client MAC) -> port
        self.dhcp6_clients = Dhcp6Clients()  # who asked, for the server's REPLY
        # (dpid, port, priority, match) -> packets dropped by that drop flow; a port has
        # several drop flows of one priority (DHCP and DHCPv6 servers, RA and redirect).
        self.switch_drops: dict[tuple, int] = {}
        # A new binding's address stays out of the trust export until the switch confirms
        # (OpenFlow barrier) that the flow letting it out is in: a host told "trusted"
        # sends at once from it, and before the flow that packet reaches the controller,
        # which drops it as spoofed. One barrier at a time per switch: bindings made
        # while one is out wait for the next, sent when it is answered (under a burst of
        # claims, one barrier covers many). ip -> (dpid, xid, or None: the next barrier).
        self.unconfirmed: dict[str, tuple[int, int | None]] = {}
        self.awaiting_barrier: dict[tuple[int, int], tuple[list[str], float]] = {}
        self.barrier_out: dict[int, int] = {}  # dpid -> xid of its unanswered barrier
        self.next_barrier: dict[int, list[str]] = {}  # dpid -> addresses behind it
        # To a switch with bundles (the default), binding flow-mods wait while more
        # events do and go together, as one bundle (controller/batches.py); to the
        # others, one by one at once. A barrier is always sent behind them.
        self.batches = FlowBatches()
        self.last_packet_in = self.last_collect = 0.0
        self.seq = first_seq()
        self.seq_changed = compat.hub.Event()
        self.clock = time.time
        if "wsgi" in kwargs:
            from controller.rest import register

            register(kwargs["wsgi"], self)

    def start(self):
        """Called by the app manager; unit tests drive handlers without it (no timers)."""
        thread = super().start()
        gen0, gen1, _ = gc.get_threshold()
        gc.set_threshold(gen0, gen1, 1_000_000)  # full collections: ours, in idle time
        self.last_collect = self.clock()
        self.threads.append(compat.hub.spawn(self._ticker))
        return thread

    # -- switch life cycle -------------------------------------------------------------
    @compat.set_ev_cls(compat.ofp_event.EventOFPSwitchFeatures, compat.CONFIG_DISPATCHER)
    def switch_features(self, ev):
        dp = ev.msg.datapath
        parser = dp.ofproto_parser
        self.datapaths[dp.id] = dp
        self.batches.switch_gone(dp.id)  # nothing queued for an earlier connection goes
        if not self.config.switch(dp.id).bundles:
            self.batches.unbundled.add(dp.id)
        self.ports.setdefault(dp.id, set())
        dp.send_msg(parser.OFPSetConfig(dp, dp.ofproto.OFPC_FRAG_NORMAL, 0xFFFF))
        for spec in pipeline.switch_flows():
            ofp.add_flow(dp, spec)
        dp.send_msg(parser.OFPPortDescStatsRequest(dp, 0))
        # Bindings installed before a controller restart are still in the switch.
        ofp.request_flows(dp, pipeline.BINDING_TAG)
        for st in self.config.static:
            if st.dpid == dp.id:
                self._apply(self.table.add_static(st.dpid, st.port, st.mac, st.ip))
        self._flush(dp.id)
        LOG.info("switch %016x connected", dp.id)

    @compat.set_ev_cls(compat.ofp_event.EventOFPPortDescStatsReply, compat.MAIN_DISPATCHER)
    def port_desc(self, ev):
        dp = ev.msg.datapath
        for port in ev.msg.body:
            if port.port_no < dp.ofproto.OFPP_MAX:
                self._port_added(dp, port.port_no)

    @compat.set_ev_cls(compat.ofp_event.EventOFPPortStatus, compat.MAIN_DISPATCHER)
    def port_status(self, ev):
        dp, msg = ev.msg.datapath, ev.msg
        port = msg.desc
        if port.port_no >= dp.ofproto.OFPP_MAX:
            return
        if msg.reason == dp.ofproto.OFPPR_DELETE or ofp.is_port_down(dp, port):
            self.ports.get(dp.id, set()).discard(port.port_no)
            for decision in self.table.port_down(dp.id, port.port_no):
                self._apply(decision)
            self._flush_when_idle()
        else:
            self._port_added(dp, port.port_no)

    @compat.set_ev_cls(compat.ofp_event.EventOFPStateChange, compat.DEAD_DISPATCHER)
    def switch_gone(self, ev):
        dp = ev.datapath
        if dp.id is not None and self.datapaths.get(dp.id) is dp:
            del self.datapaths[dp.id]
            self.batches.switch_gone(dp.id)
            LOG.info("switch %016x disconnected", dp.id)
            # No reply will come on this connection: what waited for one is exported.
            self._confirm([key for key in self.awaiting_barrier if key[0] == dp.id])

    @compat.set_ev_cls(compat.ofp_event.EventOFPBarrierReply, compat.MAIN_DISPATCHER)
    def barrier_reply(self, ev):
        self._confirm([(ev.msg.datapath.id, ev.msg.xid)])

    @compat.set_ev_cls(compat.ofp_event.EventONFBundleCtrlMsg, compat.MAIN_DISPATCHER)
    def bundle_reply(self, ev):
        msg = ev.msg
        if msg.type != msg.datapath.ofproto.ONF_BCT_COMMIT_REPLY:
            return
        first = self.batches.committed(msg.datapath.id, msg.bundle_id)
        if first is not None:
            LOG.info(
                "switch %016x takes bundles: the first, of %d flow-mods, committed",
                msg.datapath.id,
                len(first.msgs),
            )

    @compat.set_ev_cls(compat.ofp_event.EventOFPErrorMsg, compat.MAIN_DISPATCHER)
    def switch_error(self, ev):
        """A refused bundle's flow-mods go again one by one: the bundle was all or
        nothing, so one bad flow-mod (or a switch without bundles) must not cost the
        others."""
        msg = ev.msg
        dp = msg.datapath
        ofproto = dp.ofproto
        # An experimenter's error (Open vSwitch reports a failed bundle of OpenFlow 1.3
        # as the ONF extension's) has an experimenter type where others have a code.
        code = msg.exp_type if msg.type == ofproto.OFPET_EXPERIMENTER else msg.code
        unsupported = msg.type == ofproto.OFPET_BAD_REQUEST and code in (
            ofproto.OFPBRC_BAD_EXPERIMENTER,
            ofproto.OFPBRC_BAD_EXP_TYPE,
        )
        bundle = self.batches.refused(dp.id, msg.xid, unsupported)
        if bundle is None:
            LOG.warning(
                "switch %016x: error type %d code %d (xid %d)", dp.id, msg.type, code, msg.xid
            )
            return
        LOG.warning(
            "switch %016x refused a bundle of %d flow-mods (error type %d code %d): "
            "sending them one by one",
            dp.id,
            len(bundle.msgs),
            msg.type,
            code,
        )
        for fm in bundle.msgs:
            fm.xid = None  # a fresh xid: the old one was the bundle message's
            dp.send_msg(fm)

    @compat.set_ev_cls(compat.ofp_event.EventOFPFlowStatsReply, compat.MAIN_DISPATCHER)
    def flow_stats(self, ev):
        dp = ev.msg.datapath
        restored = 0
        for entry in ev.msg.body:
            tag = entry.cookie >> 56
            match = ofp.match_fields(entry.match)
            if tag == pipeline.BINDING_TAG:
                b = pipeline.binding_from_flow(dp.id, entry.cookie, match)
                if b is not None and self.table.get(b.ip) is None:
                    self.table.restore(b)
                    restored += 1
            elif tag == pipeline.BASE_TAG and not entry.instructions and "in_port" in match:
                key = (dp.id, match["in_port"], entry.priority, tuple(sorted(match.items())))
                self.switch_drops[key] = entry.packet_count
        if restored:
            LOG.info("switch %016x: %d bindings recovered from its flows", dp.id, restored)
            self._changed()

    def _port_added(self, dp, port_no: int) -> None:
        if port_no in self.ports.setdefault(dp.id, set()):
            return
        self._flush(dp.id)  # the port's own flows after the bindings' changes before them
        self.ports[dp.id].add(port_no)
        sw = self.config.switch(dp.id)
        for spec in pipeline.port_flows(
            port_no,
            port_no in sw.trusted_ports,
            port_no in sw.dhcp_server_ports,
            port_no in sw.router_ports,
        ):
            ofp.add_flow(dp, spec)

    # -- packets from the switches -----------------------------------------------------
    @compat.set_ev_cls(compat.ofp_event.EventOFPPacketIn, compat.MAIN_DISPATCHER)
    def packet_in(self, ev):
        try:
            self._packet_in(ev.msg)
        finally:
            self._flush_when_idle()

    def _packet_in(self, msg) -> None:
        dp = msg.datapath
        in_port = msg.match["in_port"]
        self.last_packet_in = self.clock()
        data = bytes(msg.data)
        try:
            frame = parse_frame(data)
        except Malformed as e:
            self.table.count(dp.id, in_port, "malformed")
            LOG.debug("malformed packet on %016x/%d: %s", dp.id, in_port, e)
            return
        trusted = in_port in self.config.switch(dp.id).trusted_ports
        payload = frame.payload
        if isinstance(payload, Arp):
            self._arp(dp, in_port, frame, payload, data)
        elif isinstance(payload, Neighbor):
            self._neighbor(dp, in_port, frame, payload, data)
        elif isinstance(payload, Dhcp):
            self._dhcp(dp, in_port, frame, payload, data, trusted)
        elif isinstance(payload, Dhcp6):
            self._dhcp6(dp, in_port, frame, payload, data, trusted)
        else:
            self.table.count(dp.id, in_port, "spoofed_dropped")

    def _arp(self, dp, in_port, frame, arp: Arp, data: bytes) -> None:
        if frame.eth_dst == pipeline.PROBE_MAC:
            self._apply(self.table.owner_answered(arp.sender_ip, arp.sender_mac))
            return
        if arp.sender_mac != frame.eth_src:
            self.table.count(dp.id, in_port, "spoofed_dropped")
            return
        if arp.sender_ip == "0.0.0.0":  # an address probe claims nothing (RFC 5227)
            ofp.packet_out(dp, in_port, data)
            return
        self._claim(dp, in_port, frame.eth_src, arp.sender_ip, data)

    def _neighbor(self, dp, in_port, frame, nd: Neighbor, data: bytes) -> None:
        if frame.eth_dst == pipeline.PROBE_MAC:
            if nd.kind == 136:
                self._apply(self.table.owner_answered(nd.target, frame.eth_src))
            return
        if nd.lladdr is not None and nd.lladdr != frame.eth_src:
            self.table.count(dp.id, in_port, "spoofed_dropped")
            return
        if nd.kind == 135 and nd.src != "::":
            claimed = nd.src  # a solicitation from an address nobody bound here yet
        else:
            claimed = nd.target  # duplicate address detection, or an advertisement
            if nd.src not in ("::", nd.target):
                owner = self.table.get(nd.src)
                if owner is None or not owner.same_owner(dp.id, in_port, frame.eth_src):
                    self.table.count(dp.id, in_port, "spoofed_dropped")
                    return
        self._claim(dp, in_port, frame.eth_src, claimed, data)

    def _claim(self, dp, in_port, mac, ip, data: bytes) -> None:
        if in_port in self.config.switch(dp.id).trusted_ports:
            ofp.packet_out(dp, in_port, data)
            return
        decision = self.table.claim(dp.id, in_port, mac, ip, self.clock())
        self._apply(decision)
        if isinstance(decision, (Bound, Unchanged)):
            self._send_on(dp, in_port, data)  # the claim itself is not lost

    def _dhcp(self, dp, in_port, frame, msg: Dhcp, data: bytes, trusted: bool) -> None:
        sw = self.config.switch(dp.id)
        if msg.msg_type in DHCP_SERVER_MESSAGES or msg.from_server:
            if not (trusted or in_port in sw.dhcp_server_ports):
                self.table.count(dp.id, in_port, "rogue_dhcp_dropped")
                return
            client_port = self.client_ports.get((dp.id, msg.client_mac))
            if msg.msg_type == DHCPACK and client_port is not None and msg.yiaddr != "0.0.0.0":
                lease = msg.lease_time if msg.lease_time is not None else 0xFFFFFFFF
                decision = self.table.dhcp_ack(
                    dp.id, client_port, msg.client_mac, msg.yiaddr, lease, self.clock()
                )
                self._apply(decision)
            self._send_on(dp, in_port, data)
            return
        if not trusted:
            if msg.client_mac != frame.eth_src:
                self.table.count(dp.id, in_port, "spoofed_dropped")
                return
            self.client_ports[(dp.id, msg.client_mac)] = in_port
            if msg.msg_type in (DHCPRELEASE, DHCPDECLINE):
                ip = msg.ciaddr if msg.msg_type == DHCPRELEASE else msg.requested_ip
                reason = "dhcp release" if msg.msg_type == DHCPRELEASE else "dhcp decline"
                if ip:
                    self._apply(self.table.dhcp_release(dp.id, in_port, frame.eth_src, ip, reason))
        ofp.packet_out(dp, in_port, data)

    def _dhcp6(self, dp, in_port, frame, msg: Dhcp6, data: bytes, trusted: bool) -> None:
        """DHCPv6 snooping (RFC 7513): a server's REPLY binds each address it gives to the
        port and MAC of the client that asked in that transaction and that the REPLY is
        sent to (controller.dhcp6; a lifetime of 0 takes it back); the client's RELEASE
        and DECLINE remove them."""
        now = self.clock()
        if msg.from_server or msg.msg_type in DHCP6_SERVER_MESSAGES:
            if not (trusted or in_port in self.config.switch(dp.id).dhcp_server_ports):
                self.table.count(dp.id, in_port, "rogue_dhcp_dropped")
                return
            asker = None
            if msg.msg_type == REPLY and msg.client_duid is not None:
                asker = self.dhcp6_clients.asker(
                    dp.id, msg.xid, msg.client_duid, frame.eth_dst, now
                )
            for lease in msg.leases if asker is not None else ():
                if lease.valid_lifetime:
                    decision = self.table.dhcp_ack(
                        dp.id,
                        asker.port,
                        asker.mac,
                        lease.ip,
                        lease.valid_lifetime,
                        now,
                        move=False,
                    )
                    self._apply(decision)
                else:
                    self._apply(
                        self.table.dhcp_release(
                            dp.id, asker.port, asker.mac, lease.ip, "dhcpv6 lifetime 0"
                        )
                    )
            self._send_on(dp, in_port, data)
            return
        if not trusted:
            if msg.client_duid is not None and self.dhcp6_clients.asked(
                dp.id, in_port, frame.eth_src, msg.xid, msg.client_duid, now
            ):
                # Asked from two places (a copy of another host's message): the
                # transaction binds nothing; counted where the second came from.
                self.table.count(dp.id, in_port, "rejected_claims")
            if msg.msg_type in (RELEASE, DECLINE):
                reason = "dhcpv6 release" if msg.msg_type == RELEASE else "dhcpv6 decline"
                for lease in msg.leases:
                    self._apply(
                        self.table.dhcp_release(dp.id, in_port, frame.eth_src, lease.ip, reason)
                    )
        ofp.packet_out(dp, in_port, data)

    # -- applying decisions --------------------------------------------------------------
    def _apply(self, decision) -> None:
        if decision is None or isinstance(decision, Unchanged):
            return
        if isinstance(decision, Bound):
            b, old = decision.binding, decision.replaced
            if old is not None and not old.same_owner(b.dpid, b.port, b.mac):
                self._delete_flows(old)
            dp = self.datapaths.get(b.dpid)
            if dp is not None:
                for spec in pipeline.binding_flows(b):
                    self._send_flow(dp, ofp.flow_mod(dp, spec))
            LOG.info("bound %s to %016x/%d %s (%s)", b.ip, b.dpid, b.port, b.mac, b.source)
            waits = dp is not None and (old is None or not old.same_owner(b.dpid, b.port, b.mac))
            if waits:
                self._await_flows(dp, b.ip)
            if not waits or old is not None:
                self._changed()  # a renewal's lifetime, or the old owner gone, now
        elif isinstance(decision, Unbound):
            self._delete_flows(decision.binding)
            b = decision.binding
            self.unconfirmed.pop(b.ip, None)
            LOG.info("unbound %s from %016x/%d: %s", b.ip, b.dpid, b.port, decision.reason)
            self._changed()
        elif isinstance(decision, Probe):
            owner = decision.owner
            dp = self.datapaths.get(owner.dpid)
            if dp is not None:
                ofp.packet_out(dp, None, probe_packet(owner.mac, owner.ip), owner.port)
            LOG.info("claim of %s from port %d: probing owner", owner.ip, decision.claim.port)
        elif isinstance(decision, Rejected):
            c = decision.claim
            LOG.warning(
                "refused %s to %016x/%d %s: %s", c.ip, c.dpid, c.port, c.mac, decision.reason
            )

    def _delete_flows(self, b) -> None:
        dp = self.datapaths.get(b.dpid)
        if dp is not None:
            for spec in pipeline.binding_flows(b):
                self._send_flow(dp, ofp.flow_mod(dp, spec, delete=True))

    def _send_flow(self, dp, fm) -> None:
        if dp.id in self.batches.unbundled:  # one by one, at once
            dp.send_msg(fm)
        elif self.batches.add(dp.id, fm):
            self._flush(dp.id)

    def _send_on(self, dp, in_port: int, data: bytes) -> None:
        """Send on a packet that made a binding (a claim, a DHCP server's ACK or REPLY),
        behind the flow-mods waiting for its switch: sent before them, the host's next
        packet (the ping behind its ARP) could reach the switch before its allow flow and
        be dropped as spoofed."""
        msg = ofp.packet_out_msg(dp, in_port, data)
        if not self.batches.hold(dp.id, msg):
            dp.send_msg(msg)

    def _flush(self, dpid: int) -> None:
        """Send the switch's waiting flow-mods: together as one bundle, or one by one."""
        bundle = self.batches.take(dpid)
        dp = self.datapaths.get(dpid)
        if bundle is None or dp is None:
            return
        if not bundle.bundle_id:
            for fm in bundle.msgs:
                dp.send_msg(fm)
        else:
            self.batches.sent(bundle, ofp.send_bundle(dp, bundle.bundle_id, bundle.msgs))
        for msg in bundle.after:  # the claims, behind their bindings' flows
            dp.send_msg(msg)

    def _flush_when_idle(self) -> None:
        """Send every switch's waiting flow-mods unless more events wait (they may add
        to them); the ticker sends what an event left behind."""
        if self.events.empty():
            self._flush_all()

    def apply_now(self, *decisions) -> None:
        """Apply decisions made outside the switches' events (timers, the REST API) and
        send their flow-mods at once."""
        for decision in decisions:
            self._apply(decision)
        self._flush_all()

    def _flush_all(self) -> None:
        for dpid in self.batches.dpids():
            self._flush(dpid)

    def _await_flows(self, dp, ip: str) -> None:
        """Export ``ip`` once ``dp`` has applied the flow-mods sent so far."""
        if dp.id in self.barrier_out:
            self.next_barrier.setdefault(dp.id, []).append(ip)
            self.unconfirmed[ip] = (dp.id, None)
        else:
            self._send_barrier(dp, [ip])

    def _send_barrier(self, dp, ips: list[str]) -> None:
        self._flush(dp.id)  # the barrier answers for the flows before it
        key = (dp.id, ofp.barrier(dp))
        self.barrier_out[dp.id] = key[1]
        self.awaiting_barrier[key] = (ips, self.clock())
        for ip in ips:
            self.unconfirmed[ip] = key

    def _confirm(self, keys: list[tuple[int, int]]) -> None:
        """Export the bindings waiting on these barriers (dpid, xid), if still waiting,
        and send the next barrier of each switch for those behind it."""
        confirmed: list[str] = []
        for key in keys:
            dpid = key[0]
            ips, _sent = self.awaiting_barrier.pop(key, ([], 0.0))
            confirmed += [ip for ip in ips if self.unconfirmed.get(ip) == key]
            if self.barrier_out.get(dpid) != key[1]:
                continue  # a late reply to a barrier given up on: the next one is out
            del self.barrier_out[dpid]
            behind = self.next_barrier.pop(dpid, [])
            behind = [
                ip for ip in dict.fromkeys(behind) if self.unconfirmed.get(ip) == (dpid, None)
            ]
            dp = self.datapaths.get(dpid)
            if behind and dp is not None:
                self._send_barrier(dp, behind)
            else:
                confirmed += behind  # the switch is gone: nothing more to wait for
        for ip in confirmed:
            self.unconfirmed.pop(ip, None)
        if confirmed:
            self._changed()

    def _export_unanswered(self, now: float) -> None:
        late = [k for k, (_ip, t) in self.awaiting_barrier.items() if now - t > BARRIER_TIMEOUT]
        if late:
            LOG.warning("%d barriers unanswered after %.1f s: exported", len(late), BARRIER_TIMEOUT)
            self._confirm(late)

    def _changed(self) -> None:
        self.seq += 1
        self.seq_changed.set()
        self.seq_changed = compat.hub.Event()

    # -- timers ----------------------------------------------------------------------------
    def _ticker(self):
        last_stats = 0.0
        while True:
            compat.hub.sleep(TICK)
            now = self.clock()
            self.apply_now(*self.table.tick(now))
            self._export_unanswered(now)
            if gc_due(now, self.last_packet_in, self.last_collect):
                gc.collect()
                self.last_collect = self.clock()
            if now - last_stats >= STATS_EVERY:
                last_stats = now
                for dp in list(self.datapaths.values()):
                    ofp.request_flows(dp, pipeline.BASE_TAG)

    # -- what the REST API shows -----------------------------------------------------------
    def bindings_json(self) -> list[dict]:
        now = self.clock()
        out = []
        for b in self.table.all():
            left = b.expires_in(now)
            out.append(
                {
                    "dpid": b.dpid,
                    "port": b.port,
                    "mac": b.mac,
                    "ip": b.ip,
                    "source": b.source,
                    "state": b.state,
                    "expires_in": None if left is None else round(left, 3),
                }
            )
        return out

    def stats_json(self) -> list[dict]:
        switch: dict[tuple[int, int], int] = {}
        ra_guard: dict[tuple[int, int], int] = {}
        for (dpid, port, priority, _match), n in self.switch_drops.items():
            into = ra_guard if priority == pipeline.PRIO_RA_GUARD else switch
            into[(dpid, port)] = into.get((dpid, port), 0) + n
        keys = set(self.table.counters) | set(switch) | set(ra_guard)
        out = []
        for dpid, port in sorted(keys):
            c = self.table.counters.get((dpid, port))
            out.append(
                {
                    "dpid": dpid,
                    "port": port,
                    "spoofed_dropped_switch": switch.get((dpid, port), 0),
                    "spoofed_dropped_controller": c.spoofed_dropped if c else 0,
                    "rejected_claims": c.rejected_claims if c else 0,
                    "malformed": c.malformed if c else 0,
                    "rogue_dhcp_dropped": c.rogue_dhcp_dropped if c else 0,
                    "rogue_ra_dropped": ra_guard.get((dpid, port), 0),
                }
            )
        return out

    def trust_json(self) -> dict:
        bindings = [b for b in self.table.all() if b.ip not in self.unconfirmed]
        doc = trust_document(bindings, self.clock(), self.seq, self.config.trust_ttl)
        return sign(doc, self.trust_key) if self.trust_key else doc
