"""When the agent's pure core next has something to do (Extension.next_due): the agent
ticks then, instead of every TICK, while nothing is in motion. Nothing the fine-grained
tick would do or see may fall between one tick and the next due time."""

import copy
from types import SimpleNamespace

import pytest

from hosts.agent import STATE_EVERY, TICK, Agent
from hosts.extension import KEY_LIFETIME, ORPHAN_LIFETIME, Extension
from hosts.options import MpCapable, MpJoin
from hosts.tables import ExpiringTable
from hosts.tpbt import Tpbt
from tests.unit.test_extension import (
    A1,
    A2,
    B1,
    B2,
    KA,
    KB,
    SYN,
    TA,
    client,
    client_keys,
    establish,
    ev,
    msg,
    trust_from_b,
)

STEP = 0.05  # the probe's tick: finer than the agent's


def observable(ext: Extension, now: float):
    """What a tick at ``now`` changes for the world: the enforcement scope, the
    trusted subflows and the TPBT's trust."""
    trust = [(e.token, e.src, e.dst, e.trusted) for e in ext.tpbt.entries(now)]
    return ext.guarded(now), ext.lifted(now), trust


def assert_quiet_until_due(ext: Extension, now: float, horizon: float) -> float:
    """Tick a copy of ``ext`` every STEP from ``now`` to just before its next due time
    (at most ``horizon``): no action, and nothing observable changes. Returns the due
    time (or the horizon)."""
    due = ext.next_due(now)
    end = max(now, horizon if due is None else min(due, horizon))
    if end <= now + STEP:
        return end
    probe = copy.deepcopy(ext)
    before = observable(probe, now)
    t = now + STEP
    while t < end - 1e-9:
        assert probe.tick(t) == [], f"an action at {t:.2f}, before the due time {end:.2f}"
        assert observable(probe, t) == before, f"a change at {t:.2f}, due only at {end:.2f}"
        t += STEP
    return end


def drive(ext: Extension, start: float, horizon: float) -> list[float]:
    """Tick ``ext`` the way the agent does when idle (at each due time) from ``start``
    to ``horizon``, checking that nothing happens in between; the tick times."""
    now, ticks = start, []
    while now < horizon:
        now = assert_quiet_until_due(ext, now, horizon)
        if now >= horizon:
            break
        ext.tick(now)
        ticks.append(now)
        due = ext.next_due(now)
        if due is not None and due <= now:  # in motion: the agent's regular tick
            now += TICK
    return ticks


def trusted_connection(enforce: bool = True) -> Extension:
    """a's connection from A1 with b's notification taken: a trusted subflow, and a
    second subflow from A2 in enforcement's scope."""
    ext = client(enforce=enforce)
    client_keys(ext)
    establish(ext, TA, A1, B1)
    ext.on_event(ev("sub_established", TA, saddr=A2, daddr=B1, sport=40001, dport=5201), 0.1)
    trust_from_b(ext, now=0.2)
    answer = msg(KB, KA, 1, 2, B1, A1, echo=True)  # b's answer to our notification
    ext.on_addr_trust((B1, 5201, A1, 40000), answer, now=0.3)
    assert not ext.conns[TA].trust_sent  # answered: no retry due
    return ext


def test_a_young_connection_is_ticked_regularly():
    ext = client(enforce=True)
    client_keys(ext)
    establish(ext, TA, A1, B1, now=0.0)
    assert ext.next_due(0.5) == 0.5  # its first announce_wait seconds: every TICK
    past = ext.announce_wait + 0.01
    assert ext.next_due(past) <= past  # its held announcement is overdue ...
    ext.tick(past)
    assert ext.next_due(past) == pytest.approx(past + ext.retry)  # ... then its retry


def test_a_settled_connection_is_due_at_its_refresh_and_nothing_happens_before():
    ext = trusted_connection()
    settled = ext.announce_wait + 0.1
    ext.tick(settled)
    due = ext.next_due(settled)
    refresh = min(ext.conns[TA].trust_refreshed.values()) + ext.ttl / 2
    assert due == pytest.approx(refresh)
    assert due - settled > 1.0  # seconds without a tick
    assert_quiet_until_due(ext, settled, due + 1)
    assert any(a.option.addr_id == 1 for a in ext.tick(due) if hasattr(a, "option"))


def test_ticking_only_when_due_misses_nothing_through_refreshes_and_lapses():
    """A minute of a trusted connection: refreshes (answered or not: retries), b's trust
    and then our own lapsing, every tick at a due time, nothing in between."""
    ext = trusted_connection()
    ticks = drive(ext, ext.announce_wait + 0.1, 60.0)
    assert len(ticks) < 60 / TICK / 4  # far fewer than a tick every TICK
    assert not ext.tpbt.trusted_local(60.0)  # our trust lapsed at 30 s: a due time


