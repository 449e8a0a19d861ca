"""The agent's per-address record of the announcements its kernel took, its kick, its log times."""

import json
import logging
import time
from collections import Counter
from datetime import datetime
from types import SimpleNamespace

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6

from hosts.agent import (
    EMPTY_WAIT,
    MAX_ANNOUNCED_SHOWN,
    STATE_EVERY,
    TICK,
    WINDOW_KICK_AHEAD,
    Agent,
    MicrosecondFormatter,
    Waiting,
    kick_segment,
    window_kick_segment,
)
from hosts.extension import Counters, Extension
from hosts.guard import CarryMode
from hosts.tpbt import HistoryJson, Tpbt, TrustHistory


def recorder() -> Agent:
    agent = Agent.__new__(Agent)  # only the record: no sockets, no kernel
    agent.peer_announced = Counter()
    return agent


def test_announcements_are_counted_by_address():
    agent = recorder()
    for address in ("10.4.0.20", "10.4.0.20", "10.2.0.66", None):
        agent.note_announced(address)
    assert agent.peer_announced == {"10.4.0.20": 2, "10.2.0.66": 1, "(none)": 1}


def test_a_flood_of_addresses_shares_one_key_and_the_counts_still_add_up():
    agent = recorder()
    flood = [f"10.9.{i // 256}.{i % 256}" for i in range(MAX_ANNOUNCED_SHOWN + 10)]
    for address in flood + flood[:3]:
        agent.note_announced(address)
    assert len(agent.peer_announced) == MAX_ANNOUNCED_SHOWN + 1
    assert agent.peer_announced["(more)"] == 10
    assert agent.peer_announced[flood[0]] == 2  # known addresses keep their own key
    assert sum(agent.peer_announced.values()) == len(flood) + 3


@pytest.mark.parametrize(
    ("src", "dst", "layer"),
    [("10.3.0.20", "10.1.0.10", IP), ("2001:db8:3::20", "2001:db8:1::10", IPv6)],
)
def test_the_kick_is_a_bare_syn_with_right_checksums_in_both_families(src, dst, layer):
    """What kick() delivers to our own TCP in the peer's name: a SYN with no options,
    which a wrong checksum would make the kernel drop unanswered."""
    raw = kick_segment(src, 5201, dst, 40000, 12345)
    pkt = layer(raw)
    assert (pkt.src, pkt.dst) == (src, dst)
    assert (pkt[TCP].sport, pkt[TCP].dport, pkt[TCP].seq) == (5201, 40000, 12345)
    assert pkt[TCP].flags == "S" and pkt[TCP].options == []
    assert layer(raw)[TCP].chksum == layer(bytes(_without_checksums(pkt)))[TCP].chksum
    if layer is IP:
        assert pkt.chksum == IP(bytes(_without_checksums(pkt))).chksum


@pytest.mark.parametrize(
    ("src", "dst", "layer"),
    [("10.3.0.20", "10.1.0.10", IP), ("2001:db8:3::20", "2001:db8:1::10", IPv6)],
)
@pytest.mark.parametrize("rcv_nxt", [1000, 2**32 - 10])
def test_the_window_kick_is_one_byte_of_data_beyond_any_window(src, dst, layer, rcv_nxt):
    """The kick the kernel answers whatever its challenge-ACK limit: ACK, no SYN, one
    byte, more than a 2^30-byte window and less than 2^31 ahead of the next expected
    byte (beyond the window, not an old duplicate), right checksums."""
    raw = window_kick_segment(src, 5201, dst, 40000, rcv_nxt)
    pkt = layer(raw)
    assert (pkt.src, pkt.dst, pkt[TCP].sport, pkt[TCP].dport) == (src, dst, 5201, 40000)
    assert pkt[TCP].flags == "A" and pkt[TCP].options == [] and len(pkt[TCP].payload) == 1
    ahead = (pkt[TCP].seq - rcv_nxt) % 2**32
    assert ahead == WINDOW_KICK_AHEAD and 2**30 < ahead < 2**31
    assert layer(raw)[TCP].chksum == layer(bytes(_without_checksums(pkt)))[TCP].chksum
    if layer is IP:
        assert pkt.chksum == IP(bytes(_without_checksums(pkt))).chksum


