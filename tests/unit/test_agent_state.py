"""The agent's per-address record of the announcements its kernel took."""

from collections import Counter

from hosts.agent import MAX_ANNOUNCED_SHOWN, Agent


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