def test_the_orphan_and_the_tables_expire_at_their_due_times():
    ext = trusted_connection(enforce=False)
    ext.on_event(ev("sub_closed", TA, saddr=A1, daddr=B1, sport=40000, dport=5201), 2.0)
    ext.on_event(ev("sub_closed", TA, saddr=A2, daddr=B1, sport=40001, dport=5201), 2.0)
    empty_since = ext.conns[TA].empty_since
    assert empty_since is not None
    drive(ext, 2.0, empty_since + ORPHAN_LIFETIME + 1)
    assert TA not in ext.conns  # forgotten at its due time


def test_enforcement_scope_ends_at_due_times_for_handshakes_that_go_nowhere():
    """A forged handshake's opening and a join SYN that never completes are in scope
    from their SYN and leave it when their tables' entries end: a due time each."""
    ext = trusted_connection()
    ext.tick(ext.announce_wait + 0.1)
    at = ext.announce_wait + 0.2
    ext.on_copy((B2, 5999, A1, 41000), SYN, [MpCapable(1, 0, KB)], at)  # an opening
    ext.on_copy((B2, 5201, A2, 41001), SYN, [MpJoin(False, 2, token=TA, nonce=7)], at)
    assert (A1, 41000, B2, 5999) in ext.guarded(at)
    assert (A2, 41001, B2, 5201) in ext.guarded(at)
    drive(ext, at, at + KEY_LIFETIME + 1)
    after = ext.guarded(at + KEY_LIFETIME + 1)
    assert (A1, 41000, B2, 5999) not in after and (A2, 41001, B2, 5201) not in after


def test_nothing_due_without_connections_or_lifetimes():
    ext = Extension({A1: 1})
    assert ext.next_due(0.0) is None
    ext.on_trust({A1: 30}, now=0)
    assert ext.next_due(1.0) == pytest.approx(30.0)


def test_expiring_table_and_tpbt_say_when_their_next_entry_ends():
    table: ExpiringTable[str, int] = ExpiringTable(4, 10.0)
    assert table.next_expiry() is None
    table.put("x", 1, now=1.0)
    table.put("y", 2, now=2.0)
    assert table.next_expiry() == 11.0
    table.put("x", 3, now=3.0)  # renewed: y ends first now
    assert table.next_expiry() == 12.0
    tpbt = Tpbt()
    assert tpbt.next_change(0.0) is None
    tpbt.set_local({A1: 30}, now=0.0)
    tpbt.set_remote(TA, B1, 6, now=1.0)
    assert tpbt.next_change(2.0) == 7.0
    assert tpbt.next_change(8.0) == 30.0  # ended lifetimes are behind us
    assert tpbt.next_change(31.0) is None


def interval(carries=(), due=None, now=100.0) -> float:
    agent = Agent.__new__(Agent)  # only the tick's schedule: no sockets, no kernel
    agent.carries = dict.fromkeys(carries)
    agent.ext = SimpleNamespace(next_due=lambda _now: due)
    return agent.tick_interval(now)


def test_the_agent_ticks_every_tick_while_options_wait_or_something_is_due_soon():
    assert interval(carries=[(A1, 1, B1, 2)], due=200.0) == TICK  # kicks are repeated
    assert interval(due=100.0) == TICK  # in motion
    assert interval(due=100.05) == TICK  # never more often than TICK


def test_the_agent_sleeps_until_due_and_at_most_state_every():
    assert interval(due=100.0 + STATE_EVERY / 2) == pytest.approx(STATE_EVERY / 2)
    assert interval(due=130.0) == STATE_EVERY  # the state file's longest silence
    assert interval(due=None) == STATE_EVERY


def test_a_stop_request_ends_the_loops_wait_at_once():
    """The signal handler's request wakes the select() the loop waits in (Python resumes
    an interrupted select after the handler, so a flag alone waited out the timeout)."""
    import os
    import select

    agent = Agent.__new__(Agent)
    agent.stopping = False
    agent.wake_r, agent.wake_w = os.pipe()
    try:
        assert select.select([agent.wake_r], [], [], 0)[0] == []
        agent.request_stop()
        assert agent.stopping
        assert select.select([agent.wake_r], [], [], 0)[0] == [agent.wake_r]
    finally:
        os.close(agent.wake_r)
        os.close(agent.wake_w)