class Sent:
    """The kick socket's place: what the agent delivered to its own stack."""

    def __init__(self):
        self.segments: list = []

    def sendto(self, segment: bytes, _address) -> None:
        self.segments.append(IP(segment)[TCP])


def kicker(monkeypatch, received: int | None = 5000) -> tuple[Agent, Sent, list[float]]:
    agent = recorder()
    agent.ext = Extension({"10.1.0.10": 1})
    agent.diag = SimpleNamespace(bytes_received=lambda *_: received)
    agent.kick_sockets = {4: Sent()}
    agent.kicked_at, agent.oow_limit = {}, 0.5
    agent.stats, agent.kicked = Counter(), False
    clock = [100.0]
    monkeypatch.setattr("hosts.agent.time.monotonic", lambda: clock[0])
    return agent, agent.kick_sockets[4], clock


SUBFLOW = ("10.1.0.10", 40000, "10.3.0.20", 5201)  # ours, as the agent keys it


def test_a_kick_within_the_kernels_limit_is_a_window_kick(monkeypatch):
    """A set-up often needs two ACKs on one subflow within milliseconds (the answer,
    then an ADD_ADDR moved off an untrusted subflow); the kernel would hold the second
    challenge ACK back for 0.5 s, and the ADD_ADDR went after the kernel's 200-ms
    retransmission instead."""
    agent, sent, clock = kicker(monkeypatch)
    agent.ext.on_copy(("10.3.0.20", 5201, "10.1.0.10", 40000), 0x12, [], time.time(), seq=7)
    agent.kick(SUBFLOW)
    clock[0] += 0.1
    agent.kick(SUBFLOW)
    clock[0] += 0.1
    agent.kick(SUBFLOW)  # still within 0.5 s of the SYN: another window kick
    clock[0] += 0.4
    agent.kick(SUBFLOW)  # past it: a SYN again, which needs no sequence number
    syn, window, window2, syn2 = sent.segments
    assert (syn.flags, syn2.flags, window.flags, window2.flags) == ("S", "S", "A", "A")
    assert (syn.sport, syn.dport, IP(bytes(syn.underlayer)).src) == (5201, 40000, "10.3.0.20")
    assert window.seq == (7 + 1 + 5000 + WINDOW_KICK_AHEAD) % 2**32
    assert agent.stats["kicks"] == 4 and agent.stats["window_kicks"] == 2


@pytest.mark.parametrize("known", ["no handshake seen", "no socket"])
def test_without_the_next_sequence_number_the_kick_stays_a_syn(monkeypatch, known):
    """Fail safe: a guessed sequence number could land inside the window, where the
    byte would be taken as data; the SYN goes (held back or not) and the tick retries."""
    agent, sent, clock = kicker(monkeypatch, None if known == "no socket" else 5000)
    if known == "no socket":
        agent.ext.on_copy(("10.3.0.20", 5201, "10.1.0.10", 40000), 0x12, [], time.time(), seq=7)
    agent.kick(SUBFLOW)
    clock[0] += 0.1
    agent.kick(SUBFLOW)
    assert [s.flags for s in sent.segments] == ["S", "S"]
    assert agent.stats["window_kicks"] == 0


def test_the_tick_kicks_again_only_options_kicked_half_a_tick_ago_or_more(monkeypatch):
    """A tick right after a carry's kick would only make the kernel send a duplicate
    ACK (and, within the limit, cost a sock_diag lookup on the set-up's path)."""
    agent, sent, clock = kicker(monkeypatch)
    agent.carries = {SUBFLOW: Waiting(since=100.0, options=[b"x"], kicked=100.0)}
    agent.kick_again(100.0 + TICK / 4)
    assert sent.segments == []
    agent.kick_again(100.0 + TICK * 0.6)
    assert len(sent.segments) == 1 and agent.carries[SUBFLOW].kicked == 100.0 + TICK * 0.6


def _without_checksums(pkt):
    """The packet with its checksums left for scapy to compute."""
    pkt = pkt.copy()
    del pkt[TCP].chksum
    if IP in pkt:
        del pkt[IP].chksum
    return pkt


def test_agent_logs_carry_microseconds():
    """A set-up takes milliseconds; its log lines are read against capture timestamps."""
    record = logging.LogRecord("agent", logging.INFO, __file__, 1, "event", None, None)
    record.created = datetime(2026, 12, 4, 20, 1, 24, 589291).timestamp()
    line = MicrosecondFormatter("%(asctime)s %(message)s").format(record)
    assert line == "2026-12-04 20:01:24.589291 event"


