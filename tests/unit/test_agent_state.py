"""The agent's per-address record of the announcements its kernel took, its kick, its log times."""

import json
import logging
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
    Agent,
    MicrosecondFormatter,
    Waiting,
    kick_segment,
)
from hosts.extension import Counters
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