def test_options_nothing_waits_for_take_only_a_segment_without_payload_for_a_while():
    """A refresh rides the kick's ACK (the sender's data stays in the kernel); if none
    came in EMPTY_WAIT (the kernel rate-limited the kick), any segment may take it; what
    something waits for takes the next segment at once."""
    refresh = Waiting(since=100.0)
    assert refresh.mode(100.0) is CarryMode.EMPTY
    assert refresh.mode(100.0 + EMPTY_WAIT / 2) is CarryMode.EMPTY
    assert refresh.mode(100.0 + EMPTY_WAIT) is CarryMode.ANY
    assert Waiting(since=100.0, urgent=True).mode(100.0) is CarryMode.ANY


class Submitted:
    """The state writer's place: what the agent handed over to write."""

    def __init__(self):
        self.errors = 0
        self.texts: list[dict] = []

    def submit(self, text: str) -> None:
        self.texts.append(json.loads(text))


def state_agent() -> Agent:
    agent = recorder()
    agent.state_writer = Submitted()
    agent.state_written = (-STATE_EVERY, ())
    agent.ext = SimpleNamespace(tpbt=Tpbt(), conns={}, counters=Counters())
    agent.guard = SimpleNamespace(guarded={}, counters=lambda: {"inspected": 7})
    agent.history = TrustHistory()
    agent.history_json = HistoryJson(agent.history)
    agent.stats, agent.kernel_events = Counter(), Counter()
    return agent


def test_an_unchanged_state_is_written_only_every_state_every():
    """Encoding and writing an unchanged state every 0.2-s tick cost each agent 5-10 ms
    of CPU a second, taken from the core the hosts' traffic runs on."""
    agent = state_agent()
    t = 1000.0
    agent.write_state(t)
    assert len(agent.state_writer.texts) == 1
    for tick in range(1, 5):  # 0.2 ... 0.8 s later, nothing new
        agent.write_state(t + tick * 0.2)
    assert len(agent.state_writer.texts) == 1
    agent.write_state(t + STATE_EVERY)  # lifetimes and the classifier's counters age
    assert len(agent.state_writer.texts) == 2
    assert agent.state_writer.texts[-1]["time"] == t + STATE_EVERY


@pytest.mark.parametrize(
    "change",
    [
        "trust of a subflow",
        "a new subflow",
        "a connection",
        "our addresses' trust",
        "a guarded subflow",
        "a count of the core",
        "a count of the agent",
        "a kernel event",
        "a peer's announcement",
    ],
)
def test_what_readers_wait_for_is_written_at_the_next_tick(change):
    agent = state_agent()
    t = 1000.0
    agent.ext.tpbt.add_subflow(1, "10.1.0.10", "10.3.0.20")
    agent.history.observe(agent.ext.tpbt.entries(t), t)
    agent.write_state(t)
    if change == "trust of a subflow":
        agent.ext.tpbt.set_local({"10.1.0.10": 6.0}, t)
        agent.ext.tpbt.set_remote(1, "10.3.0.20", 6.0, t)
        agent.history.observe(agent.ext.tpbt.entries(t), t)
        assert agent.history.total == 2  # untrusted, then trusted
    elif change == "a new subflow":
        agent.ext.tpbt.add_subflow(1, "10.2.0.10", "10.3.0.20")
    elif change == "a connection":
        agent.ext.conns[1] = object()
    elif change == "our addresses' trust":
        agent.ext.tpbt.set_local({"10.2.0.10": 6.0}, t)
    elif change == "a guarded subflow":
        agent.guard.guarded[("10.1.0.10", 40000, "10.3.0.20", 5201)] = True
    elif change == "a count of the core":
        agent.ext.counters.addr_trust_received += 1
    elif change == "a count of the agent":
        agent.stats["dropped_in"] += 1
    elif change == "a kernel event":
        agent.kernel_events["created"] += 1
    else:
        agent.note_announced("10.4.0.20")
    agent.write_state(t + 0.2)
    assert len(agent.state_writer.texts) == 2, change
    agent.write_state(t + 0.4)
    assert len(agent.state_writer.texts) == 2  # and not again while nothing changes
